"""`make report`: every paper's reported numbers next to ours, with plots -> results/README.md.

A paper's spec (experiments/<paper>/spec.yaml) names its variants as config overrides. Only
results whose config hash equals that of the experiment config as it stands now count, so
stale runs of an older config or side sweeps never leak into the table.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import sys
from pathlib import Path

import yaml

from repro import registration, render, verdicts
from repro.configuration import compose, config_hash, to_dict, with_current_targets
from repro.results import BadResultFile, load_results
from repro.spec import SpecError, check_row, load_spec

ROOT = Path(__file__).resolve().parent.parent


def load_specs(experiments_dir: Path = ROOT / "experiments", broken: dict | None = None) -> list[dict]:
    """Every paper's spec, checked (repro/spec.py); its experiment is the folder's name. A spec
    that fails its check is left out, so it breaks no other paper's command: its error goes into
    `broken` ({experiment: message}) when given, else to stderr as a warning."""
    specs = []
    for path in sorted(experiments_dir.glob("*/spec.yaml")):
        try:
            specs.append(load_spec(path))
        except SpecError as err:
            if broken is None:
                print(f"warning: {err} (spec skipped)", file=sys.stderr)
            else:
                broken[path.parent.name] = str(err)
    return specs


def one_per_seed(runs: list[dict], tag: str | None = None) -> list[dict]:
    """Runs sorted by seed, each seed once, so n counts seeds: a config run again under another
    tag (not hashed) has two files per seed; the one with `tag` is kept, else the first."""
    by_seed = {}
    for r in sorted(runs, key=lambda r: (r["seed"], r.get("tag") != tag)):
        by_seed.setdefault(r["seed"], r)
    return list(by_seed.values())


@functools.cache
def _variant_config(experiment: str, overrides: tuple[str, ...]):
    return compose([f"experiment={experiment}", *overrides])


def variant_config(spec: dict, variant: str):
    """The composed config of a spec's variant (composed once per process: ~0.2 s each)."""
    return _variant_config(spec["experiment"], tuple(spec["variants"][variant])).copy()


def group_by_variant(spec: dict, results: list[dict], variants=None) -> dict[str, list[dict]]:
    """{variant: [results of the current config of that variant, one per seed]}, for every
    variant of the spec or those named in `variants` (each composed once: ~0.2 s)."""
    groups = {}
    for variant in spec["variants"] if variants is None else variants:
        cfg = variant_config(spec, variant)
        wanted = config_hash(cfg)
        groups[variant] = one_per_seed([r for r in results if r.get("config_hash") == wanted], cfg.tag)
    return groups


def compare(spec: dict, groups: dict[str, list[dict]]) -> list[dict]:
    """One row per reported number: our values judged by the rule of repro.verdicts; then each
    row the spec once had and dropped (`retired`), judged the same way, after the last row of its
    variant and metric (its successor), so a row replaced after a miss stays in sight."""
    rows = [_judged(spec, item, groups, verdicts.smallest_gap(item, spec["reported"]))
            for item in spec["reported"]]
    if "_dir" not in spec:
        return rows
    for old in registration.retired(ROOT, spec["_dir"] / "spec.yaml", "reported", spec["reported"]):
        retired = f"retired in {(old['retired_in'] or 'the working tree')[:7]}"
        try:  # a row written for an earlier form of the rule is shown, not judged by this one
            check_row({k: v for k, v in old.items() if k not in ("retired_in", "registered_commit")},
                      "a retired row")
            row = _judged(spec, old, groups, None)
            if row["n"]:
                row.update(registration.mark(ROOT, spec["_dir"] / "spec.yaml", "reported", old,
                                             groups.get(old["variant"], []), old["registered_commit"]))
            row["status"] = f"{retired}; {row['status']}"
        except SpecError as err:
            row = {**old, "n": 0, "floor": None,
                   "status": f"{retired}; not judged: its form predates the current rule "
                             f"({str(err).split(': ', 1)[1].split(';')[0]})"}
        rows.insert(_after_successor(rows, old), row)
    return rows


