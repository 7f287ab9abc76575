"""The reproduce command: trains a spec's missing runs into the local area (never results/),
then gives each reported number its two verdicts; --check fails only beyond the seed spread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from repro import report, reproduce
from repro.verdicts import versus_reference


def as_if_committed(folder: Path, commit: str = "c0ffee") -> None:
    """Result files marked as run from a clean checkout at `commit` (promote requires it)."""
    for path in folder.glob("*.json"):
        result = json.loads(path.read_text())
        result["provenance"].update(dirty=False, dirty_files=[], commit=commit)
        path.write_text(json.dumps(result))


def wait_for_words(path: Path, parent, words: int = 1) -> None:
    """Until a child has written `words` words to `path`, while `parent` still runs (60 s at most)."""
    import time

    deadline = time.monotonic() + 60
    while not (path.exists() and len(path.read_text().split()) >= words):
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)


@pytest.mark.parametrize("reference, local, expected, differs", [
    ({0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.8}, "bitwise equal", False),
    ({0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.86, 1: 0.84}, "within seed spread", False),
    ({0: 0.90, 1: 0.91, 2: 0.92}, {0: 0.70, 1: 0.71}, "**differs** by up to 0.2 (means -0.205", True),
    ({0: 0.9}, {0: 0.8}, "no spread to judge by", False),
    ({}, {0: 0.8}, "no reference", False),
    ({0: 0.9}, {}, "not run here", False),
])
def test_verdicts(reference, local, expected, differs):
    text, beyond = versus_reference(reference, local)
    assert text.startswith(expected) and beyond is differs


def test_reproduce_trains_missing_runs_into_the_local_area_and_checks_them(
        tmp_path, tiny_data_dir, monkeypatch, capsys):
    base = [f"data.dir={tiny_data_dir}", "data.allow_partial=true", "train.steps=20",
            "train.chunk_steps=10", "train.eval_every=10", "model.hidden=[16]", "progress=false"]
    spec = {"title": "Tiny paper", "paper": "Nobody 2026", "command": "-",
            "vmap_seeds": True,
            "variants": {"fast": [*base, "optim.lr=0.5"], "slow": [*base, "optim.lr=0.05"]},
            "reported": [{"description": "accuracy", "variant": "fast", "metric": "test/accuracy",
                          "value": 0.5, "floor": 0.5, "source": "Table 1", "seeds_wanted": 2},
                         {"description": "slow accuracy", "variant": "slow", "metric": "test/accuracy",
                          "value": 0.5, "floor": 0.5, "source": "Table 1"}]}
    (tmp_path / "experiments" / "debug").mkdir(parents=True)
    (tmp_path / "experiments" / "debug" / "spec.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "LOCAL", tmp_path / "local")
    real_load_specs = report.load_specs
    monkeypatch.setattr(report, "load_specs", lambda **k: real_load_specs(tmp_path / "experiments", **k))

    assert reproduce.main(["debug", "--only", "fast", "--check"]) == 0
    local = sorted(p.name for p in (tmp_path / "local" / "results" / "debug").glob("*.json"))
    assert len(local) == 2 and all(n.endswith(("seed0.json", "seed1.json")) for n in local)
    assert not (tmp_path / "results").exists()  # never into the committed results
    out = capsys.readouterr().out
    assert "| accuracy | 0.5 | – |" in out and "no reference" in out and "slow accuracy" not in out

    # Promoted, the runs become the reference; a rerun trains nothing and is bitwise equal.
    as_if_committed(tmp_path / "local" / "results" / "debug")  # the tests run from a dirty tree
    assert reproduce.main(["promote", "debug"]) == 0
    assert sorted(p.name for p in (tmp_path / "results" / "debug").glob("*.json")) == local
    assert len(list((tmp_path / "results" / "debug").glob("*.weights.npz"))) == 2
    with pytest.raises(SystemExit, match="already in results/ as it is: nothing new to promote"):
        reproduce.main(["promote", "debug"])  # promoted before, byte for byte: nothing to do
    edited = sorted((tmp_path / "local" / "results" / "debug").glob("*.json"))[0]
    edited.write_text(edited.read_text().replace('"seed"', '"seed" ', 1))
    with pytest.raises(SystemExit, match="already holds .* with other contents"):
        reproduce.main(["promote", "debug"])  # a file of the same name that differs: never overwritten
    edited.write_text(edited.read_text().replace('"seed" ', '"seed"', 1))
    assert reproduce.main(["debug", "--only", "fast", "--check"]) == 0
    assert "bitwise equal" in capsys.readouterr().out

    # A reference that differs beyond the seed spread fails --check.
    for path in (tmp_path / "results" / "debug").glob("*.json"):
        result = json.loads(path.read_text())
        for record in result["history"]:
            if "test/accuracy" in record:
                record["test/accuracy"] += 0.3 + 0.01 * result["seed"]
        path.write_text(json.dumps(result))
    # Edited by hand, the committed files break their seal: refused, and the check fails.
    assert reproduce.main(["debug", "--only", "fast", "--no-train", "--check"]) == 1
    out = capsys.readouterr().out
    assert "2 committed result file(s) refused" in out and "does not match its SHA-256" in out
    assert reproduce.main(["seal", "debug"]) == 0  # a deliberate change, re-sealed
    assert reproduce.main(["debug", "--only", "fast", "--no-train", "--check"]) == 1
    assert "**differs**" in capsys.readouterr().out


def test_verify_with_no_runs_here_fails_saying_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "LOCAL", tmp_path / "local")
    assert reproduce.main(["bn_mnist", "--no-train", "--check"]) == 1
    assert "nothing to compare: this machine has no runs of bn_mnist" in capsys.readouterr().err
    assert reproduce.main(["bn_mnist", "--no-train"]) == 0  # without --check: the table alone


@pytest.mark.parametrize("argv, message", [
    (["promote"], "usage: python -m repro.reproduce promote <paper>"),
    (["seal", "bn_mnist", "resnet_cifar10"], "usage: python -m repro.reproduce seal <paper>"),
    (["bn_mnist", "--no-train", "--seeds", "a"], "--seeds 'a': whole numbers separated by commas"),
])
def test_cli_mistakes_get_a_message_not_a_traceback(argv, message):
    with pytest.raises(SystemExit, match=message):
        reproduce.main(argv)


def test_unknown_paper_and_variant_say_what_exists():
    with pytest.raises(SystemExit, match="no paper 'nosuch'; known: .*bn_mnist"):
        reproduce.find_spec("nosuch")
    with pytest.raises(SystemExit, match="matches no variant of bn_mnist; variants: with_bn, without_bn"):
        reproduce.selected(reproduce.find_spec("bn-mnist"), "nothing*")


def test_on_demand_variants_run_only_when_named():
    spec = {"variants": {"short": [], "full": []}, "on_demand": ["full"]}
    assert reproduce.selected(spec, None) == ["short"]
    assert reproduce.selected(spec, "full") == ["full"]


def test_a_claim_judged_otherwise_on_this_machine_counts_as_a_difference(monkeypatch):
    spec = {"title": "T", "experiment": "debug", "variants": {"a": [], "b": []}, "reported": [],
            "claim_tests": [{"description": "a below b", "a": "a", "b": "b", "metric": "m", "step": None,
                             "expect": "lower"}]}

    def runs(diffs):
        def one(seed, value):
            return {"seed": seed, "history": [{"step": 1, "m": value}], "timing": {"wall_seconds": 1.0},
                    "provenance": {"commit": "c", "hardware": {"device_kind": "cpu"}}}
        return {"a": [one(s, d) for s, d in enumerate(diffs)], "b": [one(s, 0.0) for s in range(len(diffs))]}

    groups = {"reference": runs([-1.0, -1.1, -0.9]), "local": runs([1.0, 1.1, 0.9])}
    monkeypatch.setattr(reproduce, "load_results", lambda root, experiment, **kwargs: root)
    monkeypatch.setattr(report, "ROOT", Path("reference"))
    monkeypatch.setattr(reproduce, "LOCAL", Path("local"))
    monkeypatch.setattr(report, "group_by_variant", lambda spec, results: groups[str(results).split("/")[0]])
    table, differing = reproduce.compare(spec, ["a", "b"])
    assert differing == 1
    assert "| a below b | holds: -1 [" in table and "| contradicted: 1 [" in table
    # One reference seed ("holds (one run, no interval)") and three here that hold: the same verdict.
    groups["reference"] = {v: runs[:1] for v, runs in runs([-1.0]).items()}
    groups["local"] = runs([-1.0, -1.1, -0.9])
    table, differing = reproduce.compare(spec, ["a", "b"])
    assert differing == 0 and "holds (one run, no interval)" in table


def test_promote_refuses_dirty_truncated_and_mixed_commit_runs_and_seals_what_it_copies(
        tmp_path, monkeypatch):
    from repro import manifest

    spec = {"experiment": "debug"}
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "LOCAL", tmp_path / "local")
    local = tmp_path / "local" / "results" / "debug"
    local.mkdir(parents=True)

    def result(seed, commit="c0ffee", dirty=False, config="h1"):
        return {"seed": seed, "config_hash": config, "config": {}, "history": [{"step": 1, "m": 0.5}],
                "final": {"step": 1, "m": 0.5}, "provenance": {"commit": commit, "dirty": dirty,
                                                               "dirty_files": ["repro/loop.py"] * dirty}}

    def attempt(files: dict) -> str:
        for old in local.glob("*.json"):
            old.unlink()
        for name, payload in files.items():
            (local / name).write_text(payload if isinstance(payload, str) else json.dumps(payload))
        with pytest.raises(SystemExit) as err:
            reproduce.promote(spec)
        assert not (tmp_path / "results" / "debug").exists() or not list(
            (tmp_path / "results" / "debug").glob("*.json"))  # nothing copied
        return str(err.value)

    dirty = attempt({"a.json": result(0, dirty=True)})
    assert "uncommitted changes (or no commit): ['repro/loop.py']; commit" in dirty
    assert "is not a readable result file" in attempt({"a.json": json.dumps(result(0))[:40]})
    both = attempt({"a.json": json.dumps(result(0))[:40], "b.json": result(1, dirty=True)})
    assert "is not a readable result file" in both and "b.json was run from code with uncommitted" in both
    assert "come from different commits" in attempt({"a.json": result(0), "b.json": result(1, "beef")})

    (local / "a.json").unlink(missing_ok=True)
    attempt_ok = {"a.json": result(0), "b.json": result(1), "c.json": result(0, "beef", config="h2")}
    for old in local.glob("*.json"):
        old.unlink()
    for name, payload in attempt_ok.items():
        (local / name).write_text(json.dumps(payload))
    reproduce.promote(spec)
    committed = tmp_path / "results" / "debug"
    assert sorted(manifest.read(committed)) == ["a.json", "b.json", "c.json"]
    assert not list(committed.glob(".*.tmp"))
    # A later seed of config h1 from another commit would mix commits with the committed ones.
    for old in local.glob("*.json"):
        old.unlink()
    (local / "d.json").write_text(json.dumps(result(2, "0123456789abcdef")))
    with pytest.raises(SystemExit, match=r"the seeds of config h1 come from different commits "
                       r"\(a.json: c0ffee, b.json: c0ffee, d.json: 0123456789\): rerun them at one commit"):
        reproduce.promote(spec)
    # One from the commit of the committed seeds joins them.
    (local / "d.json").write_text(json.dumps(result(2)))
    reproduce.promote(spec)
    assert sorted(manifest.read(committed)) == ["a.json", "b.json", "c.json", "d.json"]


def test_every_committed_result_file_matches_its_seal():
    """What CI checks on every commit: no committed number was edited by hand, none added unsealed."""
    from repro import manifest

    folders = [f for f in sorted((report.ROOT / "results").iterdir()) if list(f.glob("*.json"))]
    assert len(folders) >= 6
    for folder in folders:
        sums = manifest.read(folder)
        assert sums is not None, f"{folder} has result files but no {manifest.NAME}"
        assert not manifest.missing(folder), manifest.missing(folder)
        for path in sorted(folder.glob("*.json")):
            assert manifest.problem(path, sums) is None, manifest.problem(path, sums)


def test_an_edited_committed_number_is_refused_by_the_report(tmp_path):
    import shutil

    from repro.results import load_results

    shutil.copytree(report.ROOT / "results" / "bn_mnist", tmp_path / "bn_mnist")
    path = sorted((tmp_path / "bn_mnist").glob("*.json"))[0]
    text = path.read_text()
    path.write_text(text.replace('"test/accuracy": 0.9', '"test/accuracy": 0.8', 1))
    assert path.read_text() != text
    skipped: list[str] = []
    assert len(load_results(tmp_path, "bn_mnist", skipped=skipped)) == 5
    assert "does not match its SHA-256 in SHA256SUMS" in skipped[0]


def test_sigterm_to_reproduce_stops_its_training_child(tmp_path):
    """A scheduler's SIGTERM to `python -m repro.reproduce` must not leave the training child
    running (re-parented, holding its lock)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = subprocess.Popen([sys.executable, "-c", "import sys; from repro.reproduce import run_child; "
                               f"sys.exit(run_child([sys.executable, '-c', {child!r}], '.'))"])
    wait_for_words(pid_file, parent)
    child_pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 128 + signal.SIGTERM
    for _ in range(100):  # the child is gone (reaped by the parent before it exited)
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the training child {child_pid} outlived its reproduce parent")


