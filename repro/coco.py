"""COCO average precision by pycocotools itself, as a host evaluator (repro.interfaces.Evaluator).

Ground truth comes from the split's fields (repro/data/fields.py): `boxes` [N, K, 4] as
(x0, y0, x1, y1) pixels, `classes` [N, K], `valid` [N, K] and, for mask AP, `masks`
[N, K, H, W]. The model's output for a batch of images is a dict of `boxes` [B, D, 4],
`scores` [B, D], `classes` [B, D] (and `masks` [B, D, H, W] for mask AP); a detection with
score <= 0 is an empty slot. Both sides are written in COCO's JSON form and scored by COCOeval,
so the numbers are COCO's own definition (101-point interpolated AP over IoU 0.50:0.95).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

IOU_TYPES = {"bbox": "box", "segm": "mask"}
IOU_THRESHOLDS = tuple(50 + 5 * i for i in range(10))  # COCO's, in percent


def _xywh(box) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def ground_truth(examples: dict, iou_type: str = "bbox") -> dict:
    """The split's instances as a COCO data set dict (images, annotations, categories)."""
    boxes, classes, valid = examples["boxes"], examples["classes"], examples["valid"]
    n = len(boxes)
    height, width = (examples["image"].shape[1:3] if "image" in examples else (0, 0))
    images = [{"id": i, "height": int(height), "width": int(width)} for i in range(n)]
    annotations = []
    for i in range(n):
        for k in np.flatnonzero(valid[i] > 0):
            x, y, w, h = _xywh(boxes[i, k])
            ann = {"id": len(annotations) + 1, "image_id": i, "category_id": int(classes[i, k]),
                   "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            if iou_type == "segm":
                ann["segmentation"] = _rle(examples["masks"][i, k])
                ann["area"] = float(examples["masks"][i, k].sum())
            annotations.append(ann)
    categories = [{"id": int(c)} for c in np.unique(classes[valid > 0])]
    return {"images": images, "annotations": annotations, "categories": categories}


def detections(predictions: dict, iou_type: str = "bbox") -> list[dict]:
    """The model's detections as COCO result entries (empty slots, score <= 0, left out)."""
    out = []
    for i, (boxes, scores, classes) in enumerate(zip(predictions["boxes"], predictions["scores"],
                                                     predictions["classes"], strict=True)):
        for d in np.flatnonzero(scores > 0):
            entry = {"image_id": i, "category_id": int(classes[d]), "score": float(scores[d])}
            if iou_type == "segm":
                entry["segmentation"] = _rle(predictions["masks"][i, d])
            else:
                entry["bbox"] = _xywh(boxes[d])
            out.append(entry)
    return out


def average_precision(gt: dict, results: list[dict], iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's 12 summary statistics (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ...) and
    the AP at each of its 10 IoU thresholds 0.50, 0.55, ..., 0.95 (all areas, 100 detections)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:  # loadRes refuses an empty list: no detection is AP 0
        return np.zeros(12), np.zeros(len(IOU_THRESHOLDS))
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints its progress and table
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # precision [IoU, recall, class, area, max detections]: area "all" (0), 100 detections (-1);
    # -1 marks a class without ground truth, left out of the mean as summarize() does
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    per_iou = np.asarray([p[p > -1].mean() if (p > -1).any() else -1.0 for p in precision], np.float64)
    return np.asarray(evaluation.stats, np.float64), per_iou


class CocoAP:
    """Host evaluator: COCO AP, AP50 and AP75 of the model's detections on split `split`, logged
    as `<split>/<box|mask>_ap`, `..._ap50`, `..._ap75` (fractions, not percent), and the AP at every
    IoU threshold as `..._ap_iou50` ... `..._ap_iou95` (the AP-vs-IoU curve), for `iou_type`
    "bbox", "segm" or a list of both (scored from one pass of the model)."""

    def __init__(self, split: str = "test", iou_type: str | Sequence[str] = "bbox", final_only: bool = False):
        self.iou_types = [iou_type] if isinstance(iou_type, str) else list(iou_type)
        for kind in self.iou_types:
            if kind not in IOU_TYPES:
                raise ValueError(f"iou_type {kind!r}: one of {sorted(IOU_TYPES)}")
        self.split, self.final_only = split, final_only

    def predict(self, model, batch) -> dict:
        given = {k: batch[k] for k in ("proposals", "proposal_valid") if k in batch}  # Fast R-CNN's input
        out = model(batch["image"], train=False, **given)
        keep = ("boxes", "scores", "classes") + (("masks",) if "segm" in self.iou_types else ())
        return {k: out[k] for k in keep}

    def compute(self, predictions: dict, examples: dict) -> dict[str, float]:
        metrics = {}
        for kind in self.iou_types:
            stats, per_iou = average_precision(ground_truth(examples, kind), detections(predictions, kind),
                                               kind)
            prefix = IOU_TYPES[kind]
            metrics.update({f"{prefix}_ap": float(stats[0]), f"{prefix}_ap50": float(stats[1]),
                            f"{prefix}_ap75": float(stats[2])})
            metrics.update({f"{prefix}_ap_iou{t}": float(v)
                            for t, v in zip(IOU_THRESHOLDS, per_iou, strict=True)})
        return metrics
