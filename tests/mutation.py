"""`make mutation`: plant plausible one-line bugs in the core modules and check that their tests
fail (cosmic-ray), module by module as tests/mutation.toml maps them.

Each module is mutated in its own clone of the committed HEAD (local/mutation/<module>.clone; the
working tree is never touched), with only the tests that cover it, so a run can be resumed: the
sessions (local/mutation/<module>.sqlite) keep every verdict. Mutants listed as equivalent in the config are
marked skipped with their reason before the run. The summary (killed / survived / equivalent per
module, of every module with a session, whether run now or before) and every survivor's diff go to
local/mutation/report.md.

    make mutation                          # every module of the config
    make mutation MUTATION_ARGS='verdicts' # the modules whose path contains 'verdicts'
    make mutation MUTATION_ARGS='attacks --retry-survivors'  # after adding tests: survivors again
    make mutation MUTATION_ARGS='verdicts --fresh'  # the module changed: its session starts over
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "mutation.toml"
WORK = ROOT / "local" / "mutation"
BIN = Path(sys.executable).parent


def _head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def _clone(into: Path) -> Path:
    """A clone of the committed HEAD (mutants never touch the working tree); reused on resume,
    with any mutant a killed run left in it undone first."""
    if not (into / ".git").exists():
        subprocess.run(["git", "clone", "-q", str(ROOT), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "-q", "--", "."], check=True)
    if _head(into) != _head(ROOT):
        print(f"note: resuming the sessions of commit {_head(into)[:7]}; HEAD is {_head(ROOT)[:7]} "
              "(--fresh starts over from HEAD)", flush=True)
    return into


def _retry_survivors(session: Path, module: dict, clone: Path) -> int:
    """After tests were added: the clone moved to HEAD and the module's survivors pending again
    (their old verdicts were against the old tests); how many. Refused if the module itself
    changed since the session began, which moves its mutants (start over with --fresh)."""
    import sqlite3

    old = _head(clone)
    subprocess.run(["git", "-C", str(clone), "fetch", "-q", str(ROOT), "HEAD"], check=True)
    changed = subprocess.run(["git", "-C", str(clone), "diff", "--quiet", old, "FETCH_HEAD", "--",
                              module["path"]]).returncode
    if changed:
        raise SystemExit(f"error: {module['path']} changed since its session began at {old[:7]}: its "
                         "mutants moved; start it over (delete its .sqlite, or --fresh)")
    subprocess.run(["git", "-C", str(clone), "reset", "-q", "--hard", "FETCH_HEAD"], check=True)
    with sqlite3.connect(session) as db:
        return db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount


def _test_command(module: dict) -> list[str]:
    """The command that judges every mutant of `module`, and its clone's unmutated baseline."""
    return [sys.executable, "-m", "pytest", "-x", "-q", "-rs", "-p", "no:cacheprovider", *module["tests"]]


def _session_config(module: dict, common: dict) -> str:
    quoted = ", ".join(f'"{p}"' for p in common.get("exclude-operators", []))
    return (f'[cosmic-ray]\nmodule-path = "{module["path"]}"\ntimeout = {module.get("timeout", 300.0)}\n'
            f'excluded-modules = []\n'
            f'test-command = "{" ".join(_test_command(module))}"\n\n'
            f'[cosmic-ray.distributor]\nname = "local"\n\n'
            f'[cosmic-ray.filters.operators-filter]\nexclude-operators = [{quoted}]\n')


def _mutant_environment(env) -> dict:
    """The environment every mutant's tests run in. JAX's persistent compilation cache is one
    folder shared by all mutants (tests/conftest.py caches every program in it): a mutant changes
    one function, so everything else it compiles is read back, not compiled again (the loop's
    tests: ~20 s instead of ~100 s). The data is this checkout's (../shared/data unless
    REPRO_DATA_DIR says otherwise): the tests' own default, beside the clone, is not there."""
    data = env.get("REPRO_DATA_DIR") or str(ROOT.parent / "shared" / "data")
    return {**env, "REPRO_DATA_DIR": data, "JAX_COMPILATION_CACHE_DIR": str(WORK / "jax-cache")}


def _check_baseline(module: dict, clone: Path) -> None:
    """The module's tests must pass on the clone before any mutant: a test that is missing there
    (added after the session began) or failing would count every mutant as killed."""
    done = subprocess.run(_test_command(module), cwd=clone, env=_mutant_environment(os.environ),
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: the tests of {module['path']} do not pass unmutated in its clone at "
                         f"{_head(clone)[:7]} (a test added since? start over with --fresh):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-1000:]}")
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    if skipped:  # a skipped test catches nothing: its mutants would be counted as survivors
        raise SystemExit(f"error: tests of {module['path']} are skipped in its clone (set REPRO_DATA_DIR "
                         "to the data they need):\n" + "\n".join(skipped))


def _mark_equivalent(session: Path, module: dict, clone: Path) -> int:
    """Mark the config's equivalent mutants as skipped, their reason as the output; how many were
    marked. An entry names the operator, a piece of the source line it mutates and, where one line
    has several mutants of that operator, which one (`nth`, from 0, in the line's order). Marks made
    before are dropped first: a mutant whose entry was corrected or removed runs again."""
    import sqlite3

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    with sqlite3.connect(session) as raw:
        raw.execute("DELETE FROM work_results WHERE worker_outcome = 'SKIPPED' "
                    "AND output LIKE 'equivalent:%'")
    lines = (clone / module["path"]).read_text().splitlines()
    marked = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        # A survivor later judged equivalent counts as equivalent; a verdict of killed stays.
        done = {job_id for job_id, result in db.results if result.test_outcome != TestOutcome.SURVIVED}
        items = sorted(db.work_items, key=lambda item: item.mutations[0].occurrence)
        for eq in module.get("equivalent", []):
            hits = [item for item in items
                    if item.mutations[0].operator_name.endswith(eq["operator"])
                    and eq["line"] in lines[item.mutations[0].start_pos[0] - 1]]
            if not hits:
                raise SystemExit(f"error: the equivalent mutant {eq} of {CONFIG.name} matches nothing in "
                                 f"{module['path']}: the line changed; update or drop the entry")
            for item in hits if "nth" not in eq else hits[eq["nth"]:eq["nth"] + 1]:
                if item.job_id not in done:
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                          output=f"equivalent: {eq['why']}"))
                    marked += 1
    return marked


