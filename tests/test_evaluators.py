"""Host-side evaluators: COCO AP by pycocotools, and a detection-shaped data set flowing through
the loop (fields, augmentation, a jitted predict, a host compute, a verdict row)."""

import contextlib
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import SCENE_HW, detection_scenes
from flax import nnx

from repro import coco, verdicts
from repro.data.fields import Field
from repro.data.transforms import Normalize, RandomCropFlip, Transforms
from repro.loop import Trainer, seed_keys, seed_record

FIELDS = {"image": Field("image"), "boxes": Field("boxes", valid="valid"),
          "masks": Field("masks", valid="valid"), "classes": Field("classes", valid="valid"),
          "valid": Field("valid")}


def perfect(examples):
    return {"boxes": examples["boxes"], "scores": examples["valid"], "classes": examples["classes"],
            "masks": examples["masks"]}


@pytest.mark.parametrize("iou_type, key", [("bbox", "box_ap"), ("segm", "mask_ap")])
def test_perfect_detections_have_coco_ap_one(iou_type, key):
    examples = detection_scenes(n=8)
    out = coco.CocoAP(iou_type=iou_type).compute(perfect(examples), examples)
    assert out[key] == pytest.approx(1.0) and out[key + "50"] == pytest.approx(1.0)


def test_boxes_and_masks_scored_together_equal_each_scored_alone():
    examples = detection_scenes(n=6, seed=1)
    pred = perfect(examples)
    pred["boxes"] = examples["boxes"] + np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    pred["masks"] = np.roll(examples["masks"], 2, axis=-1)  # masks 2 px right
    both = coco.CocoAP(iou_type=["bbox", "segm"]).compute(pred, examples)
    alone = {**coco.CocoAP(iou_type="bbox").compute(pred, examples),
             **coco.CocoAP(iou_type="segm").compute(pred, examples)}
    assert both == alone and len(both) == 2 * (3 + 10)
    assert both["mask_ap"] != both["box_ap"]  # each scored on its own kind
    with pytest.raises(ValueError, match="iou_type 'keypoints'"):
        coco.CocoAP(iou_type=["bbox", "keypoints"])


