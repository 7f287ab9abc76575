"""SeqGAN's learning curves (the paper's Figure 2 kind): oracle NLL per epoch, ours (mean and
min-max over seeds) with the authors' code's own log and Table 1's values. Adversarial epochs
continue after the MLE epochs of the run they start from (120 for ours, as in the authors' log).
Top row: our a-priori settings; bottom row: the baselines with the authors' own settings."""

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
AUTHORS = "_authors"  # the suffix of the variants with the authors' settings (the bottom row)


def _mle_epochs(run: dict, steps) -> np.ndarray:
    return np.asarray(steps) * run["config"]["train"]["batch_size"] / run["data"]["splits"]["train"]


def start_epoch(run: dict, runs: list[dict]) -> float:
    """The MLE epochs of the run `run` started from (its init_from, found among `runs`), else 120."""
    name = (run.get("init_from") or {}).get("run")
    start = [r for r in runs if r.get("name") == name]
    return float(_mle_epochs(start[0], start[0]["final"]["step"])) if start else float(MLE_EPOCHS)


def epochs_of(run: dict, steps: np.ndarray, start: float = MLE_EPOCHS) -> tuple[np.ndarray, np.ndarray]:
    """(epochs on the authors' axis, which to plot): MLE epochs, or `start` + adversarial epochs
    for SeqGAN runs (their discriminator pre-training, which leaves the generator alone, left out)
    and PG-BLEU runs (one generator step per adversarial epoch, as in SeqGAN)."""
    objective = run["config"]["objective"]
    if objective["_target_"].endswith("AdversarialSequence"):
        since = (steps - objective["d_pretrain_steps"]) / (objective["d_steps"] + 1)
        return start + since, since >= 0
    if objective["_target_"].endswith("PolicyGradientBLEU"):
        return start + steps, np.ones(len(steps), bool)
    return _mle_epochs(run, steps), np.ones(len(steps), bool)


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(reference_dir / "official_log.csv") as f:
        log = list(csv.DictReader(f))
    with open(reference_dir / "table1_oracle_nll.csv") as f:
        table = {r["method"]: float(r["oracle_nll"]) for r in csv.DictReader(f)}
    # Left: the paper's range. Middle: all of it (PG-BLEU leaves that range). Right: the
    # generator's NLL of held-out real sequences, which the oracle NLL cannot see: a generator
    # that drops most of the data's modes scores well on the oracle NLL and badly here.
    everything = [run for runs in groups.values() for run in runs]
    rows = 2 if any(runs for v, runs in groups.items() if v.endswith(AUTHORS)) else 1
    fig, axes = plt.subplots(rows, 3, figsize=(16, 4.4 * rows), squeeze=False)
    for variant, runs in groups.items():
        if not runs:
            continue
        ax, wide, held_out = axes[int(variant.endswith(AUTHORS))]
        base = variant.removesuffix(AUTHORS)
        color = COLORS.get(base, "gray")
        for axis, metric in ((ax, METRIC), (wide, METRIC), (held_out, "test/nll")):
            steps = np.asarray([r["step"] for r in runs[0]["history"] if metric in r])
            values = np.asarray([[r[metric] for r in run["history"] if metric in r] for run in runs])
            epochs, keep = epochs_of(runs[0], steps, start_epoch(runs[0], everything))
            axis.plot(epochs[keep], values.mean(0)[keep], color=color,
                      label=f"ours, {variant} (n={len(runs)})")
            axis.fill_between(epochs[keep], values.min(0)[keep], values.max(0)[keep], color=color, alpha=0.2)
        if TABLE.get(base) in table:
            for axis in (ax, wide):
                axis.axhline(table[TABLE[base]], color=color, ls=":", lw=1)
    settings = ["our a-priori settings", "the authors' settings"]
    for (ax, wide, held_out), which in zip(axes, settings, strict=False):
        for phase, offset, style in (("mle", 0, "--"), ("adversarial", MLE_EPOCHS, "-.")):
            log_rows = [r for r in log if r["phase"] == phase]
            for axis in (ax, wide):
                axis.plot([offset + float(r["epoch"]) for r in log_rows],
                          [float(r["oracle_nll"]) for r in log_rows],
                          style, color="black", lw=1, label=f"authors' code log, {phase}")
        xlabel = "epoch (after MLE: adversarial epochs, generator steps)"
        ax.set(xlabel=xlabel, ylabel="oracle NLL (nats/token)", ylim=(8.6, 10.4),
               title=f"{which}: the paper's range (dotted: Table 1)")
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
