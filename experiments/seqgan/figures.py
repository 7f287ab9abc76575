"""SeqGAN's learning curves (the paper's Figure 2 kind): oracle NLL per epoch, ours (mean and
min-max over seeds) with the authors' code's own log and Table 1's values. Adversarial epochs
continue after the 120 MLE epochs they start from, as in the authors' log."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.render import save_figure

METRIC = "probe/oracle_nll"
MLE_EPOCHS = 120
COLORS = {"mle": "tab:blue", "ss": "tab:green", "seqgan_reduced": "tab:red", "seqgan": "tab:purple",
          "pg_bleu": "tab:orange"}
TABLE = {"mle": "mle", "ss": "schedule_sampling", "seqgan_reduced": "seqgan", "seqgan": "seqgan",
         "pg_bleu": "pg_bleu"}


def epochs_of(run: dict, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(epochs on the authors' axis, which to plot): MLE epochs, or 120 + adversarial epochs for
    SeqGAN runs (their discriminator pre-training, which leaves the generator alone, left out)
    and PG-BLEU runs (one generator step per adversarial epoch, as in SeqGAN)."""
    cfg, objective = run["config"], run["config"]["objective"]
    if objective["_target_"].endswith("AdversarialSequence"):
        since = (steps - objective["d_pretrain_steps"]) / (objective["d_steps"] + 1)
        return MLE_EPOCHS + since, since >= 0
    if objective["_target_"].endswith("PolicyGradientBLEU"):
        return MLE_EPOCHS + steps, np.ones(len(steps), bool)
    return steps * cfg["train"]["batch_size"] / run["data"]["splits"]["train"], np.ones(len(steps), bool)


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(reference_dir / "official_log.csv") as f:
        log = list(csv.DictReader(f))
    with open(reference_dir / "table1_oracle_nll.csv") as f:
        table = {r["method"]: float(r["oracle_nll"]) for r in csv.DictReader(f)}
    # Left: the paper's range. Middle: all of it (PG-BLEU leaves that range). Right: the
    # generator's NLL of held-out real sequences, which the oracle NLL cannot see: a generator
    # that drops most of the data's modes scores well on the oracle NLL and badly here.
    fig, (ax, wide, held_out) = plt.subplots(1, 3, figsize=(16, 4.4))
    for variant, runs in groups.items():
        if not runs:
            continue
        color = COLORS.get(variant, "gray")
        for axis, metric in ((ax, METRIC), (wide, METRIC), (held_out, "test/nll")):
            steps = np.asarray([r["step"] for r in runs[0]["history"] if metric in r])
            values = np.asarray([[r[metric] for r in run["history"] if metric in r] for run in runs])
            epochs, keep = epochs_of(runs[0], steps)
            axis.plot(epochs[keep], values.mean(0)[keep], color=color,
                      label=f"ours, {variant} (n={len(runs)})")
            axis.fill_between(epochs[keep], values.min(0)[keep], values.max(0)[keep], color=color, alpha=0.2)
        if TABLE.get(variant) in table:
            for axis in (ax, wide):
                axis.axhline(table[TABLE[variant]], color=color, ls=":", lw=1)
    for phase, offset, style in (("mle", 0, "--"), ("adversarial", MLE_EPOCHS, "-.")):
        rows = [r for r in log if r["phase"] == phase]
        for axis in (ax, wide):
            axis.plot([offset + float(r["epoch"]) for r in rows], [float(r["oracle_nll"]) for r in rows],
                      style, color="black", lw=1, label=f"authors' code log, {phase}")
    xlabel = "epoch (after 120: adversarial epochs, generator steps)"
    ax.set(xlabel=xlabel, ylabel="oracle NLL (nats/token)", ylim=(8.6, 10.4),
           title="oracle NLL, the paper's range (dotted: Table 1)")
    wide.set(xlabel=xlabel, ylabel="oracle NLL (nats/token)", title="oracle NLL, whole range")
    held_out.set(xlabel=xlabel, ylabel="NLL of held-out real sequences (nats/token)",
                 title="the generator's NLL of the held-out test sequences")
    for axis in (ax, wide, held_out):
        axis.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    path = out_dir / "oracle_nll_curves.png"
    save_figure(fig, path, dpi=100)
    return [("Oracle NLL over training, ours vs the authors' code log and Table 1, and the held-out NLL",
             path)]
