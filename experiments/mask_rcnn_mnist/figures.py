"""Mask R-CNN ablation figures: COCO AP against the IoU threshold (boxes and masks, each variant's
mean over seeds), and a panel of test scenes with their ground truth and the RoIAlign and RoIPool
detectors' boxes and masks side by side (panel.json, written from seed 0's kept weights by
`python -m experiments.mask_rcnn_mnist.panel`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from experiments.mask_rcnn_mnist.panel import read_panel  # noqa: E402
from repro.coco import IOU_THRESHOLDS  # noqa: E402
from repro.render import final_curve, save_figure  # noqa: E402


def _ap_vs_iou(groups: dict[str, list[dict]], out: Path) -> Path | None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    drawn = False
    thresholds = np.asarray(IOU_THRESHOLDS) / 100
    for ax, kind in zip(axes, ("mask", "box"), strict=True):
        for variant, runs in sorted(groups.items()):
            curve = final_curve(runs, [f"test/{kind}_ap_iou{t}" for t in IOU_THRESHOLDS])
            if curve is None:
                continue
            mean, std = curve
            style = "-" if "align" in variant else "--" if "pool" in variant else ":"
            ax.errorbar(thresholds, mean, yerr=std, ls=style, marker="o", ms=3, capsize=2,
                        label=f"{variant} (n={len(runs)})")
            drawn = True
        ax.set_xlabel("IoU threshold")
        ax.set_title(f"{kind} AP on the test scenes (mean ± std over seeds)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AP")
    axes[0].legend(fontsize=8)
    return save_figure(fig, out, drawn=drawn)


def _draw(ax, image, side: dict, title: str):
    ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=255)
    masks = np.asarray(side["masks"], np.float64)
    ax.imshow(np.ma.masked_equal(masks, 0), cmap="tab10", vmin=1, vmax=10, alpha=0.45)
    scores = side.get("scores") or [None] * len(side["boxes"])
    for (x0, y0, x1, y1), cls, score in zip(side["boxes"], side["classes"], scores, strict=True):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1))
        label = f"{cls}" if score is None else f"{cls} {score:.2f}"
        ax.text(x0 - 0.5, y0 - 1.5, label, color="yellow", fontsize=6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def _panel_figure(panels: dict, out: Path) -> Path:
    runs = sorted(panels.items(), key=lambda kv: kv[1]["roi_op"])  # align, then pool
    scenes = runs[0][1]["scenes"]
    fig, axes = plt.subplots(len(scenes), 1 + len(runs), figsize=(2.6 * (1 + len(runs)), 2.7 * len(scenes)),
                             squeeze=False)
    for i, scene in enumerate(scenes):
        _draw(axes[i, 0], scene["image"], scene["truth"], "ground truth" if i == 0 else "")
        for j, (name, panel) in enumerate(runs, start=1):
            title = f"{panel['roi_op']} ({name})" if i == 0 else ""
            _draw(axes[i, j], panel["scenes"][i]["image"], panel["scenes"][i]["found"], title)
    fig.suptitle("test scenes: truth, and detections\nscoring >= 0.5 (class, score)", fontsize=9)
    return save_figure(fig, out)


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    path = _ap_vs_iou({v: r for v, r in groups.items() if r}, out_dir / "ap_vs_iou.png")
    if path is not None:
        figures.append(("AP against the IoU threshold, boxes and masks", path))
    panels = read_panel(out_dir.parent.parent)
    if panels:
        figures.append(("test scenes: RoIAlign and RoIPool side by side", _panel_figure(panels,
                                                                                      out_dir / "panel.png")))
    return figures
