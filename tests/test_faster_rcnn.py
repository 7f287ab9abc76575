"""Faster R-CNN's pieces (experiments/faster_rcnn_mnist): selective search as data, an RPN with a
backbone of its own, and a short real-data run of the experiment's three variants."""

import jax
import numpy as np
import pytest
from flax import nnx

from tests.conftest import compose, needs_real_mnist

pytest.importorskip("cv2")


def _picture():
    """Three bright rectangles on black: the regions selective search is made to find."""
    image = np.zeros((48, 48, 1), np.uint8)
    image[4:20, 6:18] = 255
    image[26:44, 24:40] = 180
    image[8:16, 30:44] = 90
    return image


def test_selective_search_is_a_function_of_the_image_and_finds_its_regions():
    from repro.data.selective_search import SelectiveSearch

    search = SelectiveSearch()
    boxes = search.boxes(_picture())
    again = search.boxes(_picture())  # OpenCV ranks at random: the sorted set is what is kept
    np.testing.assert_array_equal(boxes, again)
    assert np.all(np.lexsort(boxes.T[::-1]) == np.arange(len(boxes)))
    assert np.all((boxes[:, :2] >= 0) & (boxes[:, 2:] <= 48) & (boxes[:, 2:] > boxes[:, :2]))
    from repro.detection import iou
    best = np.asarray(iou(np.asarray([[6, 4, 18, 20], [24, 26, 40, 44], [30, 8, 44, 16]], np.float32),
                          boxes)).max(1)
    assert np.all(best >= 0.7), best  # each rectangle has a proposal around it


def test_selective_search_pads_and_cuts_to_its_smallest_boxes():
    from repro.data.selective_search import SelectiveSearch

    images = np.stack([_picture(), np.zeros((48, 48, 1), np.uint8), _picture()[::-1]])
    every = [SelectiveSearch().boxes(im) for im in images]
    p = min(len(b) for b in every if len(b) > 1) - 1
    boxes, valid, cut = SelectiveSearch(max_proposals=p)(images)
    assert boxes.shape == (3, p, 4) and valid.shape == (3, p)
    assert cut == sum(len(b) > p for b in every) >= 2
    for b, full, v in zip(boxes, every, valid, strict=True):
        kept = b[v > 0]
        assert len(kept) == min(p, len(full)) and not b[v == 0].any()
        if len(full) > p:  # the p smallest, in the sorted order
            area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
            assert area(kept).max() <= np.sort(area(full))[p]
            assert np.all(np.lexsort(kept.T[::-1]) == np.arange(len(kept)))
    with pytest.raises(ValueError, match="out of range"):
        SelectiveSearch(upsample=0)


def test_scenes_carry_their_proposals_as_declared_box_fields():
    from repro.data.dataset import Dataset
    from repro.data.scenes import MnistScenes

    rng = np.random.default_rng(0)
    digits = {"image": (rng.random((40, 28, 28, 1)) * 255).astype(np.uint8),
              "label": (np.arange(40) % 10).astype(np.int32)}
    mnist = Dataset("mnist", {"train": digits, "test": digits}, "made here")
    plain = MnistScenes(6, 4)(mnist)
    with_ss = MnistScenes(6, 4, proposals="selective_search")(mnist)
    assert "proposals" not in plain.splits["train"]
    declared = with_ss.fields["proposals"]
    assert declared.kind == "boxes" and declared.valid == "proposal_valid"
    test = with_ss.splits["test"]
    assert test["proposals"].shape == (4, 200, 4) and test["proposal_valid"].sum() > 4
    for k in plain.splits["test"]:
        np.testing.assert_array_equal(test[k], plain.splits["test"][k])  # the scenes themselves unchanged
    assert with_ss.files["mnist_scenes"]["sha256"] != plain.files["mnist_scenes"]["sha256"]
    from repro.data.selective_search import SelectiveSearch
    search = SelectiveSearch()
    cut = sum(search(plain.splits[split]["image"])[2] for split in ("train", "test"))
    mean = (with_ss.splits["train"]["proposal_valid"].sum() + test["proposal_valid"].sum()) / 10
    described = f"selective-search proposals ({mean:.1f} per scene on average, {cut} scenes cut to 200)"
    assert described in with_ss.source
    with pytest.raises(ValueError, match="one of"):
        MnistScenes(6, 4, proposals="edge_boxes")