def _summary(session: Path) -> tuple[dict, list[str]]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "equivalent": 0, "filtered": 0, "incompetent": 0, "pending": 0}
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        results = dict(db.results)
        for item in db.work_items:
            result = results.get(item.job_id)
            if result is None:
                counts["pending"] += 1
            elif result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["equivalent" if (result.output or "").startswith("equivalent") else "filtered"] += 1
            elif result.test_outcome == TestOutcome.KILLED:
                counts["killed"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                spec = item.mutations[0]
                survivors.append(f"{spec.module_path}:{spec.start_pos[0]} {spec.operator_name} "
                                 f"#{spec.occurrence}\n```diff\n{result.diff}\n```")
            else:
                counts["incompetent"] += 1
    return counts, survivors


def _name(module: dict) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", module["path"].removesuffix(".py"))


@contextlib.contextmanager
def _module_lock(name: str):
    """One run per module at a time: two would apply their mutants to the same clone, each judging
    the other's. Yields the lock's file descriptor, which cosmic-ray inherits, so that the lock
    holds as long as a mutant may still be running, even if this process was stopped alone."""
    with open(WORK / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"error: another `make mutation` is running {name} (local/mutation/{name}.lock "
                             "is held): wait for it, or stop it and its cosmic-ray exec") from None
        os.set_inheritable(handle.fileno(), True)
        yield handle.fileno()


def run_module(module: dict, common: dict, execute: bool = True,
               retry: bool = False) -> tuple[dict, list[str]]:
    with _module_lock(_name(module)) as lock:
        return _run_module(module, common, execute, retry, lock)


def _run_module(module: dict, common: dict, execute: bool, retry: bool, lock: int) -> tuple[dict, list[str]]:
    name = _name(module)
    clone = _clone(WORK / f"{name}.clone")  # its own: moving it to HEAD leaves the others' sessions be
    config = WORK / f"{name}.toml"
    session = WORK / f"{name}.sqlite"
    config.write_text(_session_config(module, common))
    if not session.exists():
        subprocess.run([BIN / "cosmic-ray", "init", str(config), str(session)], cwd=clone, check=True)
        subprocess.run([BIN / "cr-filter-operators", str(session), str(config)], cwd=clone, check=True)
    if retry and session.exists():
        print(f"{module['path']}: {_retry_survivors(session, module, clone)} survivor(s) to run again "
              f"against the tests of {_head(clone)[:7]}", flush=True)
    marked = _mark_equivalent(session, module, clone)
    print(f"{module['path']}: {marked} equivalent mutant(s) marked from the config", flush=True)
    if execute and _summary(session)[0]["pending"]:
        _check_baseline(module, clone)
        subprocess.run([BIN / "cosmic-ray", "exec", str(config), str(session)], cwd=clone, check=True,
                       env=_mutant_environment(os.environ), pass_fds=(lock,))
    return _summary(session)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="run only modules whose path contains one of these")
    parser.add_argument("--report-only", action="store_true", help="summarize the sessions, run nothing")
    parser.add_argument("--fresh", action="store_true",
                        help="start the chosen modules over from the committed HEAD (the others keep theirs)")
    parser.add_argument("--retry-survivors", action="store_true",
                        help="run the survivors again against HEAD's tests (after adding tests)")
    args = parser.parse_args(argv)
    if shutil.which("cosmic-ray", path=str(BIN)) is None:
        raise SystemExit(f"error: cosmic-ray is not installed in {BIN}: run `make mutation` (it installs "
                         "the pinned version) or pip install cosmic-ray")
    common = tomllib.loads(CONFIG.read_text())
    modules = [m for m in common["module"] if not args.modules or any(s in m["path"] for s in args.modules)]
    if not modules:
        raise SystemExit(f"error: no module of {CONFIG.name} matches {args.modules}")
    WORK.mkdir(parents=True, exist_ok=True)
    for module in modules if args.fresh else []:
        shutil.rmtree(WORK / f"{_name(module)}.clone", ignore_errors=True)
        (WORK / f"{_name(module)}.sqlite").unlink(missing_ok=True)
    lines = ["# Mutation testing", "", "| module | killed | survived | equivalent | incompetent | pending | "
             "killed of the non-equivalent |", "|---|---|---|---|---|---|---|"]
    details = []
    for module in common["module"]:  # the report covers every module with a session, run now or before
        session = WORK / f"{_name(module)}.sqlite"
        if module in modules and not (args.report_only and not session.exists()):  # a report starts none
            counts, survivors = run_module(module, common, execute=not args.report_only,
                                           retry=args.retry_survivors)
        elif session.exists():
            counts, survivors = _summary(session)
        else:
            continue
        judged = counts["killed"] + counts["survived"]
        rate = f"{counts['killed'] / judged:.0%}" if judged else "–"
        cells = [counts[k] for k in ("killed", "survived", "equivalent", "incompetent", "pending")]
        lines.append(f"| {module['path']} | {' | '.join(map(str, cells))} | {rate} |")
        details += [f"## Survivors in {module['path']}", "", *survivors, ""] if survivors else []
    report = "\n".join(lines + ["", *details])
    (WORK / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
