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


def test_a_dropped_row_comes_back_as_it_last_stood_and_a_reworded_one_does_not(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    spec_path = tmp_path / "experiments" / "p" / "spec.yaml"
    early = {**ROW, "description": "accuracy at 3.5k", "step": 3500}
    first = _commit(tmp_path, {"reported": [ROW, early]}, "two rows")
    widened = {**early, "floor": 0.2}
    second = _commit(tmp_path, {"reported": [ROW, widened]}, "early row widened")
    # The early row is replaced (after a miss) by a steps-to row; the first is only reworded.
    successor = {**ROW, "description": "steps to 0.9", "steps_to": 0.9, "value": 5000}
    third = _commit(tmp_path, {"reported": [{**ROW, "description": "test accuracy"}, successor]},
                    "replace the early row; reword the other")
    registration.spec_history.cache_clear()
    current = [{**ROW, "description": "test accuracy"}, successor]
    (old,) = registration.retired(tmp_path, spec_path, "reported", current)
    assert old["description"] == "accuracy at 3.5k" and old["floor"] == 0.2  # as it last stood
    assert old["retired_in"] == third and old["registered_commit"] == second
    assert first != second
    # Dropped in the working tree only: retired_in None; nothing dropped: nothing retired.
    newest, older = registration.retired(tmp_path, spec_path, "reported", current[:1])
    assert newest["description"] == "steps to 0.9" and newest["retired_in"] is None
    assert older["description"] == "accuracy at 3.5k"
    assert registration.retired(tmp_path, spec_path, "reported", current + [widened]) == []


def test_the_report_shows_a_replaced_row_beside_its_successor_judged_but_not_counted(tmp_path, monkeypatch):
    from repro import report

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    early = {**ROW, "description": "accuracy at 3.5k", "step": 3500, "value": 0.71, "floor": 0.05}
    first = _commit(tmp_path, {"reported": [ROW, early]}, "spec, then the runs")
    later = {**ROW, "description": "accuracy at the end"}  # reworded only: the same row
    successor = {**ROW, "description": "steps to 0.8", "steps_to": 0.8, "value": 3000, "floor": 0.3,
                 "scale": "log"}
    current = [later, successor]
    replaced = _commit(tmp_path, {"reported": current}, "the early row missed: steps to 0.8 instead")
    registration.spec_history.cache_clear()
    monkeypatch.setattr(report, "ROOT", tmp_path)
    history = [{"step": 3500, "test/accuracy": 0.87}, {"step": 9000, "test/accuracy": 0.93}]
    runs = [{**run, "history": history} for run in _runs(first)]
    spec = {"reported": current, "_dir": tmp_path / "experiments" / "p"}
    rows = report.compare(spec, {"a": runs})
    assert [r["description"] for r in rows] == ["accuracy at the end", "steps to 0.8", "accuracy at 3.5k"]
    old = rows[2]
    assert old["status"] == f"retired in {replaced[:7]}; run (3 seeds)" and old["within"] is False
    assert old["registration"] == registration.BEFORE and old["registered_commit"] == first
    assert rows[1]["registration"] == registration.AFTER  # the successor was set after the runs
    assert rows[0]["registration"] == registration.BEFORE  # reworded only: registered as first written
    assert report.summary_line(rows) == (
        "2 reported numbers: 2 run with all seeds, 0 partly run, 0 not run; 2 of the 2 run within "
        "tolerance; 1 with a tolerance or expectation set after their results; 1 retired row(s) shown "
        "beside their successors (0 of the 1 run within).")
