"""`python -m experiments.sharif_mnist.panel` (make panel-sharif-mnist): the figure's image panel,
a few test images each with its 1-pixel shift and its L-inf, L2 and L0 attacks and their
distances, SSIM and decisions, recomputed from the kept weights of seed 0 with the Panel evaluator
(repro/derived.py: checked to be the run's weights first), written to
results/sharif_mnist/figures/panel.json.

    python -m experiments.sharif_mnist.panel [--results results] [--data-dir DIR]
"""

from __future__ import annotations

from repro import derived

EXPERIMENT = "sharif_mnist"
PANEL_FILE = "panel.json"
SHOW = 4


def evaluator_for(result: dict) -> dict | None:
    """Panel with the run's own attacks and budgets, for seed 0 (None: another seed, or not a run of
    this study)."""
    attacks = derived.configured_evaluator(result, ".BudgetAttacks")
    if attacks is None or result.get("seed") != 0:
        return None
    return {**attacks, "_target_": "experiments.sharif_mnist.study.Panel", "show": SHOW}


def keep(record: dict, result: dict) -> dict:
    split = derived.configured_evaluator(result, ".BudgetAttacks")["split"]
    prefix = f"{split}/"
    return {key[len(prefix):]: value for key, value in record.items()
            if key.startswith(prefix) and not isinstance(value, float | int)}


PANEL = derived.Derivation(EXPERIMENT, PANEL_FILE, evaluator_for, keep, __doc__)
panel_path, read_panel, update, main = PANEL.path, PANEL.read, PANEL.update, PANEL.main

if __name__ == "__main__":
    raise SystemExit(main())
