"""`python -m repro.reproduce <paper>`: run a paper's spec on this machine and check it.

The spec (experiments/<paper>/spec.yaml) is the one source of the run grid: every variant x
its seeds (the most `seeds_wanted` of its reported rows, default 3). Runs this machine has not
made yet are trained into the git-ignored `local/` area, never into the committed `results/`;
then every reported number is shown three ways (paper, committed reference, this machine) with
two verdicts: reference vs paper (the tolerance rule of repro.verdicts) and this machine vs reference:

- **bitwise equal**: every seed this machine ran has exactly the reference's value;
- **within seed spread**: the means differ by at most 2 standard errors of their difference
  (sqrt(s_ref^2/n_ref + s_local^2/n_local), each s a seed std; one side's s stands in for a
  side with a single seed);
- **differs** (by the largest difference), or **no spread to judge by** (one seed each, unequal).

Every final number of each run this machine made (not only the spec's rows) is compared so, seed
for seed; where they are not bitwise equal the comparison says what differs in how the two were
made (commit, seeds vmapped together, versions, hardware: repro.provenance.differences).

`--check` exits 1 when any number differs beyond the seed spread. `promote` copies this
machine's result files into `results/` (keeping their provenance; never overwriting).

    python -m repro.reproduce bn_mnist                     # train what is missing, then compare
    python -m repro.reproduce vardrop_mnist --only 'none_h100,variational_*_h100' --seeds 0
    python -m repro.reproduce bn_mnist --no-train --check  # compare only (make verify-bn-mnist)
    python -m repro.reproduce bn_mnist -- hydra/launcher=slurm hydra.launcher.partition=gpu
    python -m repro.reproduce promote bn_mnist
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from repro import manifest, provenance, render, report, verdicts
from repro.results import BadResultFile, load_results, read_result
from repro.weights import weights_path
from repro.writable import check_writable

# This machine's runs and its comparison: git-ignored `local/`, or REPRO_LOCAL (a read-only checkout).
LOCAL = Path(os.environ.get("REPRO_LOCAL") or report.ROOT / "local")


def find_spec(paper: str) -> dict:
    """The spec of an experiment (= its folder's name), dashes allowed (bn-mnist = bn_mnist)."""
    wanted = paper.replace("-", "_")
    broken: dict[str, str] = {}
    specs = report.load_specs(broken=broken)
    if wanted in broken:
        raise SystemExit(f"error: {broken[wanted]}")
    for spec in specs:
        if wanted == spec["experiment"]:
            return spec
    known = ", ".join(sorted([s["experiment"] for s in specs] + list(broken)))
    raise SystemExit(f"error: no paper {paper!r}; known: {known}")


def seeds_of(spec: dict, variant: str) -> list[int]:
    wanted = [r.get("seeds_wanted", spec.get("seeds_wanted", 3)) for r in spec["reported"]
              if r["variant"] == variant]
    return list(range(max(wanted, default=spec.get("seeds_wanted", 3))))


def selected(spec: dict, only: str | None) -> list[str]:
    """The variants to run: --only's patterns, else all but the spec's `on_demand` ones (runs too
    long for the default machine, e.g. a paper's full schedule on a CPU)."""
    names = list(spec["variants"])
    if not only:
        return [n for n in names if n not in spec.get("on_demand", [])]
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"error: --only {only!r} matches no variant of {spec['experiment']}; "
                         f"variants: {', '.join(names)}")
    return chosen