def test_every_final_metric_is_compared_seed_for_seed_saying_why_it_is_not_bitwise(monkeypatch):
    """A paper whose spec has no reported rows (claims only) is still checked number by number."""
    spec = {"title": "T", "experiment": "debug", "variants": {"a": []}, "reported": []}

    def runs(loss, unit, commit, together):
        final = {"step": 9, "test/loss": loss, "p": [unit, 1.0]}
        return {"a": [{"seed": s, "history": [], "final": {**final, "test/loss": loss + s},
                       "timing": {"wall_seconds": 1.0, "vmapped_seeds": together},
                       "provenance": {"commit": commit, "hardware": {"device_kind": "cpu"}}}
                      for s in (0, 1, 2)]}

    def compared(reference, local):
        groups = {"reference": reference, "local": local}
        monkeypatch.setattr(reproduce, "load_results", lambda root, experiment, **kwargs: root)
        monkeypatch.setattr(report, "ROOT", Path("reference"))
        monkeypatch.setattr(reproduce, "LOCAL", Path("local"))
        monkeypatch.setattr(report, "group_by_variant",
                            lambda spec, results: groups[str(results).split("/")[0]])
        return reproduce.compare(spec, ["a"])

    reference = runs(100.0, 0.5, "aaaaaaa1", [0, 1, 2])
    table, differing = compared(reference, runs(100.0, 0.5, "aaaaaaa1", [0, 1, 2]))
    assert differing == 0 and "every final metric of seeds [0, 1, 2]: 3 of 3 bitwise equal" in table
    assert "Not bitwise" not in table

    table, differing = compared(reference, runs(100.0 + 1e-5, 0.5, "bbbbbbb2", None))
    assert differing == 0 and "2 of 3 bitwise equal" in table  # p[0] and p[1] equal, test/loss not
    assert "| test/loss | within seed spread" in table
    assert ("Not bitwise equal: commit bbbbbbb here, aaaaaaa in the reference; seed trained alone here, "
            "vmapped [0, 1, 2] in the reference") in table

    table, differing = compared(reference, runs(150.0, 0.9, "aaaaaaa1", [0, 1, 2]))
    assert differing == 2  # test/loss and p[0]; p[1] is bitwise equal
    assert table.index("| p[0] | **differs**") < table.index("Not bitwise equal: same commit")


