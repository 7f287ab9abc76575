"""How judged rows look: markdown tables and numbers for the report and for reproduce's
comparison, and figures saved one way. Judging lives in repro/verdicts.py; nothing here decides."""

from __future__ import annotations

import math
from pathlib import Path

from repro import registration


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table: the one table builder of the report and the comparison."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float, digits: int) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def direction(row: dict) -> str:
    """' (better)' / ' (worse)' after the difference when the spec row says which way is good
    (`better: lower`, e.g. a negative log-likelihood, or `better: higher`)."""
    better, diff = row.get("better"), row.get("diff", 0.0)
    if better not in ("lower", "higher") or not diff:
        return ""
    return " (better)" if (diff < 0) == (better == "lower") else " (worse)"


def tolerance_text(row: dict, tolerance: float) -> str:
    """'±0.13', or for a log-scale row the factor: 'x/÷2.0'."""
    if row.get("scale") == "log":
        return f"×/÷{10 ** tolerance:.2g}"
    return f"±{tolerance:.{row.get('digits', 4)}f}"


def diff_text(row: dict) -> str:
    if row.get("scale") == "log":
        return f"×{10 ** row['diff']:.2g}{direction(row)}"
    return f"{row['diff']:+.{row.get('digits', 4)}f}{direction(row)}"


def markdown_table(rows: list[dict]) -> str:
    """One line per reported number. Optional spec keys: `digits`, `units` (printed after the
    paper's and our values, e.g. nats) and `better` (lower | higher: labels the difference)."""
    lines = []
    for r in rows:
        d = r.get("digits", 4)
        units = f" {r['units']}" if r.get("units") else ""
        if r["n"]:
            ours = f"{fmt(r['mean'], d)} ± {fmt(r['std'], d)}{units}"
            diff, tol = diff_text(r), tolerance_text(r, r["tolerance"])
            within = within_text(r)
        else:
            tol = "–" if r.get("floor") is None else f"floor {tolerance_text(r, r['floor'])}"
            ours, diff, within = "–", "–", "–"
        lines.append([r["description"], r["source"], f"{r['value']}{units}", ours, r["status"], diff, tol,
                      within, registration_text(r)])
    return table(["reported number", "source", "paper", "ours (mean ± std)", "status", "diff",
                  "tolerance", "within", "registered"], lines)


def gap_text(row: dict) -> str:
    gap = row["gap"]
    return f"×{10 ** gap:.2g}" if row.get("scale") == "log" else f"{gap:.{row.get('digits', 4)}f}"


def within_text(row: dict) -> str:
    """'yes', '**no**', or that the tolerance is too wide to tell the variants the paper compares
    apart (repro/verdicts.py: a "within" that does not count)."""
    if row.get("discriminates") is False:
        blunt = f"does not discriminate (tolerance ≥ the paper's smallest gap, {gap_text(row)})"
        return blunt if row["within"] else f"**no**; {blunt}"
    return "yes" if row["within"] else "**no**"


def registration_text(row: dict) -> str:
    """When the row's value, tolerance and expectation were committed (repro/registration.py)."""
    status, commit = row.get("registration"), (row.get("registered_commit") or "")[:7]
    if status is None:
        return "–"
    if status == registration.BEFORE:
        return f"before the runs ({commit})"
    if status == registration.AFTER:
        return f"**after the runs** ({commit})"
    return f"unknown{f' ({commit})' if commit else ''}"


def claims_table(rows: list[dict]) -> str:
    """The paper's claims tested within seeds (repro.verdicts): difference, 95% interval, verdict."""
    lines = []
    for r in rows:
        d = r.get("digits", 3)
        if r["n"] == 0:
            ours = "–"
        elif r["low"] is None:
            ours = fmt(r["mean"], d)
        else:
            ours = f"{fmt(r['mean'], d)} [{fmt(r['low'], d)}, {fmt(r['high'], d)}]"
        paper = "–" if r.get("paper") is None else fmt(float(r["paper"]), d)
        verdict = r["verdict"] if r["verdict"].startswith(("holds", "not run")) else f"**{r['verdict']}**"
        lines.append([r["description"], r.get("source", ""), paper, ours, r["n"], verdict,
                      registration_text(r)])
    return table(["claim", "source", "paper", "ours: mean [95% interval]", "seeds", "verdict", "registered"],
                 lines)


def provenance_line(groups: dict[str, list[dict]]) -> str:
    runs = [r for g in groups.values() for r in g]
    commits = sorted({(r["provenance"].get("commit") or "unknown")[:10] for r in runs})
    devices = sorted({r["provenance"]["hardware"]["device_kind"] for r in runs})
    wall = [r["timing"]["wall_seconds"] for r in runs]
    return (f"From {len(runs)} runs (commits {', '.join(commits)}; devices {', '.join(devices)}; "
            f"wall time per run {min(wall):.0f}–{max(wall):.0f} s).")


def history_curve(runs: list[dict], key: str, index: int | None = None):
    """A metric over training: the steps at which the first run logged `key`, and every run's value
    there, [runs, steps] (element `index` of a vector-valued metric)."""
    import numpy as np

    steps = [r["step"] for r in runs[0]["history"] if key in r]
    values = []
    for run in runs:
        by_step = {r["step"]: r[key] for r in run["history"] if key in r}
        values.append([by_step[s] if index is None else by_step[s][index] for s in steps])
    return np.asarray(steps), np.asarray(values)


def final_curve(runs: list[dict], keys: list[str]):
    """Mean and std over seeds of the final values `keys` (a curve: one point per key), from the
    runs that logged all of them; None if none did."""
    import numpy as np

    values = np.asarray([[r["final"][k] for k in keys] for r in runs if all(k in r["final"] for k in keys)])
    if not len(values):
        return None
    return values.mean(0), values.std(0)


def save_figure(fig, path: Path, dpi: int = 110, drawn: bool = True) -> Path | None:
    """Lay out, write (its folder made if needed) and close a matplotlib figure (figures.py of
    every paper); a figure with nothing `drawn` on it is closed unwritten: None."""
    import matplotlib.pyplot as plt

    if not drawn:
        plt.close(fig)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
