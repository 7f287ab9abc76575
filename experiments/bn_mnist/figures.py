"""Figure 1 of Ioffe & Szegedy 2015, ours (mean and min-max over seeds) over the paper's curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.render import history_curve, save_figure

STEPS_IN_PAPER_PLOT = 50_000  # the x axis of panels (b, c) is unlabeled; assumed 0-50k steps
COLORS = {"with_bn": "tab:blue", "without_bn": "tab:red"}
LABELS = {"with_bn": "with BN", "without_bn": "without BN"}


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    paper_a = json.loads((reference_dir / "bn_fig1a_points.json").read_text())
    paper_bc = json.loads((reference_dir / "bn_fig1bc_points.json").read_text())
    figures = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, runs in groups.items():
        if not runs:
            continue
        steps, acc = history_curve(runs, "test/accuracy")
        c = COLORS[variant]
        ax.plot(steps, acc.mean(0), color=c, label=f"ours, {LABELS[variant]} (n={len(runs)})")
        ax.fill_between(steps, acc.min(0), acc.max(0), color=c, alpha=0.2)
        ref = np.asarray(paper_a[variant])
        ax.plot(ref[:, 0], ref[:, 1], "--", color=c, label=f"paper, {LABELS[variant]}")
    ax.set(xlabel="training step", ylabel="test accuracy", ylim=(0.7, 1.0),
           title="Figure 1(a): MNIST test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    path = out_dir / "figure1a_test_accuracy.png"
    save_figure(fig, path)
    figures.append(("Figure 1(a): test accuracy, ours vs paper", path))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (panel, variant) in zip(axes, (("b", "without_bn"), ("c", "with_bn")), strict=True):
        runs = groups.get(variant) or []
        for key, ref in paper_bc.items():
            if key.startswith(f"{panel}_"):
                ref = np.asarray(ref)
                ax.plot(ref[:, 0] * STEPS_IN_PAPER_PLOT, ref[:, 1], "--", color="gray", lw=1)
        if runs:
            for p, shade in zip((15, 50, 85), ("tab:green", "black", "tab:purple"), strict=True):
                steps, v = history_curve(runs[:1], f"probe/sigmoid_input_p{p}", index=0)
                ax.plot(steps, v[0], color=shade, label=f"ours, {p}th percentile")
        ax.set(title=f"Figure 1({panel}): {LABELS[variant]}", xlabel="training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("input to one last-layer sigmoid")
    axes[0].plot([], [], "--", color="gray", label="paper (15/50/85th)")
    axes[0].legend(fontsize=8)
    path = out_dir / "figure1bc_sigmoid_input.png"
    save_figure(fig, path)
    figures.append(("Figure 1(b, c): 15/50/85th percentiles of one sigmoid input, seed 0", path))
    return figures