def test_a_read_only_local_area_is_refused_naming_repro_local(tmp_path, monkeypatch):
    blocker = tmp_path / "checkout-file"
    blocker.write_text("")  # as root, permissions do not stop writes: a path under a file does
    monkeypatch.setattr(reproduce, "LOCAL", blocker / "local")
    with pytest.raises(SystemExit, match=r"error: .*cannot write this machine's runs and comparison to "
                                         r".*set REPRO_LOCAL=<a writable folder>"):
        reproduce.main(["bn_mnist", "--no-train"])


def test_each_variant_runs_the_most_seeds_any_of_its_rows_wants_else_the_specs_else_three():
    rows = [{"variant": "a"}, {"variant": "a", "seeds_wanted": 5}, {"variant": "b"}]
    assert reproduce.seeds_of({"reported": rows}, "a") == [0, 1, 2, 3, 4]
    assert reproduce.seeds_of({"reported": rows}, "b") == [0, 1, 2]  # no one says: three
    assert reproduce.seeds_of({"reported": rows}, "claims_only") == [0, 1, 2]
    assert reproduce.seeds_of({"reported": rows, "seeds_wanted": 2}, "b") == [0, 1]
    assert reproduce.seeds_of({"reported": rows, "seeds_wanted": 2}, "claims_only") == [0, 1]


