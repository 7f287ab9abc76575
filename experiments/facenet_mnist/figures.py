"""FaceNet proxy curves over training, per variant (mean and min-max over seeds): held-out VAL at
FAR 10^-3, the fraction of active triplets (hinge > 0) in the training batches, and the held-out
embedding spread ||f(x) - mean f||^2, where a collapse (the paper's f(x) = 0 under hardest-negative
mining) shows as a fall toward 0."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.render import save_figure

PANELS = (("test/val_at_far", "held-out VAL at FAR 1e-3"),
          ("train/active_triplets", "active triplets (training batches)"),
          ("test/spread", "held-out embedding spread"))
COLORS = {"semihard": "tab:blue", "hardest": "tab:red", "random": "tab:gray"}


def _curve(runs: list[dict], metric: str):
    steps = np.asarray([r["step"] for r in runs[0]["history"] if metric in r])
    values = np.asarray([[r[metric] for r in run["history"] if metric in r] for run in runs])
    return steps, values


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(15, 4))
    for variant, runs in groups.items():
        if not runs:
            continue
        for ax, (metric, title) in zip(axes, PANELS, strict=True):
            steps, values = _curve(runs, metric)
            if not len(steps):
                continue
            color = COLORS.get(variant)
            ax.plot(steps, values.mean(0), color=color, label=f"{variant} (n={len(runs)})")
            ax.fill_between(steps, values.min(0), values.max(0), color=ax.lines[-1].get_color(), alpha=0.2)
            ax.set_title(title)
            ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    path = save_figure(fig, out_dir / "training_curves.png")
    return [("FaceNet proxy: held-out VAL, active triplets and embedding spread over training", path)]