def _after_successor(rows: list[dict], old: dict) -> int:
    """Where a retired row goes: after the last current row of its variant, metric and step, else
    of its variant and metric, else at the end."""
    for keys in (("variant", "metric", "step"), ("variant", "metric")):
        same = [i for i, r in enumerate(rows) if "retired_in" not in r
                and all(r.get(k) == old.get(k) for k in keys)]
        if same:
            return same[-1] + 1
    return len(rows)
    return rows


def _judged(spec: dict, item: dict, groups: dict[str, list[dict]], gap: float | None) -> dict:
    values = list(verdicts.values_by_seed(groups.get(item.get("variant"), []), item).values())
    wanted = item.get("seeds_wanted", spec.get("seeds_wanted", 3))
    row = {**item, "n": len(values), "status": _status(len(values), wanted)}
    if values:
        row.update(verdicts.judge(item, values, gap))
        if "retired_in" not in item:
            row.update(_registration(spec, "reported", item, groups))
    return row


def _registration(spec: dict, kind: str, row: dict, groups: dict[str, list[dict]]) -> dict:
    runs = [r for v in registration.variants_of(kind, row) for r in groups.get(v, [])]
    return registration.mark(ROOT, spec["_dir"] / "spec.yaml", kind, row, runs) if "_dir" in spec else {}


def _status(n: int, wanted: int) -> str:
    """How much stands behind a row: the spec's seed count, fewer (stated), or nothing."""
    if n == 0:
        return "not run"
    return f"run ({n} seeds)" if n >= wanted else f"partly run ({n} of {wanted} seeds)"


def summary_line(rows: list[dict]) -> str:
    retired = [r for r in rows if "retired_in" in r]
    rows = [r for r in rows if "retired_in" not in r]
    run = [r for r in rows if r["n"]]
    full = sum(r["status"].startswith("run") for r in rows)
    text = (f"{len(rows)} reported numbers: {full} run with all seeds, {len(run) - full} partly "
            f"run, {len(rows) - len(run)} not run")
    if run:
        text += f"; {sum(map(verdicts.counts_as_within, run))} of the {len(run)} run within tolerance"
        blunt = sum(r["within"] and r["discriminates"] is False for r in run)
        if blunt:
            text += (f" ({blunt} more within a tolerance too wide to tell the variants the paper "
                     "compares apart: not counted)")
    text += registration.counted(run)
    if retired:
        judged = [r for r in retired if r["n"]]
        text += (f"; {len(retired)} retired row(s) shown beside their successors "
                 + (f"({sum(map(verdicts.counts_as_within, judged))} of the {len(judged)} run within)"
                    if judged else "(none judged by the current rule)"))
    return text + "."


def check_claims(spec: dict, groups: dict[str, list[dict]]) -> list[dict]:
    rows = [verdicts.check_claim(claim, groups) for claim in spec.get("claim_tests", [])]
    return [{**row, **(_registration(spec, "claim_tests", claim, groups) if row["n"] else {})}
            for claim, row in zip(spec.get("claim_tests", []), rows, strict=True)]


def claims_line(rows: list[dict]) -> str:
    run = [r for r in rows if r["n"]]
    count = {v: sum(r["verdict"].startswith(v) for r in run) for v in ("holds", "unresolved", "contradicted")}
    return (f"{len(rows)} claims tested within seeds: {len(rows) - len(run)} not run; of the {len(run)} "
            f"run, {count['holds']} hold, {count['unresolved']} unresolved, {count['contradicted']} "
            f"contradicted{registration.counted(run)}.")


