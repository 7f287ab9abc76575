"""`python -m experiments.mask_rcnn_mnist.panel` (make panel-mask-rcnn-mnist): the figure's scene
panel, the first test scenes with their ground truth and each stride-8 sigmoid run's (RoIAlign,
RoIPool) detections, recomputed from the kept weights of seed 0 with `ScenePanel` (repro/derived.py:
checked to be the run's weights first), written to results/mask_rcnn_mnist/figures/panel.json.

    python -m experiments.mask_rcnn_mnist.panel [--results results] [--data-dir DIR]
"""

from __future__ import annotations

import numpy as np

from repro import derived
from repro.coco import CocoAP

EXPERIMENT = "mask_rcnn_mnist"
PANEL_FILE = "panel.json"
SHOW = 4


def _labelled(masks: np.ndarray, keep: np.ndarray) -> list[list[int]]:
    """Instance masks [K, H, W] as one map: 0 background, k + 1 where instance k (a later one on top)."""
    out = np.zeros(masks.shape[1:], np.int64)
    for k in np.flatnonzero(keep):
        out[masks[k] > 0] = k + 1
    return out.tolist()


class ScenePanel(CocoAP):
    """For the figure only: the first `show` scenes of the split, their ground truth and the model's
    detections scoring at least `min_score` (boxes, classes, scores, masks as one labelled map)."""

    def __init__(self, split: str = "test", show: int = SHOW, min_score: float = 0.5, **kwargs):
        super().__init__(split, "segm", **kwargs)
        self.show, self.min_score = show, min_score

    def compute(self, predictions: dict, examples: dict) -> dict:
        scenes = []
        for i in range(self.show):
            truth = examples["valid"][i] > 0
            found = np.asarray(predictions["scores"][i]) >= self.min_score
            scenes.append({
                "image": np.asarray(examples["image"][i, ..., 0]).tolist(),
                "truth": {"boxes": np.asarray(examples["boxes"][i])[truth].tolist(),
                          "classes": np.asarray(examples["classes"][i])[truth].tolist(),
                          "masks": _labelled(np.asarray(examples["masks"][i]), truth)},
                "found": {"boxes": np.asarray(predictions["boxes"][i])[found].round(2).tolist(),
                          "classes": np.asarray(predictions["classes"][i])[found].tolist(),
                          "scores": np.asarray(predictions["scores"][i])[found].round(3).tolist(),
                          "masks": _labelled(np.asarray(predictions["masks"][i]), found)}})
        return {"scenes": scenes}


def evaluator_for(result: dict) -> dict | None:
    """ScenePanel for seed 0 of the stride-8 per-class sigmoid runs (RoIAlign and RoIPool)."""
    model = result["config"].get("model", {})
    if result.get("seed") != 0 or model.get("stride") != 8 or model.get("mask_loss") != "sigmoid":
        return None
    coco = derived.configured_evaluator(result, ".CocoAP")
    split = coco["split"] if coco else "test"
    return {"_target_": "experiments.mask_rcnn_mnist.panel.ScenePanel", "split": split, "show": SHOW}


def keep(record: dict, result: dict) -> dict:
    split = (derived.configured_evaluator(result, ".CocoAP") or {"split": "test"})["split"]
    return {"roi_op": result["config"]["model"]["roi_op"], "scenes": record[f"{split}/scenes"]}


PANEL = derived.Derivation(EXPERIMENT, PANEL_FILE, evaluator_for, keep, __doc__)
panel_path, read_panel, update, main = PANEL.path, PANEL.read, PANEL.update, PANEL.main

if __name__ == "__main__":
    raise SystemExit(main())