def test_everything_after_a_double_dash_goes_to_each_training_command_as_it_is(
        monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(reproduce, "LOCAL", tmp_path / "local")
    monkeypatch.setattr(reproduce, "train", lambda spec, variants, seeds, extra: calls.append(
        (variants, seeds, extra)))
    monkeypatch.setattr(reproduce, "compare", lambda spec, variants: ("", 0))
    assert reproduce.main(["bn_mnist", "--only", "with_bn", "--seeds", "1", "--",
                           "hydra/launcher=submitit_slurm", "train.steps=3"]) == 0
    assert calls == [(["with_bn"], [1], ["hydra/launcher=submitit_slurm", "train.steps=3"])]
    assert "[reproduce] trained in 0 s" in capsys.readouterr().out  # the time the training took
    monkeypatch.setattr("sys.argv", ["reproduce.py", "bn_mnist", "--only", "with_bn"])
    assert reproduce.main() == 0  # the command line, less the program's name
    assert calls[-1] == (["with_bn"], None, [])


def test_each_variants_line_reaches_a_pipe_before_its_training_childs_output(tmp_path):
    import os
    import subprocess
    import sys

    script = ("import subprocess, sys\nfrom repro import reproduce\n"
              "reproduce.run_child = lambda command, cwd: subprocess.run([sys.executable, '-c', "
              "'print(\"child output\")']).returncode\n"
              "reproduce.train({'experiment': 'debug', 'variants': {'v': [], 'w': []}, 'reported': []}, "
              "['v', 'w'], [0], [])\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a pipe is
    env["PYTHONPATH"] = str(Path(reproduce.__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=120).stdout.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "[reproduce] v", "child output", "[reproduce] v", "[reproduce] w", "child output", "[reproduce] w"]
    assert all(int(line.split()[-2]) < 60 for line in out if " done in " in line)  # a child's seconds


def _one_run(seed, value, commit="c"):
    return {"seed": seed, "history": [{"step": 1, "m": value}], "final": {"step": 1, "m": value},
            "timing": {"wall_seconds": 1.0},
            "provenance": {"commit": commit, "hardware": {"device_kind": "cpu"}}}


def _compared(monkeypatch, spec, reference, local, variants):
    groups = {"reference": reference, "local": local}
    monkeypatch.setattr(reproduce, "load_results", lambda root, experiment, **kwargs: root)
    monkeypatch.setattr(report, "ROOT", Path("reference"))
    monkeypatch.setattr(reproduce, "LOCAL", Path("local"))
    monkeypatch.setattr(report, "group_by_variant", lambda spec, results: groups[str(results).split("/")[0]])
    return reproduce.compare(spec, variants)


def test_final_metrics_are_compared_for_every_variant_run_both_here_and_in_the_reference(monkeypatch):
    """A variant without runs on one side is skipped, not the end of the list."""
    spec = {"title": "T", "experiment": "debug", "variants": {v: [] for v in "abc"}, "reported": []}
    runs = [_one_run(s, 1.0 + s) for s in range(2)]
    reference = {"a": runs, "b": [], "c": runs}
    local = {"a": [], "b": runs, "c": runs}
    table, differing = _compared(monkeypatch, spec, reference, local, ["a", "b", "c"])
    assert differing == 0
    assert "**c**, every final metric of seeds [0, 1]: 1 of 1 bitwise equal" in table
    assert "**a**" not in table and "**b**" not in table  # one side only: nothing to compare


@pytest.mark.parametrize("paper_gap, marked", [(0.001, True), (10.0, False)])
def test_a_row_whose_tolerance_is_wider_than_the_papers_gap_says_it_does_not_discriminate(
        monkeypatch, paper_gap, marked):
    row = {"description": "m of a", "variant": "a", "metric": "m", "step": None, "value": 1.0,
           "floor": 0.5, "source": "T1", "compares": [1.0 + paper_gap]}
    spec = {"title": "T", "experiment": "debug", "variants": {"a": []}, "reported": [row]}
    runs = [_one_run(s, 1.0 + 0.01 * s) for s in range(3)]
    table, _ = _compared(monkeypatch, spec, {"a": runs}, {"a": runs}, ["a"])
    assert "| m of a | 1.0 | 1.0100 ± 0.0100 (n=3) | 1.0100 ± 0.0100 (n=3) | within" in table  # 4 digits
    assert ("does not discriminate (the paper's smallest gap" in table) is marked


def test_the_comparison_shows_every_row_of_the_chosen_variants_wherever_it_stands(monkeypatch):
    rows = [{"description": f"m of {v}", "variant": v, "metric": "m", "step": None, "value": 1.0,
             "floor": 0.5, "source": "T1", "digits": 2} for v in "aba"]
    spec = {"title": "T", "experiment": "debug", "variants": {"a": [], "b": []}, "reported": rows}
    runs = [_one_run(s, 1.0) for s in range(2)]
    table, _ = _compared(monkeypatch, spec, {"a": runs, "b": runs}, {"a": runs, "b": runs}, ["b"])
    assert "| m of b | 1.0 | 1.00 ± 0.00 (n=2) |" in table and "m of a" not in table
    table, _ = _compared(monkeypatch, spec, {"a": runs, "b": runs}, {"a": runs, "b": runs}, ["a"])
    assert table.count("| m of a |") == 2 and "m of b" not in table


def test_help_says_what_the_command_does(capsys):
    with pytest.raises(SystemExit) as done:
        reproduce.main(["--help"])
    assert done.value.code == 0
    assert reproduce.__doc__.splitlines()[0].strip("`") in " ".join(capsys.readouterr().out.split())


def test_the_first_signal_decides_reproduces_exit_status_and_its_handlers_are_restored(tmp_path):
    """A child that outlives the first forwarded signal (SIGHUP) and exits on the second (SIGTERM):
    both reach it, the exit status is the first's; run_child leaves this process's handlers as
    they were."""
    import signal
    import subprocess
    import sys

    log = tmp_path / "signals"
    child = ("import signal, sys, time\n"
             f"def got(s, f):\n    open({str(log)!r}, 'a').write(str(s) + ' ')\n"
             f"    if len(open({str(log)!r}).read().split()) == 3: sys.exit(0)\n"
             "signal.signal(signal.SIGHUP, got); signal.signal(signal.SIGTERM, got)\n"
             f"open({str(log)!r}, 'w').write('ready ')\n"
             "time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c",
                               "import signal, sys; from repro.reproduce import run_child\n"
                               "before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]\n"
                               "try:\n"
                               f"    run_child([sys.executable, '-c', {child!r}], '.')\n"
                               "finally:\n"
                               "    after = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]\n"
                               "    assert after == before, (before, after)"])

    wait_for_words(log, parent, 1)
    parent.send_signal(signal.SIGHUP)
    wait_for_words(log, parent, 2)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 128 + signal.SIGHUP  # an AssertionError would exit 1
    assert log.read_text().split() == ["ready", str(int(signal.SIGHUP)), str(int(signal.SIGTERM))]


def test_metrics_beyond_the_seed_spread_are_listed_first(monkeypatch):
    spec = {"title": "T", "experiment": "debug", "variants": {"a": []}, "reported": []}

    def runs(a_shift, z):
        return {"a": [{**_one_run(s, 0.0), "final": {"step": 1, "a": s + a_shift, "z": z + 0.01 * s}}
                      for s in range(3)]}

    table, differing = _compared(monkeypatch, spec, runs(0.0, 1.0), runs(1e-3, 5.0), ["a"])
    assert differing == 1  # z; a moved by 0.001 against a spread of 1
    assert table.index("| z | **differs**") < table.index("| a | within seed spread")
    rows = [line for line in table.splitlines() if line.startswith(("| z |", "| a |"))]
    assert len(rows) == 2 and all(line.count("|") == 3 for line in rows)  # metric | verdict


def test_a_variant_equal_to_its_reference_does_not_end_the_comparison(monkeypatch):
    spec = {"title": "T", "experiment": "debug", "variants": {"a": [], "b": []}, "reported": []}
    same = [_one_run(s, 1.0 + s) for s in range(2)]
    moved = [_one_run(s, 1.0 + s + 1e-6) for s in range(2)]
    table, _ = _compared(monkeypatch, spec, {"a": same, "b": same}, {"a": same, "b": moved}, ["a", "b"])
    assert "**a**, every final metric of seeds [0, 1]: 1 of 1 bitwise equal" in table
    assert "**b**, every final metric of seeds [0, 1]: 0 of 1 bitwise equal" in table
    assert "| m | within seed spread" in table


@pytest.mark.parametrize("vmap, seed_arg", [(True, "seeds=[0,2]"), (False, "seed=0,2")])
def test_seeds_are_vmapped_in_one_job_only_where_the_spec_says(monkeypatch, vmap, seed_arg):
    commands = []
    monkeypatch.setattr(reproduce, "run_child", lambda command, cwd: commands.append(command) or 0)
    spec = {"experiment": "debug", "variants": {"v": ["optim.lr=0.1"]}, "reported": [], "vmap_seeds": vmap}
    reproduce.train(spec, ["v"], [0, 2], [])
    assert len(commands) == 1 and commands[0].count(seed_arg) == 1
    assert not any(a.startswith("seed=" if vmap else "seeds=") for a in commands[0])


def test_a_failed_copy_leaves_no_temporary_file_behind(tmp_path, monkeypatch):
    source = tmp_path / "a.json"
    source.write_text("{}")
    target = tmp_path / "results" / "a.json"
    target.parent.mkdir()

    def full_disk(src, dst):
        Path(dst).write_text("{")  # a part written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reproduce.shutil, "copy2", full_disk)
    with pytest.raises(OSError, match="No space left"):
        reproduce._copy_atomically(source, target)
    assert list(target.parent.iterdir()) == []  # neither a truncated a.json nor its temporary


def test_a_child_that_ignores_the_forwarded_signal_is_killed_after_the_grace(tmp_path):
    import signal
    import subprocess
    import sys

    ready = tmp_path / "ready"
    child = (f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             f"open({str(ready)!r}, 'w').write('1'); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", "import sys; from repro.reproduce import run_child; "
                               f"run_child([sys.executable, '-c', {child!r}], '.', grace_s=1.0)"])
    wait_for_words(ready, parent)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 128 + signal.SIGTERM  # well before the child's 120 s sleep
