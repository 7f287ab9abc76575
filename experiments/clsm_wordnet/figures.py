"""CLSM stand-in figures: NDCG@k for k = 1..10 on held-out queries for CLSM, DSSM and BM25 (mean
over seeds, min-max shaded; BM25's is the same in every run), the models' NDCG@1 over training,
and held-out queries where CLSM and BM25 disagree most (disagreements.json, written from kept
weights by `python -m experiments.clsm_wordnet.examples`)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.clsm_wordnet.examples import EXAMPLES_FILE  # noqa: E402
from experiments.clsm_wordnet.ranking import KS  # noqa: E402
from repro.render import save_figure  # noqa: E402

COLORS = {"clsm": "tab:blue", "dssm": "tab:orange", "bm25": "black"}


def _split(run: dict) -> str:
    """The split the run ranked (its Ranking evaluator's; the spec's runs: test)."""
    evaluators = run.get("config", {}).get("evaluators") or [{}]
    return evaluators[0].get("split", "test")


def _final(runs: list[dict], prefix: str) -> np.ndarray:
    keys = [[f"{_split(r)}/{prefix}ndcg@{k}" for k in KS] for r in runs]
    return np.asarray([[r["final"][key] for key in row] for r, row in zip(runs, keys, strict=True)
                       if all(key in r["final"] for key in row)])


def make_figures(groups: dict[str, list[dict]], reference_dir: Path, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    systems = [(v, _final(runs, "")) for v, runs in groups.items()]
    if not any(len(values) for _, values in systems):
        return []
    fig, (at_k, over) = plt.subplots(1, 2, figsize=(11, 4))
    bm25 = next((v for v in (_final(runs, "bm25_") for runs in groups.values()) if len(v)), None)
    if bm25 is not None:
        systems.append(("bm25", bm25))
    for name, values in systems:
        if not len(values):
            continue
        at_k.plot(KS, values.mean(0), "o-", color=COLORS.get(name), label=f"{name} (n={len(values)})")
        at_k.fill_between(KS, values.min(0), values.max(0), color=COLORS.get(name), alpha=0.2)
    at_k.set_xlabel("k")
    at_k.set_ylabel("NDCG@k (held-out queries)")
    at_k.set_title("NDCG@k on the judged lists")
    at_k.legend(fontsize=8)
    for variant, runs in groups.items():
        for i, run in enumerate(runs):
            key = f"{_split(run)}/ndcg@1"
            points = [(h["step"], h[key]) for h in run["history"] if key in h]
            if points:
                over.plot(*zip(*points, strict=True), color=COLORS.get(variant), alpha=0.7,
                          label=variant if i == 0 else None)
    if bm25 is not None:
        over.axhline(bm25[:, 0].mean(), color="black", ls=":", label="bm25")
    over.set_xlabel("step")
    over.set_ylabel("NDCG@1 (held-out queries)")
    over.set_title("over training (each line a seed)")
    over.legend(fontsize=8)
    path = save_figure(fig, out_dir / "ndcg.png")
    return [("CLSM stand-in: NDCG@k of CLSM, DSSM and BM25 on held-out WordNet queries, and NDCG@1 over "
             "training", path)] + _examples(groups, out_dir)


def _examples(groups, out_dir: Path):
    """The disagreements of the first current run that has them, as a page of text."""
    path = out_dir / EXAMPLES_FILE
    names = [r.get("name") for runs in groups.values() for r in runs]
    found = json.loads(path.read_text())["runs"] if path.exists() else {}
    name = next((n for n in names if n in found), None)
    if name is None:
        return []
    lines = []
    for e in found[name]["examples"]:
        lines += textwrap.wrap(f"query: {e['query']}  ->  its document: {e['document']}  "
                               f"(NDCG@3 CLSM - BM25: {e['ndcg3_clsm_minus_bm25']:+.2f})", 150)
        for system in ("clsm", "bm25"):
            top = "; ".join(f"{d['document']} [{d['grade']}]" for d in e[f"{system}_top3"])
            lines += textwrap.wrap(f"    {system.upper()} top 3: {top}", 150, subsequent_indent="      ")
        lines.append("")
    fig = plt.figure(figsize=(14, 0.16 * len(lines) + 0.4))
    fig.text(0.01, 0.99, "\n".join(lines), va="top", family="monospace", fontsize=8)
    out = save_figure(fig, out_dir / "disagreements.png")
    return [(f"CLSM stand-in: held-out queries where CLSM and BM25 disagree most ({name}; [grade] of "
             "each document: 2 its own, 1 linked, 0 other)", out)]
