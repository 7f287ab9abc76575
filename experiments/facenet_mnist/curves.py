"""`python -m experiments.facenet_mnist.curves` (make curves-facenet-mnist): the ROC and the 2-D
projection of held-out embeddings for every FaceNet-proxy run whose weights are kept beside its
result file, recomputed from those weights with the HeldOutCurves evaluator on the run's own
verification pairs (repro/derived.py: checked to be the run's weights, so the curve passes through
the run's own VAL at FAR 10^-3), written to results/facenet_mnist/figures/held_out_curves.json.

    python -m experiments.facenet_mnist.curves [--results results] [--data-dir DIR]
"""

from __future__ import annotations

from repro import derived

EXPERIMENT = "facenet_mnist"
CURVES_FILE = "held_out_curves.json"
KEYS = ("roc_far", "roc_val", "projection", "projection_label")


def _verification(result: dict) -> dict | None:
    return derived.configured_evaluator(result, ".Verification")


def evaluator_for(result: dict) -> dict | None:
    """HeldOutCurves on the run's own verification pairs (None: not a FaceNet-proxy run)."""
    verification = _verification(result)
    if verification is None:
        return None
    return {"_target_": "experiments.facenet_mnist.verification.HeldOutCurves",
            **{k: verification[k] for k in ("split", "different", "seed")}}


def keep(record: dict, result: dict) -> dict:
    split = _verification(result)["split"]
    return {key: record[f"{split}/{key}"] for key in KEYS}


CURVES = derived.Derivation(EXPERIMENT, CURVES_FILE, evaluator_for, keep, __doc__)
curves_path, read_curves, update, main = CURVES.path, CURVES.read, CURVES.update, CURVES.main

if __name__ == "__main__":
    raise SystemExit(main())
