"""The two-stage detector's training targets, losses and inference (repro/models/rcnn.py) on scenes
small enough to enumerate: anchors, proposals and head outputs are fixed by the test, and every
expected number is computed here in numpy (IoU thresholds at their exact boundaries, labels,
normalizations, box targets and decoding with the head's weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from repro import detection
from repro.models.rcnn import Detector
from tests.conftest import constant_mask_head


def _np_encode(boxes, reference, weights=(1.0, 1.0, 1.0, 1.0)):
    """(t_x, t_y, t_w, t_h) of Fast R-CNN, written out: centre offsets over the reference's size and
    log size ratios, each scaled by its weight."""
    boxes, reference = np.asarray(boxes, np.float64), np.asarray(reference, np.float64)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    dx = (boxes[:, 0] + w / 2 - reference[:, 0] - rw / 2) / rw
    dy = (boxes[:, 1] + h / 2 - reference[:, 1] - rh / 2) / rh
    return np.stack([dx, dy, np.log(w / rw), np.log(h / rh)], 1) * np.asarray(weights)


def _np_decode(deltas, reference, weights):
    d = np.asarray(deltas, np.float64) / np.asarray(weights)
    reference = np.asarray(reference, np.float64)
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    cx, cy = reference[:, 0] + rw / 2 + d[:, 0] * rw, reference[:, 1] + rh / 2 + d[:, 1] * rh
    w, h = rw * np.exp(d[:, 2]), rh * np.exp(d[:, 3])
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def _smooth_l1(x, beta):
    ax = np.abs(x)
    return np.where(ax < beta, 0.5 * ax ** 2 / beta, ax - 0.5 * beta)


def _bce(logit, label):
    return np.maximum(logit, 0) - logit * label + np.log1p(np.exp(-np.abs(logit)))


def _log_softmax(logits):
    return logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())


def _fix_head(model, class_logits, box_deltas):
    """The RoI head's outputs fixed for every RoI: class logits [classes + 1], box deltas [classes, 4]."""
    for layer, bias in ((model.cls, class_logits), (model.box, np.reshape(box_deltas, -1))):
        layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
        layer.bias[...] = jnp.asarray(bias, jnp.float32)


# One image's RPN scene. Ground truth: g0, g1, and g2 which no anchor overlaps; the fourth slot is
# padding. Anchors and their best IoU: a0 1.0 and a1 exactly 0.7 (positive), a2 0.5 and a3 exactly
# 0.3 (neither), a4 0.2 and a5 0 (negative), a6 0.5 but g1's best anchor (positive).
RPN_GT = np.asarray([[0, 0, 10, 10], [20, 0, 30, 10], [22, 22, 30, 30], [0, 0, 0, 0]], np.float32)
RPN_GT_VALID = np.asarray([1, 1, 1, 0], bool)
RPN_ANCHORS = np.asarray([[0, 0, 10, 10], [0, 0, 10, 7], [0, 0, 10, 5], [0, 0, 10, 3], [0, 0, 10, 2],
                          [12, 20, 18, 30], [20, 0, 30, 5]], np.float32)
POSITIVE, NEGATIVE, MATCH = [0, 1, 6], [4, 5], {0: 0, 1: 0, 6: 1}


def _rpn_model(**kwargs):
    model = Detector((32, 32, 1), 10, channels=8, rngs=nnx.Rngs(0), **kwargs)
    model.anchors.value = jnp.asarray(RPN_ANCHORS)
    return model


