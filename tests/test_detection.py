"""Box geometry and region features of two-stage detectors (repro/detection.py), against hand
computations and a plain greedy NMS."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repro import detection
from tests.conftest import REAL_DATA, constant_mask_head


def test_iou_by_hand_at_its_edges():
    a = jnp.asarray([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    b = jnp.asarray([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(detection.iou(a, b), [[1 / 7, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], rtol=1e-6)
    wide = jnp.asarray([[0.0, 0.0, 4.0, 1.0]])
    tall = jnp.asarray([[0.0, 0.0, 1.0, 4.0]])            # a transposed box: overlap 1 of 7
    np.testing.assert_allclose(detection.iou(wide, tall), [[1 / 7]], rtol=1e-6)
    # boxes smaller than a pixel: a union under 1 is still divided by
    small = jnp.asarray([[0.0, 0.0, 0.5, 0.5]])
    np.testing.assert_allclose(detection.iou(small, small * jnp.asarray([1.0, 1.0, 1.0, 0.5])), [[0.5]])


def test_anchors_sit_at_cell_centres_with_their_area_and_ratio():
    boxes = detection.anchors(2, 3, 8.0, sizes=(16.0, 32.0), ratios=(0.5, 2.0))
    assert boxes.shape == (2 * 3 * 4, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(w * h, np.tile([256, 256, 1024, 1024], 6), rtol=1e-5)
    np.testing.assert_allclose(h / w, np.tile([0.5, 2.0, 0.5, 2.0], 6), rtol=1e-5)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    np.testing.assert_allclose(centres[::4], [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]])


def test_encode_by_hand_and_decode_of_zero_is_the_reference():
    reference = jnp.asarray([[10.0, 20.0, 30.0, 60.0]])             # centre (20, 40), size (20, 40)
    box = jnp.asarray([[20.0, 20.0, 60.0, 100.0]])                  # centre (40, 60), size (40, 80)
    np.testing.assert_allclose(detection.encode(box, reference), [[1.0, 0.5, np.log(2), np.log(2)]],
                               rtol=1e-6)
    np.testing.assert_allclose(detection.encode(box, reference, (10, 10, 5, 5)),
                               [[10.0, 5.0, 5 * np.log(2), 5 * np.log(2)]], rtol=1e-6)
    np.testing.assert_allclose(detection.decode(jnp.zeros((1, 4)), reference), reference)
    huge = detection.decode(jnp.asarray([[0.0, 0.0, 50.0, 50.0]]), reference)
    assert np.all(np.isfinite(huge))
    assert float(huge[0, 2] - huge[0, 0]) == pytest.approx(20 * 1000 / 16, rel=1e-4)  # clipped


@settings(max_examples=50, deadline=None, derandomize=True)  # the same examples every run
@given(st.lists(st.floats(-50, 50), min_size=4, max_size=4),
       st.lists(st.floats(1, 60), min_size=4, max_size=4))
def test_encode_then_decode_gives_the_box_back(corner, sizes):
    # size ratios up to 60: under decode's clip at 1000/16 = 62.5 (beyond it the box is not given back)
    box = jnp.asarray([[corner[0], corner[1], corner[0] + sizes[0], corner[1] + sizes[1]]], jnp.float32)
    ref = jnp.asarray([[corner[2], corner[3], corner[2] + sizes[2], corner[3] + sizes[3]]], jnp.float32)
    weights = (10.0, 10.0, 5.0, 5.0)
    back = detection.decode(detection.encode(box, ref, weights), ref, weights)
    np.testing.assert_allclose(back, box, atol=1e-3)


def test_the_default_weights_are_ones_and_boxes_are_clipped_to_the_image():
    reference = jnp.asarray([[10.0, 20.0, 30.0, 60.0]])
    deltas = jnp.asarray([[0.5, -0.25, 0.3, -0.2]])
    np.testing.assert_array_equal(detection.decode(deltas, reference),
                                  detection.decode(deltas, reference, (1.0, 1.0, 1.0, 1.0)))
    # an image 30 high and 50 wide: x is cut to [0, 50], y to [0, 30]
    boxes = jnp.asarray([[-5.0, -2.0, 60.0, 40.0], [10.0, 5.0, 20.0, 25.0], [49.0, 29.0, 51.0, 31.0]])
    np.testing.assert_array_equal(detection.clip(boxes, 30.0, 50.0),
                                  [[0.0, 0.0, 50.0, 30.0], [10.0, 5.0, 20.0, 25.0], [49.0, 29.0, 50.0, 30.0]])


def test_nms_keeps_a_box_overlapping_exactly_at_the_threshold_and_drops_one_above():
    boxes = jnp.asarray([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.9, 1.0]])  # IoU 0.5, 0.95
    indices, valid = detection.nms(boxes, jnp.asarray([3.0, 2.0, 1.0]), 0.5, 4)
    assert np.asarray(indices).tolist() == [0, 1, 0, 0]  # padded with index 0, marked not valid
    assert np.asarray(valid).tolist() == [True, True, False, False]


def test_bilinear_samples_keep_the_edge_value_up_to_one_cell_outside_the_map_and_0_beyond():
    f = _features(h=3, w=4, c=1)
    ys = jnp.asarray([-1.0, -0.5, 2.0, 3.0, -1.01, 3.01, 1.0, 1.0, 1.0, 1.0])
    xs = jnp.asarray([1.0, 2.0, 3.0, 0.0, 1.0, 1.0, -1.0, 4.0, -1.01, 4.01])
    got = np.asarray(detection.bilinear(f, ys, xs))[:, 0]
    edge = np.asarray(f)[:, :, 0]
    np.testing.assert_allclose(got, [edge[0, 1], edge[0, 2], edge[2, 3], edge[2, 0], 0.0, 0.0,
                                     edge[1, 0], edge[1, 3], 0.0, 0.0], rtol=1e-6)
    # inside the last cell of either axis: the four neighbours weighted by hand
    between = np.asarray(detection.bilinear(f, jnp.asarray([1.5]), jnp.asarray([2.25])))[0, 0]
    expected = (0.5 * 0.75 * edge[1, 2] + 0.5 * 0.25 * edge[1, 3] + 0.5 * 0.75 * edge[2, 2]
                + 0.5 * 0.25 * edge[2, 3])
    assert between == pytest.approx(expected, rel=1e-6)


def test_areas_of_thin_and_inverted_boxes():
    boxes = jnp.asarray([[0.0, 0.0, 2.0, 0.5], [0.0, 0.0, 0.25, 2.0],      # thin
                         [0.0, 0.0, 2.0, -0.5], [0.0, 0.0, -0.5, 2.0]])    # inverted: empty
    np.testing.assert_allclose(detection.area(boxes), [1.0, 0.5, 0.0, 0.0])


def test_encode_and_decode_take_any_leading_axes():
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 20, (2, 3, 2))
    boxes = jnp.asarray(np.concatenate([corner, corner + rng.uniform(1, 9, (2, 3, 2))], -1), jnp.float32)
    reference = boxes[:, ::-1]
    deltas = detection.encode(boxes, reference)
    assert deltas.shape == (2, 3, 4)
    flat = detection.encode(boxes.reshape(6, 4), reference.reshape(6, 4))
    np.testing.assert_allclose(deltas.reshape(6, 4), flat)
    back = detection.decode(deltas, reference)
    assert back.shape == (2, 3, 4)
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-4)


def test_the_papers_roi_align_widens_a_box_smaller_than_a_cell_to_one_cell():
    f = _features(h=4, w=5, c=1)
    box = jnp.asarray([[4.0, 2.0, 4.0, 2.0]])  # a point, stride 2: cell (x 2, y 1)
    got = np.asarray(detection.roi_align(f, box, (2, 2), 0.5, sampling=1, aligned=False))[0, :, :, 0]
    # one cell wide and high: 2 x 2 bins of half a cell, sampled at their centres
    ys, xs = jnp.asarray([1.25, 1.75]), jnp.asarray([2.25, 2.75])
    expected = np.asarray(detection.bilinear(f, *jnp.meshgrid(ys, xs, indexing="ij")))[..., 0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # 1.5 cells wide and a point high: only the height is widened (bins of 0.75 x 0.5 cells)
    box = jnp.asarray([[4.0, 2.0, 7.0, 2.0]])
    got = np.asarray(detection.roi_align(f, box, (2, 2), 0.5, sampling=1, aligned=False))[0, :, :, 0]
    xs = jnp.asarray([2.375, 3.125])
    expected = np.asarray(detection.bilinear(f, *jnp.meshgrid(ys, xs, indexing="ij")))[..., 0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # transposed: 1.5 cells high and a point wide: only the width is widened
    box = jnp.asarray([[4.0, 2.0, 4.0, 5.0]])
    got = np.asarray(detection.roi_align(f, box, (2, 2), 0.5, sampling=1, aligned=False))[0, :, :, 0]
    ys, xs = jnp.asarray([1.375, 2.125]), jnp.asarray([2.25, 2.75])
    expected = np.asarray(detection.bilinear(f, *jnp.meshgrid(ys, xs, indexing="ij")))[..., 0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def _plain_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def _greedy_nms(boxes, scores, threshold, max_out):
    order, kept = list(np.argsort(-scores, kind="stable")), []
    while order and len(kept) < max_out:
        best = order.pop(0)
        if not np.isfinite(scores[best]):
            break
        kept.append(best)
        order = [i for i in order if _plain_iou(boxes[best], boxes[i]) <= threshold]
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_nms_keeps_what_a_plain_greedy_nms_keeps(seed):
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 40, (60, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(4, 20, (60, 2))], 1).astype(np.float32)
    scores = rng.permutation(60).astype(np.float32)                # distinct: one right answer
    scores[:5] = -np.inf                                           # padding: never kept
    expected = _greedy_nms(boxes, scores, 0.5, 80)
    indices, valid = detection.nms(jnp.asarray(boxes), jnp.asarray(scores), 0.5, 80)
    assert np.asarray(indices)[np.asarray(valid)].tolist() == expected
    assert not np.asarray(valid)[len(expected):].any() and np.asarray(valid)[:len(expected)].all()
    indices, valid = detection.nms(jnp.asarray(boxes), jnp.asarray(scores), 0.5, 3)
    assert np.asarray(indices).tolist() == expected[:3] and np.asarray(valid).all()


def _features(h=4, w=5, c=2):
    return jnp.arange(h * w * c, dtype=jnp.float32).reshape(h, w, c) ** 1.5  # not linear: bilinear shows


def test_roi_align_is_a_hand_computed_bilinear_sample():
    f = np.asarray(_features())
    # one bin, one sample at the box centre; the paper's version (no half-cell shift), stride 2:
    # box (3, 1)-(7, 4) pixels -> cells (1.5, 0.5)-(3.5, 2.0), centre (x 2.5, y 1.25)
    box = jnp.asarray([[3.0, 1.0, 7.0, 4.0]])
    out = detection.roi_align(jnp.asarray(f), box, (1, 1), 0.5, sampling=1, aligned=False)
    expected = (f[1, 2] * 0.75 * 0.5 + f[1, 3] * 0.75 * 0.5 + f[2, 2] * 0.25 * 0.5 + f[2, 3] * 0.25 * 0.5)
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)
    # aligned: half a cell up and left, at (y 0.75, x 2.0)
    shifted = detection.roi_align(jnp.asarray(f), box, (1, 1), 0.5, sampling=1, aligned=True)
    np.testing.assert_allclose(shifted[0, 0, 0], f[0, 2] * 0.25 + f[1, 2] * 0.75, rtol=1e-6)


def test_roi_align_has_the_bilinear_weights_as_its_gradient_in_the_features():
    box = jnp.asarray([[3.0, 1.0, 7.0, 4.0]])
    sample = lambda f: detection.roi_align(f, box, (1, 1), 0.5, sampling=1, aligned=False)[0, 0, 0, 0]
    grad = jax.grad(sample)(_features())
    expected = np.zeros((4, 5, 2))
    expected[1, 2, 0], expected[1, 3, 0], expected[2, 2, 0], expected[2, 3, 0] = 0.375, 0.375, 0.125, 0.125
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    # and in the box: moving it moves the sample (RoIPool's rounding has no such gradient)
    box_grad = jax.grad(lambda b: detection.roi_align(_features(), b, (2, 2), 0.5, aligned=False).sum())(box)
    assert np.abs(np.asarray(box_grad)).sum() > 0


def test_roi_pool_rounds_the_box_so_fractional_moves_do_not_show_where_roi_align_does():
    f = _features(6, 7, 1)
    box = jnp.asarray([[2.2, 2.1, 9.8, 8.2]])                      # stride 2 -> cells x 1.1..4.9, y 1.05..4.1
    pooled = detection.roi_pool(f, box, (2, 2), 0.5)
    # rounded: cols [1, 5), rows [1, 4): bins rows [1, 3) / [2, 4) (3 rows: floor/ceil), cols [1, 3) / [3, 5)
    fn = np.asarray(f)[..., 0]
    expected = [[fn[1:3, 1:3].max(), fn[1:3, 3:5].max()], [fn[2:4, 1:3].max(), fn[2:4, 3:5].max()]]
    np.testing.assert_allclose(pooled[0, :, :, 0], expected)
    nudged = box + jnp.asarray([0.3, 0.3, 0.3, 0.3])                # 0.15 cells: rounds the same
    np.testing.assert_array_equal(detection.roi_pool(f, nudged, (2, 2), 0.5), pooled)
    aligned = [detection.roi_align(f, b, (2, 2), 0.5) for b in (box, nudged)]
    assert not np.allclose(*aligned)


def test_roi_pool_bins_by_hand_on_features_whose_maximum_can_sit_anywhere():
    # an increasing map hides a wrong bin start (its maximum is always at a bin's far corner)
    fn = np.random.default_rng(0).normal(size=(6, 7)).astype(np.float32)
    f = jnp.asarray(fn)[..., None]
    pooled = np.asarray(detection.roi_pool(f, jnp.asarray([[2.2, 2.1, 9.8, 8.2]]), (2, 2), 0.5))[0, :, :, 0]
    # as above: bins rows [1, 3) / [2, 4), cols [1, 3) / [3, 5)
    expected = [[fn[1:3, 1:3].max(), fn[1:3, 3:5].max()], [fn[2:4, 1:3].max(), fn[2:4, 3:5].max()]]
    np.testing.assert_array_equal(pooled, expected)
    # 3 x 2 bins of a box of cells x [0, 6), y [1, 5): rows [1, 3) [2, 4) [3, 5)... (4 rows in 3 bins)
    pooled = np.asarray(detection.roi_pool(f, jnp.asarray([[0.0, 2.0, 12.0, 10.0]]), (3, 2), 0.5))[0, :, :, 0]
    rows = [(1, 3), (2, 4), (3, 5)]  # floor(i * 4/3), ceil((i + 1) * 4/3)
    cols = [(0, 3), (3, 6)]
    np.testing.assert_array_equal(pooled, [[fn[a:b, c:d].max() for c, d in cols] for a, b in rows])


def test_roi_align_by_hand_with_every_output_size_and_sample_count_different():
    f = _features(6, 7, 1)
    box = jnp.asarray([[2.0, 1.0, 11.0, 9.0]])  # stride 2, aligned: cells x 0.5..5.0, y 0.0..4.0
    got = np.asarray(detection.roi_align(f, box, (2, 3), 0.5, sampling=2))[0, :, :, 0]
    x0, y0, bin_w, bin_h = 0.5, 0.0, 4.5 / 3, 4.0 / 2
    grid = np.array([0.25, 0.75])  # sample centres inside a bin, as fractions of it
    expected = np.zeros((2, 3))
    for r in range(2):
        for c in range(3):
            ys, xs = y0 + (r + grid) * bin_h, x0 + (c + grid) * bin_w
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            expected[r, c] = np.asarray(detection.bilinear(f, jnp.asarray(yy), jnp.asarray(xx))).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # the defaults: two samples a side, the half-cell shift (Detectron2's aligned RoIAlign)
    np.testing.assert_array_equal(detection.roi_align(f, box, (2, 3), 0.5),
                                  detection.roi_align(f, box, (2, 3), 0.5, sampling=2, aligned=True))
    assert not np.allclose(detection.roi_align(f, box, (2, 3), 0.5, sampling=1)[0, :, :, 0], got)


def test_iou_of_empty_boxes_has_a_finite_gradient():
    a = jnp.asarray([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 3.0, 2.0]])
    b = jnp.asarray([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 4.0, 2.0]])
    gradient = jax.grad(lambda a: detection.iou(a, b).sum())(a)
    assert np.isfinite(np.asarray(gradient)).all()


def test_roi_pool_of_a_box_outside_the_map_is_0_and_a_tiny_box_still_covers_a_cell():
    f = _features(4, 5, 2) + 1.0
    outside = detection.roi_pool(f, jnp.asarray([[40.0, 40.0, 60.0, 60.0]]), (2, 2), 0.5)
    assert not np.asarray(outside).any()
    tiny = detection.roi_pool(f, jnp.asarray([[4.1, 2.1, 4.2, 2.2]]), (2, 2), 0.5)  # one cell: (1, 2)
    np.testing.assert_allclose(tiny[0], np.broadcast_to(np.asarray(f)[1, 2], (2, 2, 2)))


# --- the two-stage detector (repro/models/rcnn.py) --------------------------------------------------

def test_a_pasted_mask_fills_exactly_the_pixels_whose_centres_lie_in_its_box():
    from repro.models.rcnn import paste

    pasted = np.asarray(paste(jnp.ones((28, 28)), jnp.asarray([3.0, 2.0, 9.0, 6.0]), 10, 12))
    expected = np.zeros((10, 12))
    expected[2:6, 3:9] = 1.0                                        # rows y 2..5, columns x 3..8
    np.testing.assert_allclose(pasted, expected, atol=1e-6)
    half = np.zeros((28, 28))
    half[:, 14:] = 1.0                                              # the right half of the box
    pasted = np.asarray(paste(jnp.asarray(half), jnp.asarray([0.0, 0.0, 8.0, 4.0]), 4, 8)) >= 0.5
    np.testing.assert_array_equal(pasted, np.tile([0, 0, 0, 0, 1, 1, 1, 1], (4, 1)).astype(bool))
    # the same half in a box away from the origin: the mask is laid over the box, not the image
    pasted = np.asarray(paste(jnp.asarray(half), jnp.asarray([2.0, 1.0, 10.0, 5.0]), 6, 12)) >= 0.5
    expected = np.zeros((6, 12), bool)
    expected[1:5, 6:10] = True                                      # columns x 6..9 of the box's 2..9
    np.testing.assert_array_equal(pasted, expected)
    pasted = np.asarray(paste(jnp.asarray(half.T), jnp.asarray([2.0, 1.0, 10.0, 5.0]), 6, 12)) >= 0.5
    expected = np.zeros((6, 12), bool)
    expected[3:5, 2:10] = True                                      # rows y 3, 4 of the box's 1..4
    np.testing.assert_array_equal(pasted, expected)
    # pixel centres exactly on the box's edges: in on the left and top, out on the right and bottom
    pasted = np.asarray(paste(jnp.ones((28, 28)), jnp.asarray([2.5, 1.5, 5.5, 3.5]), 6, 8))
    expected = np.zeros((6, 8))
    expected[1:3, 2:5] = 1.0                                        # centres y 1.5, 2.5; x 2.5, 3.5, 4.5
    np.testing.assert_allclose(pasted, expected, atol=1e-6)
    # a box thinner than a pixel still lays the mask over its own extent: the one pixel centre it
    # covers (2.5, three quarters across [2.2, 2.6]) samples the mask's right (bottom) half
    pasted = np.asarray(paste(jnp.asarray(half), jnp.asarray([2.2, 0.0, 2.6, 4.0]), 4, 6)) >= 0.5
    np.testing.assert_array_equal(pasted, np.tile([0, 0, 1, 0, 0, 0], (4, 1)).astype(bool))
    pasted = np.asarray(paste(jnp.asarray(half.T), jnp.asarray([0.0, 2.2, 6.0, 2.6]), 4, 6)) >= 0.5
    np.testing.assert_array_equal(pasted, np.tile([[0], [0], [1], [0]], (1, 6)).astype(bool))


def test_sampling_keeps_the_limit_candidates_of_highest_priority():
    from repro.models.rcnn import _sample

    candidates = jnp.asarray([True, False, True, True, True, False])
    priority = jnp.asarray([0.2, 0.9, 0.7, 0.1, 0.5, 0.8])          # non-candidates rank highest
    np.testing.assert_array_equal(_sample(candidates, priority, 2), [False, False, True, False, True, False])
    np.testing.assert_array_equal(_sample(candidates, priority, 0), [False] * 6)
    np.testing.assert_array_equal(_sample(candidates, priority, 9), candidates)


def _scenes(n, seed=0):
    from repro.data.dataset import load_dataset
    from repro.data.scenes import MnistScenes
    from tests.conftest import REAL_DATA
    data = MnistScenes(train_scenes=n, test_scenes=1, seed=seed)(load_dataset("mnist", str(REAL_DATA)))
    split = data.split("train")
    batch = {k: jnp.asarray(v) for k, v in split.items()}
    batch["image"] = batch["image"].astype(jnp.float32) / 255.0
    return split, batch


def test_the_detector_checks_its_settings_and_pads_what_it_does_not_detect():
    from flax import nnx

    from repro.models.rcnn import Detector
    for shape, stride in (((64, 64, 1), 12), ((48, 48, 1), 12), ((40, 64, 1), 16), ((64, 40, 1), 16)):
        with pytest.raises(ValueError, match="stride must be"):   # not 8, 16 or 32; or not dividing
            Detector(shape, 10, stride=stride, rngs=nnx.Rngs(0))
    for stride in (8, 16, 32):  # each allowed stride: one stride-2 convolution per halving
        assert len(Detector((64, 64, 1), 10, stride=stride, channels=8, rngs=nnx.Rngs(0)).backbone) == \
            1 + int(np.log2(stride))
    with pytest.raises(ValueError, match="roi_op"):
        Detector((64, 64, 1), 10, roi_op="warp", rngs=nnx.Rngs(0))
    model = Detector((64, 48, 1), 10, stride=16, masks=True, detections=7, rngs=nnx.Rngs(0))
    # the backbone: a 3x3 convolution to half the channels, then one 3x3 stride-2 one per halving
    assert [(c.kernel[...].shape, c.strides) for c in model.backbone] == [
        ((3, 3, 1, 32), 1), ((3, 3, 32, 64), 2), *[((3, 3, 64, 64), 2)] * 3]
    assert model.rpn_conv.kernel[...].shape == (3, 3, 64, 64)
    assert [c.kernel[...].shape for c in model.mask_convs] == [(3, 3, 64, 64), (3, 3, 64, 64)]
    out = jax.tree.map(np.asarray, model(jnp.zeros((2, 64, 48, 1))))
    assert out["boxes"].shape == (2, 7, 4) and out["masks"].shape == (2, 7, 64, 48)
    empty = out["scores"] <= 0
    assert not out["boxes"][empty].any() and not out["masks"][empty].any()
    assert np.all((out["classes"] >= 0) & (out["classes"] < 10))


@pytest.mark.slow  # ~70 s on 2 cores
@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="no MNIST mirror")
def test_a_detector_overfits_a_handful_of_scenes_and_its_mask_branch_learns():
    """80 steps on 4 scenes: COCO box AP50 on them near 1 (measured 1.0); the mask branch's loss
    falls and reaches the mask head's parameters."""
    from flax import nnx

    from repro import coco
    from repro.models.rcnn import DetectionLoss, Detector

    split, batch = _scenes(4)
    objective = DetectionLoss()

    def train(model, steps):
        opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

        @nnx.jit
        def step(model, opt, key):
            grads_and_terms = nnx.value_and_grad(
                lambda m: objective.train_loss(m, batch, rngs=nnx.Rngs(dropout=key)), has_aux=True)
            (_, terms), grads = grads_and_terms(model)
            opt.update(model, grads)
            return terms, grads

        history = [step(model, opt, jax.random.key(i)) for i in range(steps)]
        return [h[0] for h in history], history[0][1]

    model = Detector((64, 64, 1), 10, rngs=nnx.Rngs(0))
    terms, _ = train(model, 80)
    out = jax.tree.map(np.asarray, jax.jit(lambda m, x: m(x))(model, batch["image"]))
    assert coco.CocoAP().compute(out, split)["box_ap50"] > 0.9
    assert float(terms[-1]["rpn_cls"]) < float(terms[0]["rpn_cls"]) / 3

    masked = Detector((64, 64, 1), 10, masks=True, rngs=nnx.Rngs(1))
    terms, first_grads = train(masked, 12)
    assert float(terms[-1]["mask"]) < float(terms[0]["mask"])
    assert float(jnp.abs(first_grads.mask_out.kernel[...]).sum()) > 0
    per_image = objective.per_example(masked, batch, train=False)
    assert per_image["mask"].shape == (4,) and np.all(np.isfinite(per_image["loss"]))


