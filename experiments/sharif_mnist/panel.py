"""`python -m experiments.sharif_mnist.panel` (make panel-sharif-mnist): the figure's image panel,
a few test images each with its 1-pixel shift and its L-inf, L2 and L0 attacks and their
distances, SSIM and decisions, recomputed from the kept weights of seed 0 with the Panel evaluator
(repro/derived.py: checked to be the run's weights first), written to
results/sharif_mnist/figures/panel.json.

    python -m experiments.sharif_mnist.panel [--results results] [--data-dir DIR]
"""

from __future__ import annotations

from pathlib import Path

from repro import derived

EXPERIMENT = "sharif_mnist"
PANEL_FILE = "panel.json"
SHOW = 4


def panel_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / EXPERIMENT / "figures" / PANEL_FILE


def read_panel(results_dir: str | Path) -> dict:
    """{run name: its panel}, or {} when there is none yet."""
    return derived.read(panel_path(results_dir))


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


def update(results_dir: str | Path = "results", data_dir: str | None = None, log=print) -> dict:
    return derived.update(Path(results_dir) / EXPERIMENT, panel_path(results_dir), evaluator_for, keep,
                          __doc__.splitlines()[0], data_dir, log)


def main(argv: list[str] | None = None) -> int:
    return derived.main(__doc__, update, panel_path, argv)


if __name__ == "__main__":
    raise SystemExit(main())