def test_rpn_labels_anchors_at_the_exact_iou_boundaries_and_normalizes_both_losses_by_the_sample():
    overlaps = np.asarray(detection.iou(jnp.asarray(RPN_ANCHORS), jnp.asarray(RPN_GT)))
    assert overlaps[1, 0] == np.float32(0.7) and overlaps[3, 0] == np.float32(0.3)  # the boundaries
    assert overlaps[:, 2].max() == 0 and overlaps[6, 1] == overlaps[:, 1].max() == np.float32(0.5)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=7).astype(np.float32)
    deltas = (0.3 * rng.normal(size=(7, 4))).astype(np.float32)
    terms = _rpn_model()._rpn_losses(jnp.asarray(scores), jnp.asarray(deltas), jnp.asarray(RPN_GT),
                                     jnp.asarray(RPN_GT_VALID), jax.random.key(0))
    used = POSITIVE + NEGATIVE
    labels = np.isin(np.arange(7), POSITIVE).astype(np.float64)
    expected_cls = _bce(scores[used].astype(np.float64), labels[used]).sum() / len(used)
    targets = _np_encode(RPN_GT[[MATCH[a] for a in POSITIVE]], RPN_ANCHORS[POSITIVE])
    expected_box = _smooth_l1(deltas[POSITIVE] - targets, 1 / 9).sum() / len(used)  # over all sampled
    assert float(terms["rpn_cls"]) == pytest.approx(expected_cls, rel=1e-5)
    assert float(terms["rpn_box"]) == pytest.approx(expected_box, rel=1e-5)

    # an image without ground truth: every anchor is a negative, and there is no box loss
    empty = _rpn_model()._rpn_losses(jnp.asarray(scores), jnp.asarray(deltas), jnp.asarray(RPN_GT),
                                     jnp.zeros(4, bool), jax.random.key(0))
    assert float(empty["rpn_cls"]) == pytest.approx(_bce(scores.astype(np.float64), 0.0).mean(), rel=1e-5)
    assert float(empty["rpn_box"]) == 0.0


def test_rpn_sampling_takes_half_the_sample_from_positives_at_most():
    """rpn_samples=4: 2 of the 3 positives and 2 negatives. Every positive's deltas are 1 off its
    targets in each coordinate, so the box loss counts how many positives were sampled."""
    targets = np.zeros((7, 4), np.float32)
    targets[POSITIVE] = _np_encode(RPN_GT[[MATCH[a] for a in POSITIVE]], RPN_ANCHORS[POSITIVE])
    model = _rpn_model(rpn_samples=4)
    per_positive = 4 * _smooth_l1(np.float64(1.0), 1 / 9)
    for seed in range(3):
        terms = model._rpn_losses(jnp.zeros(7), jnp.asarray(targets + 1.0), jnp.asarray(RPN_GT),
                                  jnp.asarray(RPN_GT_VALID), jax.random.key(seed))
        assert float(terms["rpn_cls"]) == pytest.approx(np.log(2), rel=1e-5)
        assert float(terms["rpn_box"]) == pytest.approx(2 * per_positive / 4, rel=1e-5)


def test_proposals_drop_boxes_under_4_square_pixels_after_clipping_whatever_their_score():
    anchors = np.asarray([[0, 0, 2, 2],             # area exactly 4: kept
                          [4, 4, 6, 5.99],          # 3.98: dropped
                          [-6, -6, 1.5, 1.5],       # 56 before clipping, 2.25 after: dropped
                          [10, 10, 20, 20],
                          [10, 10, 20, 21]], np.float32)  # IoU 10/11 with the one before: suppressed
    model = Detector((32, 32, 1), 10, channels=8, rngs=nnx.Rngs(0))
    model.anchors.value = jnp.asarray(anchors)
    scores = jnp.asarray([1.0, 9.0, 8.0, 2.0, 3.0])  # the small boxes score highest
    boxes, valid = model.proposals(scores, jnp.zeros((5, 4)), 5)
    np.testing.assert_array_equal(valid, [True, True, False, False, False])
    np.testing.assert_allclose(np.asarray(boxes)[:2], [[10, 10, 20, 21], [0, 0, 2, 2]], atol=1e-5)


# One image's RoI-head scene, on given proposals (so no RPN): ground truth g0 (class 3), g1 (class 7)
# and a padding slot. Proposals: p0 = g0 (IoU 1), p1 exactly 0.5 with g1 (foreground), p2 0.4 and
# p3 0 (background), p4 and p5 padding. The RoIs are the proposals and then the ground truth.
HEAD_GT = np.asarray([[2, 2, 12, 12], [16, 4, 26, 14], [0, 0, 0, 0]], np.float32)
HEAD_CLASSES, HEAD_GT_VALID = np.asarray([3, 7, 0], np.int32), np.asarray([1, 1, 0], bool)
HEAD_PROPOSALS = np.asarray([[2, 2, 12, 12], [16, 4, 21, 14], [16, 4, 20, 14], [0, 20, 8, 30],
                             [2, 2, 12, 12], [0, 0, 0, 0]], np.float32)
HEAD_PROPOSAL_VALID = np.asarray([1, 1, 1, 1, 0, 0], bool)
FOREGROUND = {0: 0, 1: 1, 6: 0, 7: 1}   # RoI -> its ground truth
BACKGROUND = [2, 3]
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)    # Fast R-CNN's scaling of the head's targets


