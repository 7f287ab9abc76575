"""Figure 1(a) of Kingma et al. 2015: test error vs hidden units per method, ours over the paper's."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.vardrop_mnist.make_spec import MNIST_METHODS  # noqa: E402


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
        ours = [(h, np.mean(v), len(v)) for h, v in ours if v]
        if ours:
            h, err, n = zip(*ours, strict=True)
            ax.plot(h, err, "o-", color=color, label=f"{method} (ours, n={max(n)})")
        else:
            ax.plot([], [], "--", color=color, label=f"{method} (paper only)")
    ax.set(xlabel="hidden units per layer", ylabel="test error (%)",
           title="Figure 1(a): MNIST, dashed = paper, dots = ours (final step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    path = out_dir / "figure1a_test_error.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [("Figure 1(a): test error vs hidden units, ours vs paper", path)]