@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="no MNIST mirror")
def test_the_detector_trains_on_the_shared_loop_and_is_scored_by_coco_for_boxes_and_masks():
    from flax import nnx

    from repro import coco
    from repro.data.transforms import Normalize, Transforms
    from repro.loop import Trainer, seed_keys
    from repro.models.rcnn import DetectionLoss, Detector

    split, _ = _scenes(8, seed=3)
    model = Detector((64, 64, 1), 10, masks=True, train_proposals=16, test_proposals=16, roi_samples=16,
                     rngs=nnx.Rngs(0))
    trainer = Trainer(model, optax.adam(1e-3), DetectionLoss(), Transforms([Normalize([0.0], [255.0])]),
                      split, {"test": split}, batch_size=4, keys=seed_keys(0), eval_batch_size=4,
                      evaluators=[coco.CocoAP("test", "bbox"), coco.CocoAP("test", "segm", final_only=True)])
    _, history, _ = trainer.fit(trainer.initial_state, 4, chunk_steps=2, eval_every=2)
    assert [r["step"] for r in history if "test/box_ap" in r] == [0, 2, 4]
    assert "test/mask_ap" in history[-1] and "test/mask_ap" not in history[0]
    assert all(0.0 <= history[-1][k] <= 1.0 for k in ("test/box_ap", "test/box_ap50", "test/mask_ap"))
    assert np.isfinite(history[-1]["test/loss"]) and history[-1]["train/rpn_cls"] > 0