def _head_model(**kwargs):
    model = Detector((32, 32, 1), 10, channels=8, proposal_source="given", rngs=nnx.Rngs(0), **kwargs)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=11).astype(np.float32)
    deltas = (0.5 * rng.normal(size=(10, 4))).astype(np.float32)
    _fix_head(model, logits, deltas)
    return model, logits.astype(np.float64), deltas.astype(np.float64)


def _head_losses(model, gt_valid=HEAD_GT_VALID, proposal_valid=HEAD_PROPOSAL_VALID, key=0):
    feats = model.features(jnp.zeros((1, 32, 32, 1)))[0]
    return model._losses(feats, (jnp.asarray(HEAD_PROPOSALS), jnp.asarray(proposal_valid)),
                         jnp.asarray(HEAD_GT), jnp.asarray(HEAD_CLASSES), jnp.asarray(gt_valid),
                         jax.random.key(key))


def test_the_heads_labels_targets_and_normalizations_by_hand():
    rois = np.concatenate([HEAD_PROPOSALS, HEAD_GT])
    overlaps = np.asarray(detection.iou(jnp.asarray(rois), jnp.asarray(HEAD_GT)))
    assert overlaps[1, 1] == np.float32(0.5) and overlaps[2, 1] == np.float32(0.4)
    model, logits, deltas = _head_model()
    terms, (mask_rois, mask_fg, mask_cls, mask_match) = _head_losses(model)
    log_p = _log_softmax(logits)
    labels = {r: HEAD_CLASSES[g] + 1 for r, g in FOREGROUND.items()} | {r: 0 for r in BACKGROUND}
    assert float(terms["cls"]) == pytest.approx(-np.mean([log_p[k] for k in labels.values()]), rel=1e-5)
    fg = list(FOREGROUND)
    gt = HEAD_GT[list(FOREGROUND.values())]
    own = deltas[HEAD_CLASSES[list(FOREGROUND.values())]]
    reg = _smooth_l1(own - _np_encode(gt, rois[fg], BOX_WEIGHTS), 1.0).sum()
    assert float(terms["box"]) == pytest.approx(reg / len(labels), rel=1e-5)  # over all sampled RoIs
    # the mask branch gets the foreground RoIs first, each with its class and instance
    mask_fg = np.asarray(mask_fg)
    assert mask_fg.sum() == 4 and mask_fg[:4].all()
    got = sorted(zip(map(tuple, np.asarray(mask_rois)[:4].tolist()), np.asarray(mask_cls)[:4].tolist(),
                     np.asarray(mask_match)[:4].tolist(), strict=True))
    want = sorted((tuple(rois[r].tolist()), int(HEAD_CLASSES[g]), g) for r, g in FOREGROUND.items())
    assert got == want


def test_the_head_samples_a_quarter_foreground_at_most_and_nothing_sampled_costs_nothing():
    """roi_samples=8: 2 of the 4 foreground RoIs and both background ones. Class logits equal for
    classes 3 and 7 make each sampled foreground RoI cost the same, whichever were drawn."""
    model, logits, _ = _head_model(roi_samples=8)
    logits[8] = logits[4]
    _fix_head(model, logits, np.zeros((10, 4)))
    log_p = _log_softmax(logits)
    for seed in range(3):
        terms, (_, mask_fg, _, _) = _head_losses(model, key=seed)
        assert float(terms["cls"]) == pytest.approx(-(2 * log_p[4] + 2 * log_p[0]) / 4, rel=1e-5)
        assert int(np.asarray(mask_fg).sum()) == 2
    # no ground truth and no real proposal: nothing is sampled, and both losses are 0, not 0 / 0
    terms, _ = _head_losses(model, gt_valid=np.zeros(3, bool), proposal_valid=np.zeros(6, bool))
    assert float(terms["cls"]) == 0.0 and float(terms["box"]) == 0.0


