"""FaceNet proxy figures, per variant (mean and min-max over seeds):

- training curves: held-out VAL at FAR 10^-3, the loss and the fraction of active triplets
  (hinge > 0) in the training batches, and the held-out embedding spread ||f(x) - mean f||^2,
  where a collapse (the paper's f(x) = 0 under hardest-negative mining) shows as a fall to 0;
- the paper's shapes: VAL against the embedding dimension (Table 5) and against the size of the
  training set (Table 6), ours beside the paper's;
- from the runs' kept weights (held_out_curves.json, written by
  `python -m experiments.facenet_mnist.curves`): ROC curves on held-out identities, and the
  embeddings of 10 held-out identities on their first two principal axes."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from experiments.facenet_mnist.curves import CURVES_FILE  # noqa: E402
from repro.render import history_curve, save_figure  # noqa: E402

PANELS = (("test/val_at_far", "held-out VAL at FAR 1e-3"),
          ("train/loss", "triplet loss (training batches)"),
          ("train/active_triplets", "active triplets (training batches)"),
          ("test/spread", "held-out embedding spread"))
COLORS = {"semihard": "tab:blue", "hardest": "tab:red", "random": "tab:gray"}
ROC_PANELS = (("negative mining", ("semihard", "hardest", "random")),
              ("embedding dimension", ("dim64", "semihard", "dim256", "dim512")),
              ("training identities", ("ids250", "ids1000", "semihard")))
DIMENSIONS = {"dim64": 64, "semihard": 128, "dim256": 256, "dim512": 512}
IDENTITIES = {"ids250": 250, "ids1000": 1000, "semihard": 2000}
# Table 6 (VAL at FAR 10^-3 on personal photos, the smaller 96x96 model): training images -> VAL
PAPER_TABLE6 = {2.6e6: 0.763, 26e6: 0.851, 52e6: 0.851, 260e6: 0.862}
FINAL_VAL = "test/val_at_far"


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(20, 4))
    for variant, runs in groups.items():
        if not runs:
            continue
        for ax, (metric, title) in zip(axes, PANELS, strict=True):
            steps, values = history_curve(runs, metric)
            if not len(steps):
                continue
            color = COLORS.get(variant)
            ax.plot(steps, values.mean(0), color=color, label=f"{variant} (n={len(runs)})")
            ax.fill_between(steps, values.min(0), values.max(0), color=ax.lines[-1].get_color(), alpha=0.2)
            ax.set_title(title)
            ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    figures = [("FaceNet proxy: held-out VAL, loss, active triplets and embedding spread over training",
                save_figure(fig, out_dir / "training_curves.png"))]
    figures += _paper_shapes(groups, reference_dir.parent / "spec.yaml", out_dir)
    curves = _read_curves(out_dir / CURVES_FILE)
    figures += _roc(groups, curves, out_dir) + _projection(groups, curves, out_dir)
    return figures


def _read_curves(path: Path) -> dict:
    return json.loads(path.read_text())["runs"] if path.exists() else {}


def _final(runs: list[dict]) -> np.ndarray:
    return np.asarray([r["final"][FINAL_VAL] for r in runs if FINAL_VAL in r["final"]])


def _paper_shapes(groups, spec_path: Path, out_dir: Path):
    """Ours (seeds as dots, their mean as a line) beside the paper's Table 5 and Table 6."""
    if not any(groups.get(v) for v in (*DIMENSIONS, *IDENTITIES)):
        return []
    table5 = {}
    if spec_path.exists():
        for row in yaml.safe_load(spec_path.read_text()).get("reported", []):
            if row.get("source") == "Table 5" and row.get("variant") in DIMENSIONS:
                table5[DIMENSIONS[row["variant"]]] = row["value"]
    fig, (dims, sizes) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, sizes_of, paper, largest in ((dims, DIMENSIONS, table5, None),
                                         (sizes, IDENTITIES, PAPER_TABLE6, max(PAPER_TABLE6))):
        ours_max = max(sizes_of.values())
        xs, means = [], []
        for variant, size in sorted(sizes_of.items(), key=lambda kv: kv[1]):
            values = _final(groups.get(variant, []))
            if not len(values):
                continue
            x = size if largest is None else size / ours_max
            ax.scatter([x] * len(values), values, color="tab:blue", s=12, alpha=0.6)
            xs.append(x), means.append(values.mean())
        ax.plot(xs, means, "o-", color="tab:blue", label="ours (held-out digits; dots: seeds)")
        if paper:
            px = sorted(paper)
            ax.plot([x if largest is None else x / largest for x in px], [paper[x] for x in px], "s--",
                    color="black", label="paper")
        ax.set_xscale("log")
        ax.set_ylabel("VAL at FAR 1e-3")
        ax.legend(fontsize=8)
    dims.set_xlabel("embedding dimension")
    dims.set_title("Table 5: dimension (paper: hold-out faces, NN1)")
    sizes.set_xlabel("training set size / the largest (ours: identities, paper: images)")
    sizes.set_title("Table 6: training data (paper: personal photos, 96x96 model)")
    path = save_figure(fig, out_dir / "paper_shapes.png")
    return [("FaceNet proxy against the paper's shapes: VAL at FAR 1e-3 by embedding dimension (Table 5) "
             "and by training set size (Table 6)", path)]


def _with_curves(runs: list[dict], curves: dict) -> list[dict]:
    return [curves[r["name"]] for r in runs if r.get("name") in curves]


def _roc(groups, curves: dict, out_dir: Path):
    """VAL against FAR on held-out identities: mean over seeds, min-max shaded."""
    panels = [(title, [v for v in variants if _with_curves(groups.get(v, []), curves)])
              for title, variants in ROC_PANELS]
    panels = [(title, variants) for title, variants in panels if variants]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, variants) in zip(axes[0], panels, strict=True):
        for variant in variants:
            found = _with_curves(groups[variant], curves)
            far = np.asarray(found[0]["roc_far"])
            val = np.asarray([c["roc_val"] for c in found])
            ax.plot(far, val.mean(0), color=COLORS.get(variant), label=f"{variant} (n={len(found)})")
            ax.fill_between(far, val.min(0), val.max(0), color=ax.lines[-1].get_color(), alpha=0.2)
        ax.axvline(1e-3, color="black", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("false accept rate (held-out different pairs)")
        ax.set_ylabel("VAL (held-out same pairs accepted)")
        ax.set_title(title)
        ax.legend(fontsize=8)
    path = save_figure(fig, out_dir / "roc.png")
    return [("FaceNet proxy: ROC on held-out identities (VAL against FAR; dotted: the paper's FAR 1e-3)",
             path)]


def _projection(groups, curves: dict, out_dir: Path):
    """The first seed's embeddings of 10 held-out identities, each a color, on their own first
    two principal axes, per mining variant."""
    shown = [(v, _with_curves(groups.get(v, []), curves)) for v in ("semihard", "hardest", "random")]
    shown = [(v, found[0]) for v, found in shown if found]
    if not shown:
        return []
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 4.2), squeeze=False)
    for ax, (variant, c) in zip(axes[0], shown, strict=True):
        xy, labels = np.asarray(c["projection"]), np.asarray(c["projection_label"])
        for k, label in enumerate(np.unique(labels)):
            ax.scatter(*xy[labels == label].T, s=14, color=plt.cm.tab10(k % 10))
        ax.set_title(f"{variant}: 10 held-out identities")
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
    path = save_figure(fig, out_dir / "projection.png")
    return [("FaceNet proxy: held-out embeddings of 10 identities (photos of one identity share a color) "
             "on their first two principal axes", path)]