def test_each_image_gets_its_own_detections_and_masks_whatever_the_batch():
    """The mask head runs on every image's RoIs at once (flattened): an image's detections and
    pasted masks are the same alone as in a batch, and differ from its neighbour's."""
    from flax import nnx

    from repro.models.rcnn import Detector
    model = Detector((32, 32, 1), 10, masks=True, channels=16, mask_channels=8, detections=5,
                     rngs=nnx.Rngs(0))
    images = jax.random.uniform(jax.random.key(1), (3, 32, 32, 1))
    detect = jax.jit(lambda m, x: m(x))
    together = jax.tree.map(np.asarray, detect(model, images))
    assert together["masks"].any() and (together["scores"] > 0).all()
    for i in range(3):
        alone = jax.tree.map(np.asarray, detect(model, images[i:i + 1]))
        np.testing.assert_allclose(alone["boxes"][0], together["boxes"][i], atol=1e-4)
        np.testing.assert_array_equal(alone["masks"][0], together["masks"][i])
    assert not np.array_equal(together["masks"][0], together["masks"][1])


def test_smooth_l1_by_hand_on_both_sides_of_beta():
    from repro.models.rcnn import _smooth_l1

    for beta in (1 / 9, 1.0):  # the default (Detectron's RPN and head) and an explicit one
        x = np.array([-2.0, -0.5, 0.0, 0.5, 0.999, 1.0, 3.0], np.float32) * beta
        expected = np.where(np.abs(x) < beta, 0.5 * x ** 2 / beta, np.abs(x) - 0.5 * beta)
        got = _smooth_l1(jnp.asarray(x)) if beta == 1 / 9 else _smooth_l1(jnp.asarray(x), beta)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-8)