def test_an_unshared_rpn_trains_its_own_backbone_and_a_shared_one_the_detectors():
    from repro.models.rcnn import Detector

    batch = {"image": jax.random.uniform(jax.random.key(0), (2, 32, 32, 1)),
             "boxes": np.asarray([[[2, 2, 14, 16], [16, 12, 30, 30]]] * 2, np.float32),
             "classes": np.asarray([[1, 2], [3, 4]], np.int32), "valid": np.ones((2, 2), np.uint8)}

    def rpn_grads(model):
        def loss(m):
            terms = m.losses(batch, jax.random.key(0))
            return terms["rpn_cls"] + terms["rpn_box"]
        return nnx.jit(nnx.grad(loss))(model)

    shared = Detector((32, 32, 1), 10, channels=16, rngs=nnx.Rngs(0))
    unshared = Detector((32, 32, 1), 10, channels=16, shared_backbone=False, rngs=nnx.Rngs(0))
    assert not hasattr(shared, "rpn_backbone")
    same = jax.tree.map(np.array_equal, nnx.state(shared.backbone, nnx.Param),
                        nnx.state(unshared.backbone, nnx.Param))
    assert all(jax.tree.leaves(same))  # the detector's own weights are drawn as before
    norm = lambda tree: float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree.leaves(tree)))  # noqa: E731
    g_shared, g_unshared = rpn_grads(shared), rpn_grads(unshared)
    assert norm(nnx.state(g_shared.backbone)) > 0
    assert norm(nnx.state(g_unshared.backbone)) == 0 and norm(nnx.state(g_unshared.rpn_backbone)) > 0
    out = jax.jit(lambda m, x: m(x))(unshared, batch["image"])
    assert out["boxes"].shape == (2, unshared.detections, 4)


@needs_real_mnist()
def test_a_short_real_data_run_of_rpn_selective_search_and_unshared(run_overrides, tmp_path):
    from experiments.faster_rcnn_mnist.figures import make_figures
    from repro.run import run

    overrides = [o for o in run_overrides if not o.startswith(("data.dir", "data.allow_partial"))]
    small = ["data.derive.train_scenes=16", "data.derive.test_scenes=6", "train.steps=4",
             "train.chunk_steps=2", "train.eval_every=2", "train.batch_size=4", "train.eval_batch_size=3",
             "train.checkpoint_every=0", "model.train_proposals=16", "model.test_proposals=16"]
    variants = {"rpn": [], "ss": ["model.proposal_source=given", "data.derive.proposals=selective_search"],
                "rpn_unshared": ["model.shared_backbone=false"]}
    runs = {name: run(compose(["experiment=faster_rcnn_mnist", *overrides, *small, *extra]))
            for name, extra in variants.items()}
    for name, result in runs.items():
        final = result["final"]
        assert result["data"]["splits"] == {"train": 16, "test": 6}
        measured = ("test/box_ap", "test/box_ap50", *(f"test/proposal_recall_iou{t}" for t in (50, 90)))
        assert all(0.0 <= final[k] <= 1.0 for k in measured)
        assert final["test/proposal_recall_iou50"] >= final["test/proposal_recall_iou70"] >= \
            final["test/proposal_recall_iou90"]
        assert ("train/rpn_cls" in final) == (name != "ss")
    ss = runs["ss"]
    assert ss["data"]["sha256"]["mnist_scenes"] != runs["rpn"]["data"]["sha256"]["mnist_scenes"]
    assert runs["ss"]["final"]["test/proposals_per_image"] > 5   # selective search's, not the RPN's 16
    assert runs["rpn"]["final"]["test/proposals_per_image"] <= 16
    assert runs["rpn_unshared"]["facts"]["parameters"] > runs["rpn"]["facts"]["parameters"]
    drawn = make_figures({name: [result] for name, result in runs.items()}, tmp_path, tmp_path / "figures")
    assert [p.name for _, p in drawn] == ["recall_and_ap_vs_iou.png"] and drawn[0][1].stat().st_size > 10_000
    assert make_figures({"rpn": []}, tmp_path, tmp_path / "none") == []
