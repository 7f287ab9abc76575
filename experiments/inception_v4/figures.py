"""Inception figures: test accuracy over training with and without residual connections (and
Inception-v4 at matched size), the paper's section 5 question; and, for the wide residual
networks of section 3.3, how much of the last stage is zero over training, scaled or not."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repro.render import history_curve, save_figure  # noqa: E402

RESIDUAL = {"resnet_v2": "Inception-ResNet-v2 (1/8)", "resnet_v2_plain": "the same without shortcuts",
            "v4": "Inception-v4 (x0.09)"}
SCALING = {"wide": "1096-wide C blocks, unscaled", "wide_scaled": "the same, residuals x0.2"}


def _panel(ax, groups, labels, key, ylabel, title) -> bool:
    drawn = False
    for variant, label in labels.items():
        runs = [r for r in groups.get(variant, []) if any(key in h for h in r["history"])]
        if not runs:
            continue
        steps, values = history_curve(runs, key)
        mean, std = values.mean(0), values.std(0)
        (line,) = ax.plot(steps, mean, marker="o", ms=3, label=f"{label} (n={len(runs)})")
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        drawn = True
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    residual = _panel(axes[0], groups, RESIDUAL, "test/accuracy", "test accuracy",
                      "residual connections: MNIST test accuracy (mean ± std over seeds)")
    scaling = _panel(axes[1], groups, SCALING, "probe/zero_activations", "fraction of zeros",
                     "wide residual blocks: zeros in the last stage before pooling")
    path = save_figure(fig, out_dir / "residual_training.png", drawn=residual or scaling)
    caption = "test accuracy over training, and the zeros of the wide networks' last stage"
    return [(caption, path)] if path else []