def test_pasted_masks_threshold_each_detections_own_class_probability_at_one_half():
    """Mask logits +20 for the detected classes and -20 for the others: each detection gets exactly
    the pixels whose centres lie in its box (an empty slot none); with the signs swapped, none."""
    from flax import nnx

    from repro.models.rcnn import Detector
    model = Detector((32, 32, 1), 10, masks=True, channels=16, mask_channels=8, detections=6,
                     rngs=nnx.Rngs(0))
    images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
    jitted = jax.jit(lambda m, x: m(x))

    def detect(m, x):
        return jax.tree.map(np.asarray, jitted(m, x))

    detected = np.isin(np.arange(10), detect(model, images)["classes"])
    assert detected.sum() < 10  # some class is not detected: swapping the signs empties every mask
    centres = np.arange(32) + 0.5
    for sign in (1.0, -1.0):
        constant_mask_head(model, np.where(detected, 20.0, -20.0) * sign)
        out = detect(model, images)
        for box, score, mask in zip(out["boxes"].reshape(-1, 4), out["scores"].reshape(-1),
                                    out["masks"].reshape(-1, 32, 32), strict=True):
            x0, y0, x1, y1 = box
            inside = ((centres >= y0) & (centres < y1))[:, None] & ((centres >= x0) & (centres < x1))[None]
            np.testing.assert_array_equal(mask, (inside & (score > 0) & (sign > 0)).astype(np.uint8))
        assert (out["scores"] > 0).any()


