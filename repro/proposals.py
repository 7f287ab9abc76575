"""Region proposals judged on their own (Faster R-CNN's Table/Figure of recall against IoU): the
fraction of ground-truth boxes that some proposal of the same image overlaps by IoU >= t.

`ProposalRecall` is a host evaluator (repro.interfaces.Evaluator) of any model with
`propose(images, **given) -> (boxes [B, P, 4], valid [B, P])` (repro/models/rcnn.py: the RPN's
proposals after NMS, `test_proposals` of them; or, for a detector that takes them, the data's
own `proposals` / `proposal_valid`, e.g. selective search's, handed over as `given`); it logs
`<split>/proposal_recall_iou<t>` for each threshold and `<split>/proposals_per_image`, the mean
number of real proposals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repro.detection import iou


def recall(proposals, proposal_valid, boxes, box_valid, thresholds: Sequence[float]) -> np.ndarray:
    """Per threshold, the fraction of real ground-truth boxes (over all images) whose best real
    proposal of the same image has IoU >= it."""
    best = []
    for props, pv, gt, gv in zip(proposals, proposal_valid, boxes, box_valid, strict=True):
        gt = np.asarray(gt)[np.asarray(gv) > 0]
        props = np.asarray(props)[np.asarray(pv) > 0]
        if not len(gt):
            continue
        best.append(np.asarray(iou(gt, props)).max(1) if len(props) else np.zeros(len(gt)))
    best = np.concatenate(best) if best else np.zeros(0)
    if not len(best):
        raise ValueError("proposal recall needs at least one ground-truth box")
    return np.asarray([(best >= t).mean() for t in thresholds])


class ProposalRecall:
    def __init__(self, split: str = "test", thresholds: Sequence[float] = (0.5, 0.7),
                 final_only: bool = False):
        if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds are IoUs in (0, 1], got {list(thresholds)}")
        self.split, self.thresholds, self.final_only = split, tuple(thresholds), final_only

    def predict(self, model, batch) -> dict:
        given = {k: batch[k] for k in ("proposals", "proposal_valid") if k in batch}  # Fast R-CNN's input
        boxes, valid = model.propose(batch["image"], **given)
        return {"proposals": boxes, "proposal_valid": valid}

    def compute(self, predictions: dict, examples: dict) -> dict[str, float]:
        values = recall(predictions["proposals"], predictions["proposal_valid"], examples["boxes"],
                        examples["valid"], self.thresholds)
        out = {f"proposal_recall_iou{round(100 * t)}": float(v) for t, v in zip(self.thresholds, values,
                                                                                 strict=True)}
        out["proposals_per_image"] = float(np.asarray(predictions["proposal_valid"]).sum(1).mean())
        return out