def train(spec: dict, variants: list[str], seeds: list[int] | None, extra: list[str]) -> None:
    """One Hydra job per variant (its seeds vmapped when the spec says `vmap_seeds: true`, else
    a multirun over them), so launchers such as SLURM pass through `extra`."""
    for variant in variants:
        run_seeds = seeds if seeds is not None else seeds_of(spec, variant)
        seed_args = ([f"seeds=[{','.join(map(str, run_seeds))}]"] if spec.get("vmap_seeds")
                     else [f"seed={','.join(map(str, run_seeds))}"])
        command = [sys.executable, "-m", "repro", "-m", f"experiment={spec['experiment']}",
                   *spec["variants"][variant], *seed_args, f"paths.results={LOCAL / 'results'}",
                   f"paths.checkpoints={LOCAL / 'checkpoints'}", "results.if_exists=skip",
                   f"hydra.sweep.dir={LOCAL / 'multirun' / spec['experiment']}/{variant}", *extra]
        print(f"[reproduce] {variant}: seeds {run_seeds}", flush=True)
        t0 = time.perf_counter()
        if run_child(command, cwd=report.ROOT):
            raise SystemExit(f"error: the runs of variant {variant} failed (command: {' '.join(command)})")
        print(f"[reproduce] {variant}: done in {time.perf_counter() - t0:.0f} s", flush=True)


def run_child(command: list[str], cwd, grace_s: float = 60.0) -> int:
    """Run a training child and wait for it; a SIGTERM or SIGHUP to this process (a scheduler
    ending the job, a closed terminal) is passed on to the child, which is waited for (killed
    after `grace_s`), so no training run is left behind holding its lock."""
    proc = subprocess.Popen(command, cwd=cwd)
    received: list[int] = []
    deadline = threading.Timer(grace_s, proc.kill)  # a child that ignores the signal
    deadline.daemon = True

    def forward(signum, frame):  # the wait below returns once the child has gone
        received.append(signum)
        proc.send_signal(signum)
        if not deadline.is_alive():
            deadline.start()

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        deadline.cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise SystemExit(128 + received[0])
    return code


def _stats(values: dict[int, float], digits: int) -> str:
    if not values:
        return "–"
    mean, std, n = verdicts.summarize(list(values.values()))
    return f"{render.fmt(mean, digits)} ± {render.fmt(std, digits)} (n={n})"


def compare(spec: dict, variants: list[str]) -> tuple[str, int]:
    """Markdown: paper | reference | this machine | both verdicts, per reported number of the
    chosen variants, then each claim's verdict both ways; and how many differ (a number beyond
    the seed spread, a claim judged otherwise)."""
    refused: list[str] = []  # committed files unreadable or breaking their seal (repro/manifest.py)
    reference = report.group_by_variant(spec, load_results(report.ROOT / "results", spec["experiment"],
                                                           skipped=refused))
    local = report.group_by_variant(spec, load_results(LOCAL / "results", spec["experiment"]))
    rows, differing = [], 0
    for item in spec["reported"]:
        if item["variant"] not in variants:
            continue
        ref = verdicts.values_by_seed(reference[item["variant"]], item)
        loc = verdicts.values_by_seed(local[item["variant"]], item)
        digits = item.get("digits", 4)
        if ref:
            judged = {**item, **verdicts.judge(item, list(ref.values()),
                                               verdicts.smallest_gap(item, spec["reported"]))}
            vs_paper = (f"{'within' if judged['within'] else '**outside**'} "
                        f"{render.tolerance_text(item, judged['tolerance'])}")
            if judged["discriminates"] is False:
                vs_paper += f"; does not discriminate (the paper's smallest gap {render.gap_text(judged)})"
        else:
            vs_paper = "not run"
        text, differs = verdicts.versus_reference(ref, loc)
        differing += differs
        rows.append([item["description"], item["value"], _stats(ref, digits), _stats(loc, digits),
                     vs_paper, text])
    lines = [f"## {spec['title']}", "", render.table(
        ["reported number", "paper", "reference (committed)", "this machine", "reference vs paper",
         "this machine vs reference"], rows)]
    claims = [c for c in spec.get("claim_tests", []) if c["a"] in variants]
    if claims:
        rows = []
        for claim in claims:
            ref, loc = verdicts.check_claim(claim, reference), verdicts.check_claim(claim, local)
            # A claim this machine judges otherwise than the reference counts as a difference.
            judged = [row["verdict"].split()[0] for row in (ref, loc) if row["n"]]
            differing += len(judged) == 2 and judged[0] != judged[1]
            rows.append([claim["description"], _claim_text(ref), _claim_text(loc)])
        lines += ["", render.table(["claim", "reference (committed)", "this machine"], rows)]
    finals, finals_differing = _final_metrics(variants, reference, local)
    lines += finals
    differing += finals_differing
    if refused:  # a committed number that changed unnoticed must not pass a check
        lines += ["", f"**{len(refused)} committed result file(s) refused:**", "",
                  *[f"- {message}" for message in refused]]
        differing += len(refused)
    runs = [r for v in variants for r in reference[v]]
    if runs:
        lines += ["", "Reference: " + render.provenance_line({"all": runs})]
    runs = [r for v in variants for r in local[v]]
    if runs:
        lines += ["This machine: " + render.provenance_line({"all": runs})]
    return "\n".join(lines) + "\n", differing


