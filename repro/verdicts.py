"""How a reproduced number is judged against the paper's: one rule, stated once, for every paper.

**Values.** A spec row reads `metric` from each run's history at `step` (None: the last
evaluation), or from the result's `facts` or `timing` block when it is `facts/<name>` (e.g.
`facts/parameters`) or `timing/<name>` (e.g. `timing/steps_per_second`). `metric` may be a
ratio of two logged metrics, `"a / b"`, or their difference, `"a - b"` (per run), a row with
`steps_to: x` reads instead the first evaluated step at which the metric reaches x, and one
with `over_training: min` (or max) the best value of any evaluation (a value selected on the
metric itself: a row says so).

**Tolerance.** A row is within when |ours - paper| <= max(floor, 2 SE), with

    SE^2 = s^2 / n  +  paper_se^2  +  read_error^2

the standard error of the difference between our mean over n seeds (seed std s) and the paper's
number. `paper_se` is the paper's own standard error where it states one; else, when the paper's
number is a mean of `paper_runs` runs of the same setup, s / sqrt(paper_runs) (our seed spread
standing in for theirs; paper_runs = 1 for a single run); else 0. `read_error` is how precisely the
paper's number was read (a figure's digitization; half a unit of a table's last digit). `floor` is
the slack a spec grants a priori for settings the paper leaves unstated, and the whole tolerance
when one seed gives no spread. With `scale: log` the rule applies to log10 of the values, so a
floor of log10(2) means "within a factor of 2".

**Discrimination.** A paper sets some numbers side by side (a table's column, the curves of a
figure): rows sharing a `compares` group, or paper values a row lists in `compares` that are no
row of the spec. The smallest nonzero gap between the row's paper value and those (in the row's
scale) is the least difference the paper draws; a row whose tolerance is at least that gap cannot
tell its variant from the nearest one compared, so it **does not discriminate**, and a "within"
verdict of such a row does not count as within.

**Claims.** A claim row tests what the paper concludes, within seeds: for every seed run in both
variants `a` and `b`, d = value(a) - value(b) (or value(a) alone without `b`; with `c` and `d`,
a gain compared with another, d = (value(a) - value(b)) - (value(c) - value(d))); the claim
`expect: lower` (or `higher`) than `than` (default 0) holds when the 95% t-interval of the mean
of d lies on that side, is contradicted when it lies on the other, and is unresolved otherwise.
`step_b` reads `b` at another step than `a` (e.g. two schedules compared after equal numbers of
generator steps), `metric_b` another metric (e.g. a baseline every run also measures, such as
BM25's ranking of the same lists); `b` may then be `a` itself. One seed gives no interval: its
sign alone is shown, marked as one run (a difference of exactly `than` is on neither side:
unresolved).
"""

from __future__ import annotations

import math
import operator
import statistics

from scipy import stats

RESULT_BLOCKS = ("facts", "timing")  # `facts/parameters`, `timing/steps_per_second`: read there
OPERATORS = {" / ": operator.truediv, " - ": operator.sub}  # a metric may be a ratio or a difference


def split_metric(metric: str) -> tuple[str, str, str] | None:
    """(left, operator, right) of a ratio `a / b` or a difference `a - b`; None for one metric.
    More than one operator is refused: which one binds first would be a guess."""
    signs = [sign for sign in OPERATORS for _ in range(metric.count(sign))]
    if not signs:
        return None
    if len(signs) > 1:
        raise ValueError(f"metric {metric!r}: one ratio ('a / b') or one difference ('a - b') of two "
                         "logged metrics at most; log the combined quantity from a probe instead")
    left, right = metric.split(signs[0])
    return left.strip(), signs[0], right.strip()


