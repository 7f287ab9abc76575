"""PixelCNN on binarized MNIST: ancestral samples of the trained model, and the NLL curves
against the paper's Table-4 numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.render import save_figure

SAMPLES_KEY = "probe/samples_packed"


def unpack_samples(packed, image_shape) -> np.ndarray:
    """The probe's packed bits -> uint8 0/1 images (num, H, W)."""
    h, w, c = image_shape
    bits = np.unpackbits(np.asarray(packed, np.uint8), axis=-1, count=h * w * c)
    return bits.reshape(-1, h, w, c)[..., 0]


def sample_grid(images: np.ndarray, columns: int = 8, gap: int = 2) -> np.ndarray:
    """(num, H, W) 0/1 -> one grey-bordered image of `columns` per row (white = pixel on), one
    grid cell per pixel."""
    num, h, w = images.shape
    rows = -(-num // columns)
    grid = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), 0.5, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = gap + r * (h + gap), gap + c * (w + gap)
        grid[top: top + h, left: left + w] = image
    return grid


def _paper_values(reference_dir: Path) -> dict[str, str]:
    """{model: test NLL as printed in Table 4}."""
    with open(reference_dir / "table4_binarized_mnist.csv", newline="") as f:
        return {row["model"]: row["test_nll_nats"] for row in csv.DictReader(f)}


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    runs = [r for g in groups.values() for r in g]
    with_samples = [r for r in runs if SAMPLES_KEY in r["final"]]
    if with_samples:
        run = with_samples[0]
        images = unpack_samples(run["final"][SAMPLES_KEY], run["config"]["data"]["image_shape"])
        path = out_dir / "samples.png"
        scale = np.ones((3, 3), np.float32)  # each pixel drawn as 3x3 screen pixels
        plt.imsave(path, np.kron(sample_grid(images), scale), cmap="gray", vmin=0.0, vmax=1.0)
        figures.append((f"{len(images)} ancestral samples of the trained PixelCNN (seed {run['seed']}, "
                        f"step {run['history'][-1]['step']}, sampling seed "
                        f"{run['config']['probes'][0].get('seed', 0)})", path))

    paper = _paper_values(reference_dir)
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        train = [(r["step"], r["train/nll_nats"]) for r in run["history"] if "train/nll_nats" in r]
        if train:
            steps, nll = zip(*train, strict=True)
            ax.plot(steps, nll, color="lightgray", lw=0.6,
                    label=f"ours, training batches (mean per chunk; seed {run['seed']})")
        for split, style in (("validation", "s-"), ("test", "o-")):
            points = [(r["step"], r[f"{split}/nll_nats"]) for r in run["history"]
                      if f"{split}/nll_nats" in r and r["step"] > 0]
            if points:
                steps, nll = zip(*points, strict=True)
                ax.plot(steps, nll, style, label=f"ours, {split} (seed {run['seed']})")
    for (name, value), color in zip(paper.items(), ("black", "gray", "silver"), strict=False):
        ax.axhline(float(value), ls="--", color=color, lw=1, label=f"paper: {name} {value}")
    ax.set(xlabel="training step", ylabel="NLL (nats per image, lower is better)",
           title="Binarized MNIST: negative log-likelihood", ylim=(75, 120))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    path = out_dir / "nll_curve.png"
    save_figure(fig, path)
    figures.append(("NLL during training: training batches, validation and test at every evaluation "
                    "(step 0, ~543 nats, off the scale); the paper's Table 4 as lines", path))
    return figures
