"""Figure 1(a) of Kingma et al. 2015: test error vs hidden units per method, ours over the paper's."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.render import save_figure

# Reference-CSV method names (reference/figure1_mnist.csv) -> model.dropout.
MNIST_METHODS = {"no_dropout": "none", "binary_dropout": "binary", "gaussian_dropout_a": "gaussian_a",
                 "variational_a": "variational_a", "variational_a2": "variational_a2",
                 "gaussian_dropout_b": "gaussian_b", "variational_b": "variational_b"}


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(reference_dir / "figure1_mnist.csv", newline="") as f:
        paper = {MNIST_METHODS[r.pop("method")]: r for r in csv.DictReader(f)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (method, row) in enumerate(paper.items()):
        color = f"C{i}"
        sizes = [int(h) for h in row]
        ax.plot(sizes, [float(v) for v in row.values()], "--", color=color, alpha=0.7)
        ours = [(h, [r["final"]["test/error_percent"] for r in groups.get(f"{method}_h{h}", [])])
                for h in sizes]
        ours = [(h, np.mean(v), np.std(v, ddof=1) if len(v) > 1 else 0.0, len(v)) for h, v in ours if v]
        if ours:
            h, err, spread, n = zip(*ours, strict=True)
            ax.errorbar(h, err, yerr=spread, fmt="o-", color=color, capsize=3,
                        label=f"{method} (ours, n={max(n)}, ±1 seed std)")
        else:
            ax.plot([], [], "--", color=color, label=f"{method} (paper only)")
    ax.set(xlabel="hidden units per layer", ylabel="test error (%)",
           title="Figure 1(a): MNIST, dashed = paper, dots = ours (final step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    path = out_dir / "figure1a_test_error.png"
    save_figure(fig, path)
    figures = [("Figure 1(a): test error vs hidden units, ours vs paper", path)]
    alpha_path = alpha_figure(groups, out_dir)
    if alpha_path:
        figures.append(("Learned alphas at the cap alpha = 1 over training (ours, not in the paper)",
                        alpha_path))
    return figures


def alpha_figure(groups: dict[str, list[dict]], out_dir: Path) -> Path | None:
    """Fraction of each layer's alphas at the cap vs step, per variational method (AlphaStats
    probe; seed mean), one line style per hidden size."""
    methods = ("variational_a", "variational_a2", "variational_b")
    sizes = sorted({int(v.rsplit("_h", 1)[1]) for v in groups
                    if v.startswith(methods) and groups[v] and v.rsplit("_h", 1)[-1].isdigit()})
    if not sizes:
        return None
    fig, axes = plt.subplots(1, len(methods), figsize=(12, 3.6), sharey=True)
    for ax, method in zip(axes, methods, strict=True):
        for style, h in zip(("-", "--", ":", "-."), sizes, strict=False):
            runs = groups.get(f"{method}_h{h}", [])
            evals = [[r for r in run["history"] if "probe/alpha_at_cap_0" in r] for run in runs]
            if not evals or not evals[0]:
                continue
            steps = [r["step"] for r in evals[0]]
            prefix = "probe/alpha_at_cap_"
            layers = sorted(int(k[len(prefix):]) for k in evals[0][0] if k.startswith(prefix))
            for layer in layers:
                series = np.mean([[r[f"probe/alpha_at_cap_{layer}"] for r in e] for e in evals], axis=0)
                ax.plot(steps, series, style, color=f"C{layer}", label=f"layer {layer}, h={h}")
        ax.set(title=method, xlabel="step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("fraction of alphas at 1")
    path = out_dir / "alpha_at_cap.png"
    save_figure(fig, path)
    return path