def value_of(result: dict, item: dict) -> float | None:
    """The row's value in one run: the metric (or ratio) at `step`, or the steps to a threshold."""
    metric, step = item["metric"], item.get("step")
    if "steps_to" in item:
        reached = [r["step"] for r in result["history"] if r.get(metric, -math.inf) >= item["steps_to"]]
        return float(min(reached)) if reached else None
    combined = split_metric(metric)
    if combined:
        left, sign, right = combined
        left, right = (value_of(result, {**item, "metric": m}) for m in (left, right))
        return None if left is None or right is None else OPERATORS[sign](left, right)
    block, _, name = metric.partition("/")
    if block in RESULT_BLOCKS:  # a static fact or a timing of the run, not a curve
        value = (result.get(block) or {}).get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    evals = [r for r in result["history"] if metric in r]
    if not evals:
        return None
    if item.get("over_training"):
        best = {"min": min, "max": max}[item["over_training"]]
        return best(r[metric] for r in evals)
    if step is None:
        return evals[-1][metric]
    return min(evals, key=lambda r: abs(r["step"] - step))[metric]


def values_by_seed(runs: list[dict], item: dict) -> dict[int, float]:
    values = {r["seed"]: value_of(r, item) for r in runs}
    return {seed: v for seed, v in values.items() if v is not None}