@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="no MNIST mirror")
def test_classification_losses_are_means_over_the_sampled_anchors_and_rois():
    """With the RPN's objectness and the head's class logits fixed at 0, every sampled anchor's
    loss is log 2 and every sampled RoI's log 11 (10 classes and background): their means are
    exactly that, however many were sampled."""
    from flax import nnx

    from repro.models.rcnn import Detector
    _, batch = _scenes(2)
    model = Detector((64, 64, 1), 10, channels=16, rngs=nnx.Rngs(0))
    for layer in (model.rpn_score, model.cls):
        layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
        layer.bias[...] = jnp.zeros_like(layer.bias[...])
    terms = jax.jit(lambda m, b: m.losses(b, jax.random.key(0)))(model, batch)
    assert float(terms["rpn_cls"]) == pytest.approx(np.log(2), rel=1e-5)
    assert float(terms["cls"]) == pytest.approx(np.log(11), rel=1e-5)


def test_mask_targets_are_each_rois_own_instance_cut_to_the_roi():
    """Mask logits +20 everywhere: the loss is ~20 x the share of target pixels that are 0. A RoI
    that is its instance's box has all targets 1 (loss ~0); one twice as wide as its instance has
    the right half 0 (loss ~10)."""
    from flax import nnx

    from repro.models.rcnn import Detector
    model = Detector((32, 32, 1), 10, masks=True, channels=16, mask_channels=8, rngs=nnx.Rngs(0))
    constant_mask_head(model, np.full(10, 20.0))
    masks = np.zeros((1, 2, 32, 32), np.uint8)
    masks[0, 0, 8:20, 4:24] = 1   # instance 0 fills the box (4, 8, 24, 20)
    masks[0, 1, 8:20, 4:14] = 1   # instance 1 fills its left half only
    feats = model.features(jnp.zeros((1, 32, 32, 1)))
    roi = jnp.asarray([[[4.0, 8.0, 24.0, 20.0]]])
    one = jnp.ones((1, 1))

    def loss(instance):
        return float(model._mask_loss(feats, jnp.asarray(masks), roi, one, jnp.asarray([[3]]),
                                      jnp.asarray([[instance]])))

    assert loss(0) < 1e-3
    assert 9.0 < loss(1) < 11.0