def test_inference_scores_each_roi_by_its_own_softmax_and_decodes_with_the_heads_weights():
    """Fixed head outputs: every real proposal is detected as argmax over the classes, with that
    class's softmax probability and its deltas decoded with Fast R-CNN's weights; the slots left
    over are zero boxes of score 0."""
    model, logits, deltas = _head_model(detections=5)
    proposals = np.asarray([[2, 2, 10, 10], [20, 2, 30, 10], [4, 16, 12, 28], [0, 0, 0, 0]], np.float32)
    valid = np.asarray([1, 1, 1, 0], bool)
    out = jax.tree.map(np.asarray, model(jnp.zeros((1, 32, 32, 1)), proposals=jnp.asarray(proposals[None]),
                                         proposal_valid=jnp.asarray(valid[None])))
    probs = np.exp(_log_softmax(logits))[1:]
    k = int(np.argmax(probs))
    expected = np.clip(_np_decode(np.tile(deltas[k], (3, 1)), proposals[:3], BOX_WEIGHTS), 0, 32)
    found = out["scores"][0] > 0
    assert found.tolist() == [True, True, True, False, False]
    np.testing.assert_allclose(out["scores"][0][found], probs[k], rtol=1e-5)
    assert (out["classes"][0][found] == k).all()
    np.testing.assert_allclose(sorted(out["boxes"][0][found].tolist()), sorted(expected.tolist()), atol=1e-4)
    np.testing.assert_array_equal(out["boxes"][0][~found], 0.0)
    np.testing.assert_array_equal(out["scores"][0][~found], 0.0)


def test_the_roi_operator_is_the_one_named_at_the_feature_maps_scale():
    feats = jax.random.normal(jax.random.key(0), (4, 4, 8))
    rois = jnp.asarray([[3.3, 5.1, 20.7, 27.9], [0.0, 0.0, 31.0, 31.0]])
    for op, reference in (("pool", detection.roi_pool), ("align", detection.roi_align)):
        model = Detector((32, 32, 1), 10, channels=8, roi_op=op, rngs=nnx.Rngs(0))
        np.testing.assert_array_equal(model.pooled(feats, rois, 7), reference(feats, rois, (7, 7), 1 / 8))
    assert not np.allclose(detection.roi_pool(feats, rois, (7, 7), 1 / 8),
                           detection.roi_align(feats, rois, (7, 7), 1 / 8))


