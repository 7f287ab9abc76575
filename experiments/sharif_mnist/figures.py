"""Sharif et al. 2018 figures: how far small natural changes take the MNIST test images in each
Lp norm (fraction beyond each budget) beside their SSIM and whether the CNNs keep their decision;
what the attacks inside the budgets do (decisions changed, SSIM) against the 1-pixel shift; and a
panel of test images with their shifted and attacked versions, each with its L0 / L2 / L-inf / SSIM
and decision (panel.json, written from seed 0's kept weights by
`python -m experiments.sharif_mnist.panel`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.sharif_mnist.panel import read_panel  # noqa: E402
from repro.derived import configured_evaluator  # noqa: E402
from repro.render import save_figure  # noqa: E402

NORM_LABELS = {"l0": "L0", "l2": "L2", "linf": "L-inf"}


def _mean(runs: list[dict], key: str) -> float:
    values = [r["final"][key] for r in runs if key in r["final"]]
    return float(np.mean(values)) if values else float("nan")


def _changes_figure(runs: list[dict], out: Path) -> Path | None:
    natural = configured_evaluator(runs[0], ".NaturalChanges")
    attacks = configured_evaluator(runs[0], ".BudgetAttacks")
    if natural is None or attacks is None:
        return None
    names = [c["name"] for c in natural["changes"]]
    budgets = natural["budgets"]
    fig, (beyond, attacked) = plt.subplots(1, 2, figsize=(13, 5.2))
    x = np.arange(len(names))
    series = [(f"beyond {NORM_LABELS[n]} {budgets[n]:g}", f"_beyond_{n}") for n in budgets]
    series += [("beyond all budgets", "_beyond_all"), ("SSIM (mean)", "_ssim"),
               ("reference keeps its class", "_kept")]
    width = 0.8 / len(series)
    split = natural["split"]
    for i, (label, suffix) in enumerate(series):
        values = [_mean(runs, f"{split}/{n}{suffix}") for n in names]
        beyond.bar(x + (i - len(series) / 2 + 0.5) * width, values, width, label=label)
    beyond.set_xticks(x, names, rotation=30, ha="right")
    beyond.set_ylim(0, 1.05)
    beyond.set_title(f"small natural changes of the {split} images")
    beyond.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    split = attacks["split"]
    pair = attacks["pair_with"]["name"]
    labels = [a["name"] for a in attacks["attacks"]]
    rows = [("reference's class changed", "_changed"), ("judges' class changed", "_judges_changed"),
            ("SSIM (mean)", "_ssim"), (f"SSIM prefers {pair}, the norm the attack", "_disagree")]
    x = np.arange(len(labels))
    width = 0.8 / len(rows)
    for i, (label, suffix) in enumerate(rows):
        values = [_mean(runs, f"{split}/{a}{suffix}") for a in labels]
        attacked.bar(x + (i - len(rows) / 2 + 0.5) * width, values, width, label=label)
    natural_ssim = _mean(runs, f"{natural['split']}/{pair}_ssim")
    attacked.axhline(natural_ssim, color="gray", ls="--", lw=1, label=f"SSIM of the {pair} change")
    attacked.set_xticks(x, [f"{NORM_LABELS[a['norm']]} <= {budgets[a['norm']]:g}"
                            for a in attacks["attacks"]])
    attacked.set_ylim(0, 1.05)
    attacked.set_title(f"untargeted PGD inside each budget ({split} images, n={len(runs)} seeds)")
    attacked.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    return save_figure(fig, out)


def _panel_figure(panel: dict, out: Path) -> Path:
    attacked = [k for k, v in panel.items() if isinstance(v, dict) and "image" in v and k != "change"]
    order = {"linf": 0, "l2": 1, "l0": 2}  # the config's order (the derived file's keys are sorted)
    columns = ["original", "change", *sorted(attacked, key=lambda k: (order.get(k, 3), k))]
    n = len(panel["original"])
    fig, axes = plt.subplots(n, len(columns), figsize=(2.1 * len(columns), 2.8 * n), squeeze=False)
    for i in range(n):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            if column == "original":
                image, text = panel["original"][i], f"label {panel['label'][i]}\nclasses {panel['clean'][i]}"
            else:
                entry = panel[column]
                image = entry["image"][i]
                text = (f"L0 {entry['l0'][i]:.0f}  L2 {entry['l2'][i]:.2f}\nL-inf {entry['linf'][i]:.2f}  "
                        f"SSIM {entry['ssim'][i]:.2f}\nclasses {entry['decision'][i]}")
            ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(text, fontsize=7)
            if i == 0:
                ax.set_title(column, fontsize=9)
    fig.suptitle("test images, their 1-pixel shift and attacks inside each budget "
                 "(classes: reference, judges)", fontsize=9)
    return save_figure(fig, out)


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for variant, runs in groups.items():
        if runs:
            path = _changes_figure(runs, out_dir / f"distances_{variant}.png")
            if path is not None:
                figures.append((f"{variant}: Lp distances, SSIM and decisions", path))
    panels = read_panel(out_dir.parent.parent)
    if panels:
        name = sorted(panels)[0]
        figures.append((f"image panel ({name})", _panel_figure(panels[name], out_dir / "panel.png")))
    return figures