def paper_section(spec: dict, results_dir: Path, strict: bool = False,
                  draw: bool = True) -> tuple[str, list[dict], list[dict]]:
    """The paper's part of the report, its reported-number rows and its claim rows (`draw=False`:
    without drawing its figures, e.g. to read the verdicts alone)."""
    skipped: list[str] = []
    results = load_results(results_dir, spec["experiment"], strict=strict, skipped=skipped)
    groups = group_by_variant(spec, results)
    rows = compare(spec, groups)
    used = sum(len(g) for g in groups.values())
    figures = []
    if spec.get("figures") and used and draw:
        module = importlib.import_module(spec["figures"])
        figures = module.make_figures(groups, spec["_dir"] / "reference",
                                      results_dir / spec["experiment"] / "figures")
    lines = [f"## {spec['title']}", "",
             f"{spec['paper']} — `{spec['command']}`. Spec: `experiments/{spec['_dir'].name}/spec.yaml`. "
             "Tolerances and claims follow the rule of `repro/verdicts.py` (README, \"How numbers are "
             "judged\").", ""]
    if rows:
        lines += [summary_line(rows), "", render.markdown_table(rows), ""]
    claims = check_claims(spec, groups)
    if claims:
        lines += [claims_line(claims), "", render.claims_table(claims), ""]
    if skipped:
        lines += [f"**{len(skipped)} result file(s) could not be read and are left out:**", ""]
        lines += [f"- {message}" for message in skipped] + [""]
    if used:
        lines.append(render.provenance_line(groups))
    others = [r for r in results if not any(r in g for g in groups.values())]
    if others:
        lines += ["", f"{len(others)} other result file(s) in results/{spec['experiment']}/ "
                  "(other configs, e.g. sweeps) are not in the table above:", "",
                  other_runs_table(spec, others)]
    lines.append("")
    for title, path in figures:
        lines += [f"![{title}]({Path(path).relative_to(results_dir).as_posix()})", ""]
    if spec.get("deviations"):
        lines += ["Deviations from the paper:", ""]
        lines += [f"- {d}" for d in spec["deviations"]] + [""]
    return "\n".join(lines), rows, claims


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def superseded(spec: dict) -> dict[str, str]:
    """{config hash: why} of the paper's committed runs that an earlier config made."""
    return {runs["config_hash"]: runs["why"] for runs in spec.get("superseded", [])}


def other_runs_table(spec: dict, results: list[dict]) -> str:
    """Runs of configs the spec does not name: how they differ from the experiment config."""
    base = _flatten(to_dict(compose([f"experiment={spec['experiment']}"])))
    metric = spec.get("headline_metric", "test/accuracy")
    # where to read the metric: a step, None = the last evaluation, "min"/"max" = the best one
    steps = spec.get("sweep_steps", [None])
    replaced = superseded(spec)
    by_config: dict[str, list[dict]] = {}
    for r in results:
        by_config.setdefault(r["config_hash"], []).append(r)
    rows = []
    for runs in by_config.values():
        runs = one_per_seed(runs)
        flat = _flatten(with_current_targets(runs[0]["config"]))
        diff = [f"{k}={flat[k]}" for k in sorted(flat) if k in base and flat[k] != base[k]
                and not k.startswith(("paths.", "logger.", "results.", "data.dir", "progress"))
                and k not in ("seed", "tag")]
        cells = []
        for step in steps:
            item = ({"metric": metric, "over_training": step} if step in ("min", "max")
                    else {"metric": metric, "step": step})
            values = [v for v in (verdicts.value_of(r, item) for r in runs) if v is not None]
            mean, std, _ = verdicts.summarize(values) if values else (math.nan, math.nan, 0)
            cells.append(f"{render.fmt(mean, 4)} ± {render.fmt(std, 4)}")
        if runs[0].get("data_partial"):  # never a reproduction: say so where it is listed
            diff.append(f"partial data ({runs[0]['data_partial']})")
        why = replaced.get(runs[0]["config_hash"])
        if why:
            diff.append(f"**superseded**: {why}")
        rows.append(f"| {', '.join(diff) or '(no difference in config values)'} | {len(runs)} "
                    f"| {' | '.join(cells)} |")
    columns = [f"{metric}, {s} over training" if s in ("min", "max")
               else f"{metric} at {'the end' if s is None else f'step {s}'}" for s in steps]
    header = [f"| differs from the experiment config in | seeds | {' | '.join(columns)} |",
              "|---|---|" + "---|" * len(steps)]
    return "\n".join(header + sorted(rows))


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def write_report(results_dir: Path = ROOT / "results", specs: list[dict] | None = None,
                 strict: bool = False) -> str:
    specs = load_specs() if specs is None else specs
    parts = ["# Reported vs. reproduced", "",
             "Generated by `make report` from the result files in this folder; every number of "
             "ours comes from a run whose result file (config, commit, versions, hardware, wall "
             "time) sits next to it. Paper values cite their table or figure.", ""]
    sections, overview, papers = [], ["| paper | reported numbers | status |", "|---|---|---|"], []
    for spec in specs:
        section, rows, claims = paper_section(spec, results_dir, strict)
        sections.append(section)
        status = verdict_status(rows, claims)
        current = sum("retired_in" not in r for r in rows)
        overview.append(f"| [{spec['title']}](#{_anchor(spec['title'])}) | {current} | {status} |")
        papers.append(paper_row(spec, rows, claims))
    for paper in planned_papers():
        overview.append(f"| {paper['title']} | – | not built yet: {paper['needs']} |")
        papers.append(planned_row(paper))
    text = "\n".join([*parts, *overview, "", *sections])
    (results_dir / "README.md").write_text(text)
    if results_dir == ROOT / "results":  # the committed results: the README's table follows them
        update_readme_papers(papers)
    return text