def summarize(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    return statistics.fmean(values), (statistics.stdev(values) if n > 1 else math.nan), n


def tolerance(item: dict, seed_std: float, n: int) -> float:
    """max(floor, 2 SE) of the module docstring; seed_std in the row's scale (0 or NaN: unknown)."""
    s = 0.0 if n < 2 or math.isnan(seed_std) else seed_std
    if item.get("paper_se") is not None:
        paper_se = float(item["paper_se"])
    elif item.get("paper_runs"):
        paper_se = s / math.sqrt(item["paper_runs"])
    else:
        paper_se = 0.0
    se = math.sqrt(s * s / max(n, 1) + paper_se**2 + float(item.get("read_error", 0.0)) ** 2)
    return max(float(item["floor"]), 2.0 * se)


def smallest_gap(item: dict, rows: list[dict]) -> float | None:
    """The smallest nonzero gap, in the row's scale, between its paper value and the values the
    paper sets beside it (module docstring); None when it is compared with nothing."""
    compares = item.get("compares")
    compares = [] if compares is None else [compares] if isinstance(compares, str) else compares
    groups = {c for c in compares if isinstance(c, str)}
    others = [float(c) for c in compares if not isinstance(c, str)]
    for row in rows:
        shared = row.get("compares")
        shared = {shared} if isinstance(shared, str) else {c for c in shared or [] if isinstance(c, str)}
        if row is not item and groups & shared:
            others.append(float(row["value"]))
    scale = math.log10 if item.get("scale") == "log" else float
    gaps = [abs(scale(float(item["value"])) - scale(v)) for v in others]
    gaps = [g for g in gaps if g > 0]  # a tie is no difference the paper draws
    return min(gaps) if gaps else None


def judge(item: dict, values: list[float], gap: float | None = None) -> dict:
    """Mean, std and n of our values, their difference from the paper, the tolerance and the
    verdict; with the paper's smallest `gap` to the numbers it compares (smallest_gap), whether
    the tolerance discriminates (None: nothing compared)."""
    mean, std, n = summarize(values)
    log = item.get("scale") == "log"
    if log and min(min(values), float(item["value"])) <= 0:
        raise ValueError(f"row {item.get('description')!r} has scale: log but a value <= 0")
    scaled = [math.log10(v) for v in values] if log else list(values)
    center, spread, _ = summarize(scaled)
    paper = math.log10(float(item["value"])) if log else float(item["value"])
    tol = tolerance(item, spread, n)
    diff = center - paper
    return {"mean": mean, "std": std, "n": n, "diff": diff, "tolerance": tol,
            "within": abs(diff) <= tol + 1e-12 * max(1.0, abs(paper)),
            "gap": gap, "discriminates": None if gap is None else tol < gap}


def counts_as_within(row: dict) -> bool:
    """Within the tolerance, and a tolerance that tells the row's variant from those compared."""
    return bool(row.get("within")) and row.get("discriminates") is not False


def check_claim(claim: dict, groups: dict[str, list[dict]]) -> dict:
    """A claim row (module docstring) measured on the runs of its variants."""
    a = values_by_seed(groups.get(claim["a"], []), claim)
    at_b = {**claim, **({"step": claim["step_b"]} if claim.get("step_b") is not None else {}),
            **({"metric": claim["metric_b"]} if claim.get("metric_b") else {})}
    b = values_by_seed(groups.get(claim["b"], []), at_b) if claim.get("b") else None
    if claim.get("c"):  # (a - b) - (c - d): a gain compared with another, seed by seed
        c = values_by_seed(groups.get(claim["c"], []), claim)
        d_ = values_by_seed(groups.get(claim["d"], []), at_b)
        a = {s: a[s] - c[s] + d_[s] for s in set(a) & set(c) & set(d_)}
    seeds = sorted(set(a) & set(b)) if b is not None else sorted(a)
    d = [a[s] - b[s] for s in seeds] if b is not None else [a[s] for s in seeds]
    row = {**claim, "n": len(d)}
    if not d:
        return {**row, "verdict": "not run"}
    than, lower = float(claim.get("than", 0.0)), claim["expect"] == "lower"
    mean, std, n = summarize(d)
    if n < 2:  # the sign alone; exactly at `than` it is neither side
        side = "holds" if (mean < than if lower else mean > than) else \
            "contradicted" if (mean > than if lower else mean < than) else "unresolved"
        return {**row, "mean": mean, "low": None, "high": None, "verdict": side + " (one run, no interval)"}
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if (high < than) if lower else (low > than):
        verdict = "holds"
    elif (low > than) if lower else (high < than):
        verdict = "contradicted"
    else:
        verdict = "unresolved"
    return {**row, "mean": mean, "low": low, "high": high, "verdict": verdict}


def versus_reference(reference: dict[int, float], local: dict[int, float]) -> tuple[str, bool]:
    """This machine's values of one reported number vs the committed reference's, seed for seed
    (values keyed by seed): (text, differs beyond the seed spread). Bitwise equal when every seed
    run here has exactly the reference's value of the same seed; else within the seed spread
    when the means differ by at most 2 standard errors of their difference (each side's seed std;
    one side's stands in for a side with a single seed); else it differs."""
    if not local:
        return "not run here", False
    if not reference:
        return "no reference", False
    if all(s in reference and reference[s] == v for s, v in local.items()):
        return "bitwise equal", False
    (m_ref, s_ref, n_ref), (m_loc, s_loc, n_loc) = (summarize(list(d.values()))
                                                     for d in (reference, local))
    largest = max(abs(v - reference[s]) for s, v in local.items() if s in reference) \
        if set(local) & set(reference) else abs(m_loc - m_ref)
    s_ref = s_ref if n_ref > 1 else s_loc
    s_loc = s_loc if n_loc > 1 else s_ref
    if n_ref < 2 and n_loc < 2:
        return f"no spread to judge by (one seed each; differs by {largest:.4g})", False
    bound = 2 * math.sqrt(s_ref**2 / n_ref + s_loc**2 / n_loc)
    if abs(m_loc - m_ref) <= bound:
        return f"within seed spread (means {m_loc - m_ref:+.4g}, 2 s.e. {bound:.3g})", False
    return f"**differs** by up to {largest:.4g} (means {m_loc - m_ref:+.4g}, 2 s.e. {bound:.3g})", True


def final_values(result: dict) -> dict[str, float]:
    """Every number of a result's `final` record but the step; a per-unit list gives one number
    per entry (`name[i]`)."""
    out = {}
    for name, value in (result.get("final") or {}).items():
        if name == "step":
            continue
        if isinstance(value, list):
            out.update({f"{name}[{i}]": v for i, v in enumerate(value) if isinstance(v, int | float)})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
    return out


def final_metrics_versus_reference(reference: list[dict], local: list[dict]) -> list[tuple[str, str, bool]]:
    """Every final number of the runs this machine made, seed for seed against the reference runs
    of the same config: (metric, versus_reference text, differs beyond the seed spread), for the
    metrics both sides have."""
    ref = {r["seed"]: final_values(r) for r in reference}
    loc = {r["seed"]: final_values(r) for r in local}
    names = sorted({n for v in loc.values() for n in v} & {n for v in ref.values() for n in v})
    rows = []
    for name in names:
        by_seed = [{s: v[name] for s, v in side.items() if name in v} for side in (ref, loc)]
        rows.append((name, *versus_reference(*by_seed)))
    return rows