def test_shifted_boxes_score_what_pycocotools_gives_directly(tmp_path):
    """Every predicted box 1 px right of its truth, scores descending: our evaluator equals
    pycocotools run by hand on COCO JSON files written here, and lies strictly between 0 and 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    examples = detection_scenes(n=10, seed=3)
    pred = perfect(examples)
    pred["boxes"] = examples["boxes"] + np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    pred["scores"] = examples["valid"] * np.linspace(1.0, 0.5, 30).reshape(10, 3)
    ours = coco.CocoAP().compute(pred, examples)

    gt = {"images": [{"id": i, "height": 12, "width": 16} for i in range(10)], "annotations": [],
          "categories": [{"id": 3}, {"id": 7}]}
    results = []
    for i in range(10):
        for k in range(3):
            if examples["valid"][i, k]:
                x0, y0, x1, y1 = examples["boxes"][i, k].tolist()
                gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i,
                                          "category_id": int(examples["classes"][i, k]),
                                          "bbox": [x0, y0, x1 - x0, y1 - y0],
                                          "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
                results.append({"image_id": i, "category_id": int(examples["classes"][i, k]),
                                "bbox": [x0 + 1, y0, x1 - x0, y1 - y0],
                                "score": float(pred["scores"][i, k])})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(tmp_path / "gt.json"))
        direct = COCOeval(truth, truth.loadRes(str(tmp_path / "dt.json")), "bbox")
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert ours["box_ap"] == pytest.approx(direct.stats[0], abs=1e-12)
    assert ours["box_ap50"] == pytest.approx(direct.stats[1], abs=1e-12)
    assert ours["box_ap75"] == pytest.approx(direct.stats[2], abs=1e-12)
    assert 0.0 < ours["box_ap"] < 1.0
    # the AP-vs-IoU curve: its 10 points average to AP, its ends are AP50 and a stricter AP
    curve = [ours[f"box_ap_iou{t}"] for t in range(50, 100, 5)]
    assert np.mean(curve) == pytest.approx(ours["box_ap"], abs=1e-12)
    assert curve[0] == pytest.approx(ours["box_ap50"]) and curve[5] == pytest.approx(ours["box_ap75"])
    assert curve[-1] < curve[0]


def test_no_detections_is_ap_zero():
    examples = detection_scenes(n=3)
    pred = {**perfect(examples), "scores": np.zeros_like(examples["valid"])}
    assert coco.CocoAP().compute(pred, examples)["box_ap"] == 0.0
    stats, per_iou = coco.average_precision(coco.ground_truth(examples), [])
    np.testing.assert_array_equal(stats, np.zeros(12))   # all 12 of COCOeval's statistics
    np.testing.assert_array_equal(per_iou, np.zeros(10))  # and each IoU threshold's AP


def test_ground_truth_and_detections_are_cocos_json_by_hand():
    """The COCO dicts written out in full: annotation ids from 1 (pycocotools reads a matched id
    of 0 as no match), (x, y, w, h) boxes, areas (the box's, or the mask's pixel count), no crowd,
    only the classes of real instances; detections keep exactly the slots of positive score."""
    from pycocotools import mask as mask_utils

    examples = detection_scenes(n=3, seed=2)
    gt = coco.ground_truth(examples)
    assert gt["images"] == [{"id": i, "height": 12, "width": 16} for i in range(3)]
    assert gt["categories"] == [{"id": 3}, {"id": 7}]  # not the padding slots' class 0
    expected = []
    for i in range(3):
        for k in range(3):
            if examples["valid"][i, k]:
                x0, y0, x1, y1 = examples["boxes"][i, k].tolist()
                expected.append({"id": len(expected) + 1, "image_id": i,
                                 "category_id": int(examples["classes"][i, k]),
                                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                 "iscrowd": 0})
    assert gt["annotations"] == expected and len(expected) == 5
    segm = coco.ground_truth(examples, "segm")["annotations"]
    real = [(i, k) for i in range(3) for k in range(3) if examples["valid"][i, k]]
    for ann, (i, k) in zip(segm, real, strict=True):
        np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]), examples["masks"][i, k])
        assert ann["area"] == float(examples["masks"][i, k].sum()) and ann["iscrowd"] == 0
    assert coco.ground_truth({k: v for k, v in examples.items() if k != "image"})["images"][0] == {
        "id": 0, "height": 0, "width": 0}

    pred = perfect(examples)
    pred["scores"] = np.array([[0.9, 0.0, 1e-6], [-0.5, 0.3, 0.0], [0.2, 0.0, 0.0]], np.float32)
    dets = coco.detections(pred)
    assert [(d["image_id"], d["category_id"]) for d in dets] == [(0, 3), (0, 0), (1, 7), (2, 3)]
    x0, y0, x1, y1 = examples["boxes"][1, 1].tolist()
    assert dets[2] == {"image_id": 1, "category_id": 7, "score": pytest.approx(0.3),
                       "bbox": [x0, y0, x1 - x0, y1 - y0]}
    masks = coco.detections(pred, "segm")
    assert "bbox" not in masks[2]
    np.testing.assert_array_equal(mask_utils.decode(masks[2]["segmentation"]), examples["masks"][1, 1])


def test_a_category_without_ground_truth_is_left_out_of_the_mean_as_cocoeval_does():
    """COCOeval marks a class with no ground truth -1 in its precision table; the AP at each IoU
    threshold averages the other classes only, as its own summary does."""
    examples = detection_scenes(n=10, seed=3)
    pred = perfect(examples)
    pred["boxes"] = examples["boxes"] + np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    pred["scores"] = examples["valid"] * np.linspace(1.0, 0.5, 30).reshape(10, 3)
    gt = coco.ground_truth(examples)
    stats, per_iou = coco.average_precision(gt, coco.detections(pred))
    extra = {**gt, "categories": gt["categories"] + [{"id": 5}]}
    stats_extra, per_iou_extra = coco.average_precision(extra, coco.detections(pred))
    np.testing.assert_array_equal(stats_extra, stats)
    np.testing.assert_array_equal(per_iou_extra, per_iou)
    assert 0.0 < per_iou[0] < 1.0 and per_iou[-1] < per_iou[0]


def test_the_ap_at_each_iou_reads_cocoevals_table_over_all_areas_at_100_detections():
    """A large box found exactly and a small one found 1 px off (IoU 0.82), each image's true
    detections ranked 12th and 13th behind 11 confident decoys: the AP at each IoU must come from
    COCOeval's 'all' area range and its 100-detection limit (the small range, or a limit of 10 or
    1, gives other numbers), so the 10 points average to AP and hold AP50 and AP75."""
    gt = {"images": [{"id": i, "height": 400, "width": 400} for i in range(2)], "annotations": [],
          "categories": [{"id": 1}]}
    results = []
    for i in range(2):
        for box, found in (([0, 0, 150, 150], [0, 0, 150, 150]), ([200, 200, 10, 10], [201, 200, 10, 10])):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": 1,
                                      "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
            results.append({"image_id": i, "category_id": 1, "bbox": found,
                            "score": 0.5 - 0.1 * len(results)})
        results += [{"image_id": i, "category_id": 1, "bbox": [300, 20 * j, 5, 5], "score": 0.9}
                    for j in range(11)]
    stats, per_iou = coco.average_precision(gt, results)
    assert np.mean(per_iou) == pytest.approx(stats[0], abs=1e-12)
    assert per_iou[0] == pytest.approx(stats[1], abs=1e-12)   # AP50
    assert per_iou[5] == pytest.approx(stats[2], abs=1e-12)   # AP75
    assert stats[3] != stats[5]  # the small and large objects score differently
    assert 0.0 < per_iou[-1] < per_iou[0] < 1.0


def test_no_ground_truth_at_all_is_ap_minus_one_as_cocoeval_reports_it():
    gt = {"images": [{"id": 0, "height": 8, "width": 8}], "annotations": [], "categories": [{"id": 1}]}
    found = [{"image_id": 0, "category_id": 1, "bbox": [1.0, 1.0, 3.0, 3.0], "score": 0.7}]
    stats, per_iou = coco.average_precision(gt, found)
    assert stats[0] == -1.0
    np.testing.assert_array_equal(per_iou, np.full(10, -1.0))


def test_the_evaluator_predicts_in_eval_mode_and_refuses_ragged_predictions():
    """A model whose boxes move in training mode: the evaluator must call it with train=False
    (Fast R-CNN's proposals passed through, when the batch has them)."""
    examples = detection_scenes(n=2)
    calls = []

    def model(images, train, **given):
        calls.append((train, sorted(given)))
        return {**perfect(examples), "boxes": examples["boxes"] + (5.0 if train else 0.0), "extra": 1}

    batch = {"image": examples["image"], "proposals": np.zeros((2, 4, 4)), "proposal_valid": np.ones((2, 4))}
    out = coco.CocoAP().predict(model, batch)
    assert calls == [(False, ["proposal_valid", "proposals"])] and set(out) == {"boxes", "scores", "classes"}
    np.testing.assert_array_equal(out["boxes"], examples["boxes"])
    assert set(coco.CocoAP(iou_type="segm").predict(model, {"image": examples["image"]})) == {
        "boxes", "scores", "classes", "masks"}
    ragged = {**perfect(examples), "scores": examples["valid"][:1]}  # scores of one image, boxes of two
    with pytest.raises(ValueError):
        coco.detections(ragged)


class PixelBoxDetector(nnx.Module):
    """Finds each of the two rectangles (pixel values 100 and 200) by its tight box, then adds a
    learned offset: AP is 1 at offset 0 and falls as the offset grows."""

    def __init__(self, offset: float, rngs=None):
        # A vector and a non-parameter variable: a seed axis mapped from the wrong place shows.
        self.offset = nnx.Param(jnp.full(4, offset, jnp.float32))
        self.nudge = nnx.Variable(jnp.zeros((1, 4), jnp.float32))

    def __call__(self, x, train=False, rngs=None):
        boxes, found = [], []
        for value in (100, 200):
            hit = jnp.abs(x[..., 0] * 255.0 - value) < 0.5  # [B, H, W]
            cols, rows = hit.any(1), hit.any(2)
            w, h = cols.shape[1], rows.shape[1]
            x0, x1 = jnp.argmax(cols, 1), w - jnp.argmax(cols[:, ::-1], 1)
            y0, y1 = jnp.argmax(rows, 1), h - jnp.argmax(rows[:, ::-1], 1)
            boxes.append(jnp.stack([x0, y0, x1, y1], -1).astype(jnp.float32))
            found.append(cols.any(1).astype(jnp.float32))
        boxes = jnp.stack(boxes, 1) + self.offset[...] + self.nudge[...]
        scores = jnp.stack(found, 1)
        classes = jnp.broadcast_to(jnp.array([3, 7]), scores.shape)
        return {"boxes": boxes, "scores": scores, "classes": classes}


class BoxRegression:
    """Squared error of each found box against its truth (slots 0 and 1), real instances only."""

    def per_example(self, model, batch, *, train, rngs=None):
        out = model(batch["image"], train=train)
        real = batch["valid"][:, :2] * out["scores"]
        err = (((out["boxes"] - batch["boxes"][:, :2]) ** 2).sum(-1) * real).sum(-1)
        return {"loss": err}

    def train_loss(self, model, batch, *, rngs=None):
        loss = self.per_example(model, batch, train=True)["loss"].mean()
        return loss, {"loss": loss}


@pytest.mark.parametrize("seeds, stacked", [([0], False), ([0], True), ([0, 1], True)],
                         ids=["one-run", "a-stack-of-one", "two-stacked"])
def test_a_detection_data_set_flows_through_augmentation_a_host_evaluator_and_a_verdict(seeds, stacked):
    """Train the offset from 2 px towards 0 on randomly cropped and flipped scenes: the boxes must
    move with the images for the loss to reach 0. AP is computed on the host at every evaluation
    (per seed when vmapped) and judged by a spec-style row."""
    train = detection_scenes(n=64, seed=1)
    test = detection_scenes(n=20, seed=2)
    transforms = Transforms([RandomCropFlip(pad=2), Normalize([0.0], [255.0])], FIELDS)
    models = [PixelBoxDetector(2.0 + s) for s in seeds]
    keys = [seed_keys(s) for s in seeds]
    trainer = Trainer(models if stacked else models[0], optax.sgd(0.08), BoxRegression(), transforms,
                      train, {"test": test}, batch_size=16, keys=keys if stacked else keys[0],
                      eval_batch_size=8, evaluators=[coco.CocoAP(split="test")])
    _, history, _ = trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=20)
    first, last = (np.atleast_1d(history[i]["test/box_ap"]) for i in (0, -1))
    assert [r["step"] for r in history if "test/box_ap" in r] == [0, 20, 40]
    assert (first < 0.5).all() and (last > 0.99).all(), (first, last)
    assert np.atleast_1d(history[-1]["test/loss"]).max() < 1e-3
    row = {"metric": "test/box_ap", "value": 1.0, "floor": 0.01, "description": "AP of the found boxes"}
    runs = [{"seed": s, "history": [seed_record(r, i) if stacked else r for r in history]}
            for i, s in enumerate(seeds)]
    judged = verdicts.judge(row, list(verdicts.values_by_seed(runs, row).values()))
    assert judged["within"] and judged["n"] == len(seeds)