def verdict_status(rows: list[dict], claims: list[dict]) -> str:
    """A paper's standing, from its verdicts alone: the summary of its rows and of its claims."""
    status = summary_line(rows).split(": ", 1)[1] if rows else ""
    if claims:
        status += f" Claims: {claims_line(claims).split(': ', 1)[1]}"
    return status.strip()


def paper_row(spec: dict, rows: list[dict], claims: list[dict]) -> list[str]:
    """A built paper's line of the README's table: its scope, and the verdicts' full summary."""
    verdicts_text = " ".join([summary_line(rows)] * bool(rows) + [claims_line(claims)] * bool(claims))
    return [spec["title"], f"`{spec['experiment']}`", f"`{spec['command']}`", spec.get("scope") or "–",
            verdicts_text or "no reported numbers"]


def planned_row(paper: dict) -> list[str]:
    return [paper["title"], "–", "–", f"not built yet: {paper['needs']}", "–"]


def planned_papers() -> list[dict]:
    planned = ROOT / "experiments" / "planned.yaml"
    return (yaml.safe_load(planned.read_text()) or []) if planned.exists() else []


README_MARKERS = ("<!-- papers: generated by make report from the verdicts; do not edit -->",
                  "<!-- papers: end -->")


def papers_block(papers: list[list]) -> str:
    """The README's paper table: scope from each spec, status from the verdicts (never by hand)."""
    table = render.table(["paper", "experiment", "command", "scope", "verdicts (committed results)"],
                         papers)
    return f"{README_MARKERS[0]}\n{table}\n{README_MARKERS[1]}"


def update_readme_papers(papers: list[list], readme: Path = ROOT / "README.md") -> None:
    """Replace the README's paper table (between README_MARKERS) with the generated one."""
    text = readme.read_text()
    start, end = text.find(README_MARKERS[0]), text.find(README_MARKERS[1])
    if start < 0 or end < 0:
        raise ValueError(f"{readme} lacks the paper table's markers {README_MARKERS}")
    readme.write_text(text[:start] + papers_block(papers) + text[end + len(README_MARKERS[1]):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--strict", action="store_true",
                        help="fail on a bad result file instead of skipping it with a warning")
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    try:
        print(write_report(args.results, strict=args.strict))
    except BadResultFile as err:
        raise SystemExit(f"error: {err} (--strict; without it the file is skipped with a warning)") from None


if __name__ == "__main__":
    main()