def test_proposal_recall_counts_ground_truth_boxes_some_real_proposal_covers():
    from repro.proposals import ProposalRecall, recall

    gt = np.asarray([[[0, 0, 10, 10], [20, 20, 30, 30]], [[5, 5, 15, 15], [0, 0, 0, 0]]], np.float32)
    gt_valid = np.asarray([[1, 1], [1, 0]])
    # image 0: box 0 found exactly, box 1 by a proposal shifted 2 px (IoU 64/136 = 0.47);
    # image 1: a perfect proposal that is padding (not real), and a real one shifted 1 px (IoU 81/119)
    props = np.asarray([[[0, 0, 10, 10], [22, 22, 32, 32]], [[5, 5, 15, 15], [6, 6, 16, 16]]], np.float32)
    valid = np.asarray([[1, 1], [0, 1]])
    np.testing.assert_allclose(recall(props, valid, gt, gt_valid, (0.3, 0.5, 0.68, 0.7)),
                               [1.0, 2 / 3, 2 / 3, 1 / 3])
    out = ProposalRecall(thresholds=(0.5, 0.7)).compute({"proposals": props, "proposal_valid": valid},
                                                       {"boxes": gt, "valid": gt_valid})
    assert out == pytest.approx({"proposal_recall_iou50": 2 / 3, "proposal_recall_iou70": 1 / 3,
                                 "proposals_per_image": 1.5})
    with pytest.raises(ValueError, match="IoUs in"):
        ProposalRecall(thresholds=(0.5, 1.5))


