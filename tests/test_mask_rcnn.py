"""The Mask R-CNN ablation experiment (experiments/mask_rcnn_mnist): its config runs for real on
MNIST scenes, scores boxes and masks with COCO's evaluator, derives its scene panel from the kept
weights and draws its figures; its claims are read as the spec states them."""

import pytest

from tests.conftest import REAL_DATA, compose, needs_real_mnist


@needs_real_mnist()
def test_a_short_real_data_run_scores_boxes_and_masks_and_derives_its_panel(run_overrides, tmp_path):
    from experiments.mask_rcnn_mnist import panel
    from experiments.mask_rcnn_mnist.figures import make_figures
    from repro.run import run

    overrides = [o for o in run_overrides if not o.startswith(("data.dir", "data.allow_partial"))]
    small = ["data.derive.train_scenes=16", "data.derive.test_scenes=6", "train.steps=4",
             "train.chunk_steps=2", "train.eval_every=2", "train.batch_size=4", "train.eval_batch_size=3",
             "train.checkpoint_every=0", "model.train_proposals=16", "model.test_proposals=16",
             "model.mask_rois=4"]
    results = tmp_path / "results"
    runs = [run(compose(["experiment=mask_rcnn_mnist", *overrides, *small, *extra]))
            for extra in ([], ["model.roi_op=pool", "model.stride=16"])]
    for result in runs:
        final = result["final"]
        assert result["data"]["splits"] == {"train": 16, "test": 6}
        assert len(result["data"]["sha256"]["mnist_scenes"]) == 64  # the generated arrays, named
        for kind in ("box", "mask"):
            curve = [final[f"test/{kind}_ap_iou{t}"] for t in range(50, 100, 5)]
            assert all(0.0 <= v <= 1.0 for v in curve)
            assert final[f"test/{kind}_ap50"] == pytest.approx(curve[0])
        assert [r["step"] for r in result["history"] if "test/mask_ap" in r] == [0, 2, 4]
    assert runs[1]["config"]["model"]["roi_op"] == "pool" and runs[0]["config"]["model"]["roi_op"] == "align"

    derived = panel.update(results, str(REAL_DATA), log=lambda _: None)
    assert set(derived) == {runs[0]["name"]}  # the stride-16 run is not in the panel
    scene = derived[runs[0]["name"]]["scenes"][0]
    assert len(derived[runs[0]["name"]]["scenes"]) == panel.SHOW
    assert len(scene["truth"]["boxes"]) == len(scene["truth"]["classes"]) >= 1
    assert max(max(row) for row in scene["truth"]["masks"]) == len(scene["truth"]["boxes"])
    drawn = make_figures({"align_s8": [runs[0]], "pool_s16": [runs[1]]}, tmp_path,
                         results / "mask_rcnn_mnist" / "figures")
    assert [p.name for _, p in drawn] == ["ap_vs_iou.png", "panel.png"]
    assert all(p.stat().st_size > 10_000 for _, p in drawn)
