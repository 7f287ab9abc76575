"""Pre-registration the suite can prove: was a row's paper value, tolerance and expectation
committed before the runs it judges?

For each reported row and claim of a spec, the git history of its spec.yaml (renames followed)
gives the commit that last changed what judges it (`JUDGING`: the value, floor and expectation,
and what is measured); the row is **registered before** its results when that commit is an
ancestor of (or is) every commit its runs were made from, **set after** them otherwise. A row
whose judging fields are not committed yet, or whose runs name commits this repository lacks,
is **unknown**. Rows are matched across the history by their description.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import yaml

# The keys that decide a row's verdict: changing one after seeing the results is what
# pre-registration rules out. (Digits, units and wording are presentation.)
JUDGING = {
    "reported": ("variant", "metric", "step", "value", "floor", "paper_se", "paper_runs", "read_error",
                 "scale", "over_training", "steps_to"),
    "claim_tests": ("a", "b", "c", "d", "metric", "step", "step_b", "metric_b", "steps_to", "expect", "than"),
}
BEFORE, AFTER, UNKNOWN = "registered before", "set after the results", "unknown"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)


@functools.lru_cache(maxsize=64)
def spec_history(root: Path, relative: str) -> tuple[tuple[str, dict], ...]:
    """(commit, parsed spec) for every commit that changed the spec, newest first (renames
    followed); empty without git history."""
    log = _git(root, "log", "--follow", "--name-only", "--format=%H", "--", relative)
    if log.returncode != 0:
        return ()
    entries, commit = [], None
    for line in log.stdout.splitlines():
        if not line.strip():
            continue
        if commit is None:
            commit = line.strip()
            continue
        shown = _git(root, "show", f"{commit}:{line.strip()}")
        try:
            spec = yaml.safe_load(shown.stdout) if shown.returncode == 0 else None
        except yaml.YAMLError:
            spec = None
        entries.append((commit, spec if isinstance(spec, dict) else {}))
        commit = None
    return tuple(entries)


def history_available(root: Path) -> bool:
    """Whether this checkout has the git history the marks need (not a shallow clone)."""
    done = _git(root, "rev-parse", "--is-shallow-repository")
    return done.returncode == 0 and done.stdout.strip() == "false"


def _judging(kind: str, row: dict | None):
    return None if row is None else tuple(row.get(k) for k in JUDGING[kind])


def registered_at(history, kind: str, row: dict) -> str | None:
    """The commit from which the row's judging fields are as they are now (None: not committed)."""
    wanted, found = _judging(kind, row), None
    for commit, spec in history:  # newest first: walk back while the row stays the same
        rows = [r for r in spec.get(kind) or [] if isinstance(r, dict)]
        named = [r for r in rows if r.get("description") == row["description"]]
        # the row by its description, or reworded: a row with the same judging fields
        same = _judging(kind, named[0]) == wanted if named else any(_judging(kind, r) == wanted for r in rows)
        if not same:
            break
        found = commit
    return found


@functools.lru_cache(maxsize=4096)
def _is_ancestor(root: Path, ancestor: str, commit: str) -> bool | None:
    done = _git(root, "merge-base", "--is-ancestor", ancestor, commit)
    return {0: True, 1: False}.get(done.returncode)  # other codes: a commit this repo lacks


def mark(root: Path, spec_path: Path, kind: str, row: dict, runs: list[dict],
         registered: str | None | bool = False) -> dict:
    """{"registration": BEFORE | AFTER | UNKNOWN, "registered_commit": ...} for a row judged by
    `runs` (the result dicts of its variant(s)); {} when nothing has run. `registered`: the commit
    from which the row stood as it is (found in the spec's history when not given)."""
    if not runs:
        return {}
    commits = sorted({(r.get("provenance") or {}).get("commit") for r in runs} - {None})
    if registered is False:
        relative = _relative(root, spec_path)
        if relative is None:  # a spec outside this repository has no history here
            return {"registration": UNKNOWN, "registered_commit": None}
        registered = registered_at(spec_history(root.resolve(), relative), kind, row)
    if registered is None or not commits:
        return {"registration": UNKNOWN, "registered_commit": registered}
    before = [_is_ancestor(root.resolve(), registered, c) for c in commits]
    status = UNKNOWN if None in before else BEFORE if all(before) else AFTER
    return {"registration": status, "registered_commit": registered}


def _relative(root: Path, spec_path: Path) -> str | None:
    try:
        return spec_path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def retired(root: Path, spec_path: Path, kind: str, current: list[dict]) -> list[dict]:
    """The rows the spec's history had and its current rows lack: neither a current row's
    description nor its judging fields (a reworded row is the same row). Each as it last stood,
    with `retired_in` (the commit that dropped it; None: dropped in the working tree) and
    `registered_commit` (from which it stood so), newest first."""
    relative = _relative(root, spec_path)
    history = spec_history(root.resolve(), relative) if relative else ()
    names = {r.get("description") for r in current}
    judged = {_judging(kind, r) for r in current}
    found: dict[str, dict] = {}
    for index, (_, spec) in enumerate(history):
        for row in spec.get(kind) or []:
            if (not isinstance(row, dict) or not row.get("description")
                    or row["description"] in names | set(found)
                    or _judging(kind, row) in judged):
                continue
            found[row["description"]] = {
                **row, "retired_in": history[index - 1][0] if index else None,
                "registered_commit": registered_at(history[index:], kind, row)}
    return list(found.values())


def variants_of(kind: str, row: dict) -> list[str]:
    """The variants whose runs a row judges."""
    if kind == "reported":
        return [row["variant"]]
    return [row[side] for side in ("a", "b", "c", "d") if row.get(side)]


def counted(rows: list[dict]) -> str:
    """'; N set after their results' for a summary line (empty when none)."""
    after = sum(r.get("registration") == AFTER for r in rows)
    return f"; {after} with a tolerance or expectation set after their results" if after else ""