def test_the_detector_proposes_what_it_detects_from():
    from flax import nnx

    from repro.models.rcnn import Detector
    model = Detector((32, 32, 1), 10, channels=16, test_proposals=12, rngs=nnx.Rngs(0))
    images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 1))
    boxes, valid = jax.jit(lambda m, x: m.propose(x))(model, images)
    assert boxes.shape == (2, 12, 4) and valid.shape == (2, 12) and bool(valid.any())
    real = np.asarray(boxes)[np.asarray(valid)]
    assert np.all((real[:, :2] >= 0) & (real[:, 2:] <= 32) & (real[:, 2:] > real[:, :2]))


def test_a_detector_on_given_proposals_has_no_rpn_and_refines_only_what_it_is_given():
    from flax import nnx

    from repro import coco
    from repro.models.rcnn import DetectionLoss, Detector
    with pytest.raises(ValueError, match="proposal_source"):
        Detector((32, 32, 1), 10, proposal_source="edges", rngs=nnx.Rngs(0))
    model = Detector((32, 32, 1), 10, channels=16, detections=4, proposal_source="given", rngs=nnx.Rngs(0))
    assert not hasattr(model, "rpn_conv")
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 16, (2, 6, 2)).astype(np.float32)
    proposals = np.concatenate([corners, corners + rng.uniform(6, 16, (2, 6, 2)).astype(np.float32)], -1)
    valid = np.asarray([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], np.uint8)
    batch = {"image": jax.random.uniform(jax.random.key(0), (2, 32, 32, 1)), "boxes": proposals[:, :2],
             "classes": np.asarray([[3, 4], [5, 6]], np.int32), "valid": np.ones((2, 2), np.uint8),
             "proposals": proposals, "proposal_valid": valid}
    _, terms = DetectionLoss().train_loss(model, batch)
    assert set(terms) == {"loss", "cls", "box"} and np.isfinite(float(terms["loss"]))
    for half in ({}, {"proposals": batch["proposals"]}, {"proposal_valid": batch["proposal_valid"]}):
        with pytest.raises(ValueError, match="pass proposals"):   # both are needed
            model(batch["image"], **half)
    out = jax.tree.map(np.asarray, coco.CocoAP().predict(model, batch))  # the evaluator hands them over
    for i in range(2):
        found = out["boxes"][i][out["scores"][i] > 0]
        real = proposals[i][valid[i] > 0]
        assert len(found) >= 1
        # an untrained head barely moves a box: each detection is one of the real proposals, refined
        assert np.abs(found[:, None] - real[None]).max(-1).min(1).max() < 0.5
    for half in ({}, {"proposals": batch["proposals"]}, {"proposal_valid": batch["proposal_valid"]}):
        with pytest.raises(ValueError, match="no RPN"):
            model.propose(batch["image"], **half)
    from repro.proposals import ProposalRecall
    seen = ProposalRecall().predict(model, batch)  # the proposals it was given are the ones judged
    assert seen["proposals"] is batch["proposals"] and seen["proposal_valid"] is batch["proposal_valid"]