def _final_metrics(variants: list[str], reference: dict, local: dict) -> tuple[list[str], int]:
    """Every final number of each variant this machine ran, seed for seed against the reference:
    a count of the bitwise-equal ones, a row for each other, and why they are not bitwise equal
    (what differs in how the two were made); how many differ beyond the seed spread."""
    lines, differing = [], 0
    for variant in variants:
        if not (local[variant] and reference[variant]):
            continue
        rows = verdicts.final_metrics_versus_reference(reference[variant], local[variant])
        unequal = [r for r in rows if r[1] != "bitwise equal"]
        differing += sum(r[2] for r in rows)
        seeds = sorted(r["seed"] for r in local[variant])
        lines += ["", f"**{variant}**, every final metric of seeds {seeds}: "
                      f"{len(rows) - len(unequal)} of {len(rows)} bitwise equal to the reference."]
        if not unequal:
            continue
        unequal.sort(key=lambda r: not r[2])  # beyond the spread first
        lines += ["", render.table(["metric", "this machine vs reference"], [list(r[:2]) for r in unequal])]
        by_seed = {r["seed"]: r for r in reference[variant]}
        why = sorted({d for r in local[variant] if r["seed"] in by_seed
                      for d in provenance.differences(by_seed[r["seed"]], r)})
        lines += ["", "Not bitwise equal: " + ("; ".join(why) if why else
                  "same commit, seeds trained together, versions, hardware and flags: the "
                  "computation is not deterministic here, which the suite promises it is (report it)")
                  + "."]
    return lines, differing


def _claim_text(row: dict) -> str:
    if not row["n"]:
        return row["verdict"]
    interval = "" if row["low"] is None else f" [{row['low']:.4g}, {row['high']:.4g}]"
    return f"{row['verdict']}: {row['mean']:.4g}{interval} (n={row['n']})"


def promote(spec: dict) -> None:
    """Copy this machine's result files of a paper into the committed results/, never over one."""
    source = LOCAL / "results" / spec["experiment"]
    target = report.ROOT / "results" / spec["experiment"]
    files = sorted(source.glob("*.json"))
    if not files:
        raise SystemExit(f"error: no local results in {source}: run python -m repro.reproduce "
                         f"{spec['experiment']} first")
    # A file promoted before, byte for byte, is already the reference: skipped, not a clash.
    files = [f for f in files if not ((target / f.name).exists()
                                      and (target / f.name).read_bytes() == f.read_bytes())]
    if not files:
        raise SystemExit(f"error: every local result of {spec['experiment']} is already in results/ "
                         "as it is: nothing new to promote")
    clashes = [f.name for f in files if (target / f.name).exists()]
    if clashes:
        raise SystemExit(f"error: results/{spec['experiment']}/ already holds {clashes}, with other "
                         "contents: remove them first if these runs should replace them (git keeps the "
                         "old ones)")
    problems = promotion_problems(files, target)
    if problems:
        raise SystemExit("error: nothing was promoted:\n  " + "\n  ".join(problems))
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
        _copy_atomically(f, target / f.name)  # the file as written: config, provenance, timing
        if weights_path(f).exists():  # git-ignored, but kept for recompute on this machine
            _copy_atomically(weights_path(f), weights_path(target / f.name))
    manifest.seal(target, [f.name for f in files])
    print(f"copied {len(files)} result file(s) to {target} and sealed them in {manifest.NAME}; "
          "run `make report` and commit them")


