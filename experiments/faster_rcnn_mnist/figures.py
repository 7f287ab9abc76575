"""Faster R-CNN figures: the recall of each variant's proposals against the IoU threshold (the
paper's Figure 4 question: how well do 50 RPN proposals cover the objects against all of selective
search's), and box AP against the IoU threshold; each the mean over seeds with their spread."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.coco import IOU_THRESHOLDS  # noqa: E402
from repro.render import final_curve, save_figure  # noqa: E402

RECALL_IOUS = (50, 60, 70, 80, 90)  # the config's ProposalRecall thresholds, in percent


def _panel(ax, groups, keys, thresholds, title):
    drawn = False
    for variant, runs in sorted(groups.items()):
        curve = final_curve(runs, keys(variant))
        if curve is None:
            continue
        mean, std = curve
        per_image = np.mean([r["final"].get("test/proposals_per_image", np.nan) for r in runs])
        label = f"{variant} (n={len(runs)}, {per_image:.0f} proposals/image)"
        ax.errorbar(np.asarray(thresholds) / 100, mean, yerr=std, marker="o", ms=3, capsize=2, label=label)
        drawn = True
    ax.set_xlabel("IoU threshold")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    groups = {v: r for v, r in groups.items() if r}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    recall = _panel(axes[0], groups, lambda _: [f"test/proposal_recall_iou{t}" for t in RECALL_IOUS],
                    RECALL_IOUS, "proposal recall on the test scenes (mean ± std over seeds)")
    ap = _panel(axes[1], groups, lambda _: [f"test/box_ap_iou{t}" for t in IOU_THRESHOLDS], IOU_THRESHOLDS,
                "box AP on the test scenes (mean ± std over seeds)")
    axes[0].set_ylabel("recall")
    axes[1].set_ylabel("AP")
    path = save_figure(fig, out_dir / "recall_and_ap_vs_iou.png", drawn=recall or ap)
    return [("proposal recall and box AP against the IoU threshold", path)] if path else []