def test_an_evaluator_of_a_split_that_is_not_evaluated_is_refused():
    data = detection_scenes(n=8)
    with pytest.raises(ValueError, match="reads split 'validation', which is not evaluated"):
        Trainer(PixelBoxDetector(0.0), optax.sgd(0.1), BoxRegression(), Transforms([], FIELDS), data,
                {"test": data}, batch_size=4, keys=seed_keys(0), evaluators=[coco.CocoAP("validation")])


def test_scene_shape_matches_the_detector():
    assert detection_scenes(n=1)["image"].shape[1:3] == SCENE_HW
    assert jax.device_get(PixelBoxDetector(0.0)(jnp.zeros((1, *SCENE_HW, 1)))["scores"]).sum() == 0


class EchoBoxes:
    """A host evaluator that hands back the split's ground-truth boxes as its predictions: compute
    checks they arrive once each, in order, padding dropped, and counts them."""

    def __init__(self, name, final_only=None):
        self.split, self.name = "test", name
        if final_only is not None:  # without the attribute an evaluator runs at every evaluation
            self.final_only = final_only

    def predict(self, model, batch):
        return {"boxes": batch["boxes"]}

    def compute(self, predictions, examples):
        np.testing.assert_array_equal(predictions["boxes"], examples["boxes"])
        return {self.name: float(len(predictions["boxes"]))}


def test_a_final_only_evaluator_skips_only_itself_and_every_evaluator_sees_each_example_once():
    """A final-only evaluator listed first does not stop the ones after it at the evaluations before
    the last; 10 examples in batches of 4 (2 of padding) reach compute exactly."""
    data = detection_scenes(n=10)
    trainer = Trainer(PixelBoxDetector(0.0), optax.sgd(0.0), BoxRegression(), Transforms([], FIELDS), data,
                      {"test": data}, batch_size=4, keys=seed_keys(0), eval_batch_size=4,
                      evaluators=[EchoBoxes("final_count", final_only=True), EchoBoxes("count")])
    _, history, _ = trainer.fit(trainer.initial_state, 4, chunk_steps=2, eval_every=2)
    assert [r.get("test/count") for r in history] == [10.0, 10.0, 10.0]
    assert [r.get("test/final_count") for r in history] == [None, None, 10.0]