def promotion_problems(files: list[Path], target: Path) -> list[str]:
    """Why these result files may not become the reference: unreadable, made from code with
    uncommitted changes, or seeds of one config from different commits (with each other or
    with that config's seeds already committed)."""
    problems, commits = [], {}
    for f in files:
        try:
            result = read_result(f)
        except BadResultFile as err:
            problems.append(str(err))
            continue
        origin = result.get("provenance") or {}
        if origin.get("dirty") or not origin.get("commit"):
            problems.append(f"{f.name} was run from code with uncommitted changes (or no commit): "
                            f"{origin.get('dirty_files') or 'commit unknown'}; commit, then rerun it")
        commits.setdefault(result["config_hash"], {})[f.name] = origin.get("commit")
    committed = load_results(target.parent, target.name) if target.exists() else []
    for r in committed:
        if r["config_hash"] in commits:
            commits[r["config_hash"]][Path(r["_path"]).name] = (r.get("provenance") or {}).get("commit")
    for config, by_file in commits.items():
        if len(set(by_file.values())) > 1:
            named = ", ".join(f"{n}: {str(c)[:10]}" for n, c in sorted(by_file.items()))
            problems.append(f"the seeds of config {config} come from different commits ({named}): "
                            "rerun them at one commit")
    return problems


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy under a temporary name and rename into place: a full disk leaves no truncated file
    under the final name (and so nothing that blocks the next promote)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    if argv[:1] in (["promote"], ["seal"]):
        if len(argv) != 2:
            raise SystemExit(f"usage: python -m repro.reproduce {argv[0]} <paper> (make papers lists them)")
        spec = find_spec(argv[1])
        if argv[0] == "promote":
            promote(spec)
        else:  # a deliberate, committed change to a committed result file
            folder = report.ROOT / "results" / spec["experiment"]
            sums = manifest.seal(folder)
            print(f"sealed {len(sums)} result file(s) in {folder / manifest.NAME}: commit it with the change")
        return 0
    parser = argparse.ArgumentParser(prog="python -m repro.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("paper", help="experiment name or its folder under experiments/ (e.g. bn_mnist)")
    parser.add_argument("--only", help="variants to run, comma-separated, wildcards allowed (e.g. '*_h100')")
    parser.add_argument("--seeds", help="seeds to run instead of the spec's, e.g. 0,1")
    parser.add_argument("--no-train", action="store_true", help="compare the runs already here")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a number differs from the reference beyond the seed spread")
    args = parser.parse_args(argv)
    spec = find_spec(args.paper)
    variants = selected(spec, args.only)
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise SystemExit(f"error: --seeds {args.seeds!r}: whole numbers separated by commas, "
                         "e.g. 0,1") from None
    try:
        check_writable(LOCAL, "this machine's runs and comparison",
                       "set REPRO_LOCAL=<a writable folder> (make repro-<paper> passes it on)")
    except OSError as err:
        raise SystemExit(f"error: {err}") from None
    if not args.no_train:
        t0 = time.perf_counter()
        train(spec, variants, seeds, extra)
        print(f"[reproduce] trained in {time.perf_counter() - t0:.0f} s", flush=True)
    table, differing = compare(spec, variants)
    LOCAL.mkdir(exist_ok=True)
    (LOCAL / f"{spec['experiment']}.md").write_text(table)
    print(table + f"\n(written to {LOCAL / (spec['experiment'] + '.md')})")
    ran_here = load_results(LOCAL / "results", spec["experiment"])
    groups = report.group_by_variant(spec, ran_here)
    if args.check and not any(groups[v] for v in variants):
        print(f"error: nothing to compare: this machine has no runs of {spec['experiment']} in "
              f"{LOCAL / 'results'}; run make repro-{spec['experiment'].replace('_', '-')} first",
              file=sys.stderr)
        return 1
    if args.check and differing:
        print(f"error: {differing} number(s) differ from the reference beyond the seed spread",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