def test_the_defaults_are_the_papers_scaled_to_64_pixel_scenes():
    model = Detector((64, 64, 1), 10, rngs=nnx.Rngs(0))
    assert (model.stride, model.pre_nms, model.train_proposals, model.test_proposals, model.detections,
            model.rpn_samples, model.roi_samples, model.mask_rois) == (8, 200, 64, 50, 20, 64, 64, 16)
    anchors = np.asarray(model.anchors[...])
    assert anchors.shape == (8 * 8 * 6, 4)
    # the first cell's anchors: centre (4, 4); sizes 16 and 32, then height / width 0.5, 1 and 2
    wh = [(s / np.sqrt(r), s * np.sqrt(r)) for s in (16.0, 32.0) for r in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(anchors[:6], [[4 - w / 2, 4 - h / 2, 4 + w / 2, 4 + h / 2] for w, h in wh],
                               rtol=1e-6)
    assert model.rpn_score.kernel[...].shape == (1, 1, 64, 6)
    delta = np.asarray(model.rpn_delta.kernel[...])
    assert delta.shape == (1, 1, 64, 24) and 0.009 < delta.std() < 0.011
    box = np.asarray(model.box.kernel[...])
    assert box.shape == (256, 40) and 0.0009 < box.std() < 0.0011


def _mask_scene():
    """Instance 0 fills the box (4, 8, 24, 20), instance 1 its left half only, instance 2 is empty."""
    masks = np.zeros((1, 3, 32, 32), np.uint8)
    masks[0, 0, 8:20, 4:24] = 1
    masks[0, 1, 8:20, 4:14] = 1
    return jnp.asarray(masks), jnp.asarray([[4.0, 8.0, 24.0, 20.0]])


def _mask_loss(model, masks, box, fg, cls, instance):
    """The mask loss of RoIs that are all `box`, with foreground weights fg, classes and instances."""
    rois = jnp.tile(box[:, None], (1, len(fg), 1))
    return float(_jitted_mask_loss(model, masks, rois, jnp.asarray([fg], jnp.float32), jnp.asarray([cls]),
                                   jnp.asarray([instance])))


@nnx.jit
def _jitted_mask_loss(model, masks, rois, fg, cls, instance):  # eager, the mask head takes ~1 min
    return model._mask_loss(model.features(jnp.zeros((1, 32, 32, 1))), masks, rois, fg, cls, instance)


def test_the_mask_loss_is_a_mean_over_foreground_rois_for_both_losses():
    masks, box = _mask_scene()
    sigmoid = Detector((32, 32, 1), 10, masks=True, channels=16, mask_channels=8, rngs=nnx.Rngs(0))
    constant_mask_head(sigmoid, jnp.full(10, 20.0))
    # three RoIs in every call (one program): those of weight 0 must not count
    whole, half = (_mask_loss(sigmoid, masks, box, [1, 0, 0], [3, 3, 3], [k, 1 - k, 1 - k]) for k in (0, 1))
    assert whole < 1e-3 and 9 < half < 11
    both = _mask_loss(sigmoid, masks, box, [1, 1, 0], [3, 3, 3], [0, 1, 1])
    assert both == pytest.approx((whole + half) / 2, rel=1e-5)
    # no foreground: 0, not 0 / 0
    assert _mask_loss(sigmoid, masks, box, [0, 0, 0], [3, 3, 3], [0, 1, 1]) == 0.0
    # targets are the cut mask at 1/2 and up: shifted half a pixel, the RoI's 14th column of 28 samples
    # the instance's edge at exactly 1/2 (13 columns 1, then 1/2, then 0), so half the targets are 1
    edge = np.zeros((1, 3, 32, 32), np.uint8)
    edge[0, 0, :, :14] = 1
    shifted = _mask_loss(sigmoid, jnp.asarray(edge), jnp.asarray([[0.5, 0.0, 28.5, 28.0]]), [1, 0, 0],
                         [3, 3, 3], [0, 0, 0])
    assert shifted == pytest.approx(20.0 / 2, rel=1e-5)

    # softmax over the classes and background, logits fixed per channel: a RoI whose targets are all
    # 1 costs -log p(its class + 1), one whose targets are all 0 costs -log p(background)
    softmax = Detector((32, 32, 1), 10, masks=True, mask_loss="softmax", channels=16, mask_channels=8,
                       rngs=nnx.Rngs(0))
    channel_logits = np.linspace(-2.0, 3.0, 11)
    constant_mask_head(softmax, jnp.asarray(channel_logits, jnp.float32))
    log_p = _log_softmax(channel_logits)
    got = _mask_loss(softmax, masks, box, [1, 1, 0], [3, 6, 6], [0, 2, 0])
    assert got == pytest.approx(-(log_p[4] + log_p[0]) / 2, rel=1e-5)


def test_masks_are_pasted_from_each_detections_own_class_channel_at_probability_one_half_and_up():
    """Two detections, of classes 2 and 5; the mask logits fixed per channel. Sigmoid: class 2's
    logit 0 (probability exactly 1/2, which is in), class 5's -20. Softmax: class 2's channel +20
    (background and the rest 0). Class 2's detection gets exactly the pixels whose centres lie in
    its box, class 5's none. (The first box is 28 pixels wide and high, as the mask: each pixel
    samples a mask cell's centre, so a probability of 1/2 is pasted exactly.)"""
    out = {"classes": jnp.asarray([[2, 5]]), "scores": jnp.asarray([[0.9, 0.8]]),
           "boxes": jnp.asarray([[[2.0, 3.0, 30.0, 31.0], [2.0, 2.0, 10.0, 30.0]]])}
    expected = np.zeros((32, 32), np.uint8)
    expected[3:31, 2:30] = 1  # the pixels whose centres lie in the first box
    for mask_loss, logits in (("sigmoid", jnp.zeros(10).at[5].set(-20.0)),
                              ("softmax", jnp.zeros(11).at[3].set(20.0))):  # channel 0: background
        model = Detector((32, 32, 1), 10, masks=True, mask_loss=mask_loss, channels=16, mask_channels=8,
                         rngs=nnx.Rngs(0))
        constant_mask_head(model, logits)
        masks = np.asarray(nnx.jit(lambda m, o: m._paste_masks(m.features(jnp.zeros((1, 32, 32, 1))), o))(
            model, out))
        np.testing.assert_array_equal(masks[0, 0], expected)
        assert not masks[0, 1].any()


def test_evaluation_losses_are_each_images_losses_under_the_fixed_key_of_seed_0():
    """DetectionLoss evaluates every image alone with jax.random.key(eval_seed), 0 by default; with
    2 foreground RoIs sampled of 4 (Fast R-CNN on given proposals, to keep the program small), seed 1
    samples others."""
    from repro.models.rcnn import DetectionLoss

    model, _, _ = _head_model(roi_samples=8)
    model.cls.kernel[...] = jax.random.normal(jax.random.key(4), model.cls.kernel[...].shape)  # RoIs differ
    batch = {k: jnp.asarray(np.stack([v, v[::-1]]))
             for k, v in (("boxes", HEAD_GT), ("classes", HEAD_CLASSES), ("valid", HEAD_GT_VALID),
                          ("proposals", HEAD_PROPOSALS), ("proposal_valid", HEAD_PROPOSAL_VALID))}
    batch["image"] = jax.random.uniform(jax.random.key(3), (2, 32, 32, 1))

    @nnx.jit  # one program for all of it
    def evaluate(m, b):
        alone = [m.losses({k: v[i:i + 1] for k, v in b.items()}, jax.random.key(0)) for i in range(2)]
        return (DetectionLoss().per_example(m, b, train=False), alone,
                DetectionLoss(eval_seed=1).per_example(m, b, train=False))

    per_image, alone, seed_1 = evaluate(model, batch)
    for i in range(2):
        for name, value in alone[i].items():
            assert float(per_image[name][i]) == pytest.approx(float(value), rel=1e-5), name
    assert not np.allclose(seed_1["cls"], per_image["cls"])  # the scene tells seed 0 from seed 1


def test_the_mask_head_sees_14x14_roi_features_in_training_and_at_inference(monkeypatch):
    """The masks pasted at test time come from the same 14x14 RoI features (28x28 masks) the mask
    loss trains on (shapes traced only, nothing run)."""
    model = Detector((32, 32, 1), 10, masks=True, channels=16, mask_channels=8, rngs=nnx.Rngs(0))
    seen, head = [], Detector.mask_logits

    def spy(self, pooled):
        seen.append(pooled.shape)
        return head(self, pooled)

    monkeypatch.setattr(Detector, "mask_logits", spy)
    feats = jax.ShapeDtypeStruct((1, 4, 4, 16), jnp.float32)
    out = {"classes": jnp.zeros((1, 3), jnp.int32), "scores": jnp.ones((1, 3)), "boxes": jnp.ones((1, 3, 4))}
    assert jax.eval_shape(lambda f: model._paste_masks(f, out), feats).shape == (1, 3, 32, 32)
    masks, _ = _mask_scene()
    two = jnp.zeros((1, 2), jnp.int32)
    jax.eval_shape(lambda f: model._mask_loss(f, masks, jnp.ones((1, 2, 4)), jnp.ones((1, 2)), two, two),
                   feats)
    assert seen == [(3, 14, 14, 16), (2, 14, 14, 16)]


def test_nms_runs_per_class_so_overlapping_boxes_of_two_classes_are_both_kept(monkeypatch):
    """Head outputs fixed per RoI: two identical boxes of classes 2 and 7 are both detected; a third,
    of class 2 again and overlapping the first by IoU 0.88, is suppressed by it."""
    probabilities = np.full((4, 11), 0.01)
    for roi, (k, p) in enumerate([(2, 0.9), (7, 0.8), (2, 0.7), (0, 0.9)]):
        probabilities[roi, k + 1] = p
    probabilities /= probabilities.sum(1, keepdims=True)
    monkeypatch.setattr(Detector, "head", lambda self, feats, rois: (jnp.log(jnp.asarray(probabilities,
                                                                                      jnp.float32)),
                                                                     jnp.zeros((len(rois), 10, 4))))
    model, _, _ = _head_model(detections=4)
    proposals = jnp.asarray([[[4, 4, 20, 20], [4, 4, 20, 20], [5, 4, 21, 20], [0, 0, 0, 0]]], jnp.float32)
    out = jax.tree.map(np.asarray, model(jnp.zeros((1, 32, 32, 1)), proposals=proposals,
                                         proposal_valid=jnp.asarray([[1, 1, 1, 0]])))
    kept = out["scores"][0] > 0
    assert kept.tolist() == [True, True, False, False]
    assert out["classes"][0][kept].tolist() == [2, 7]
    np.testing.assert_allclose(out["scores"][0][kept], probabilities[[0, 1], [3, 8]], rtol=1e-5)
    np.testing.assert_allclose(out["boxes"][0][kept], [[4, 4, 20, 20]] * 2, atol=1e-5)
