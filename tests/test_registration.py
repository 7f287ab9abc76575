"""Pre-registration marks (repro/registration.py) on a small synthetic repository history: a row
is registered before its runs when the commit that last changed its judging fields is an
ancestor of every run's commit."""

from __future__ import annotations

import subprocess

import yaml

from repro import registration

ROW = {"description": "accuracy", "variant": "a", "metric": "test/accuracy", "value": 0.9, "floor": 0.1,
       "source": "Table 1", "digits": 3}
CLAIM = {"description": "a beats b", "a": "a", "b": "b", "metric": "test/accuracy", "expect": "higher",
         "source": "Table 1"}


def _commit(repo, spec: dict, message: str) -> str:
    path = repo / "experiments" / "p" / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", message], check=True)
    done = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _runs(commit):
    return [{"seed": s, "provenance": {"commit": commit}} for s in range(3)]


def test_rows_are_marked_by_when_their_judging_fields_were_committed(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    spec_path = tmp_path / "experiments" / "p" / "spec.yaml"
    first = _commit(tmp_path, {"reported": [ROW], "claim_tests": [CLAIM]}, "spec, then the runs")
    runs = _runs(first)  # the runs were made from the first commit

    def mark(kind, row, runs=runs):
        registration.spec_history.cache_clear()
        return registration.mark(tmp_path, spec_path, kind, row, runs)

    assert mark("reported", ROW) == {"registration": registration.BEFORE, "registered_commit": first}
    # A presentation change (digits) keeps the registration; a wider floor after the runs does not.
    _commit(tmp_path, {"reported": [{**ROW, "digits": 4}], "claim_tests": [CLAIM]}, "digits")
    assert mark("reported", {**ROW, "digits": 4})["registered_commit"] == first
    widened = {**ROW, "digits": 4, "floor": 0.3}
    second = _commit(tmp_path, {"reported": [widened], "claim_tests": [CLAIM]}, "floor after the runs")
    assert mark("reported", widened) == {"registration": registration.AFTER, "registered_commit": second}
    assert mark("claim_tests", CLAIM)["registration"] == registration.BEFORE
    # Runs made after the change: registered before them again.
    assert mark("reported", widened, _runs(second))["registration"] == registration.BEFORE
    # A run from a commit this repository lacks, or a row changed but not committed: unknown.
    assert mark("reported", widened, _runs("f" * 40))["registration"] == registration.UNKNOWN
    assert mark("reported", {**widened, "floor": 0.5}) == {"registration": registration.UNKNOWN,
                                                          "registered_commit": None}
    assert mark("reported", widened, []) == {}  # nothing ran: nothing to mark
    assert registration.counted([{"registration": registration.AFTER}, {"registration": "x"}]) == (
        "; 1 with a tolerance or expectation set after their results")
