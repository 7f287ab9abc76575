"""What stops a run before it trains: another process on the same run, an unwritable results,
checkpoints or working folder; and what a killed run leaves behind (a stale lock) not stopping
the next one."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from repro.configuration import compose, run_name
from repro.lock import RunLockedError, run_locks
from repro.results import write_result
from repro.run import run
from repro.writable import check_hydra_folder

QUICK = ["experiment=debug", "train.steps=20", "train.chunk_steps=10", "train.eval_every=10",
         "model.hidden=[8]"]


def _lock_path(cfg, tmp_path):
    return tmp_path / "checkpoints" / "debug" / f"{run_name(cfg)}.lock"


def _trained(cfg):
    steps = []
    try:
        run(cfg, callbacks=[lambda step, state, record: steps.append(step)])
    finally:
        return steps  # noqa: B012 - the steps seen, whatever run() raised


def test_a_second_run_of_the_same_config_stops_at_once(run_overrides, tmp_path):
    cfg = compose([*QUICK, *run_overrides])
    with run_locks(tmp_path / "checkpoints" / "debug", [run_name(cfg)]):  # a run in progress
        with pytest.raises(RunLockedError, match=rf"already running \(process {os.getpid()} on host"):
            run(cfg)
        assert _trained(cfg) == []
    assert not _lock_path(cfg, tmp_path).exists()  # released when the first one ends
    assert run(cfg)["final"]


def test_a_stale_lock_of_a_killed_run_is_taken_over(run_overrides, tmp_path, caplog):
    cfg = compose([*QUICK, *run_overrides])
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = _lock_path(cfg, tmp_path)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="repro.lock"):
        assert run(cfg)["final"]
    assert f"taking over the stale lock {lock}" in caplog.text
    assert not lock.exists()


@pytest.mark.parametrize("setting, what", [("results", "result files"), ("checkpoints", "checkpoints")])
def test_an_unwritable_folder_stops_the_run_before_training(run_overrides, tmp_path, setting, what):
    # As root, permissions do not stop writes: a path under a regular file does.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cfg = compose([*QUICK, *run_overrides, f"paths.{setting}={blocker / setting}"])
    with pytest.raises(OSError, match=f"cannot write {what} to .*point paths.{setting} elsewhere; "
                                      "nothing was trained"):
        run(cfg)
    assert _trained(cfg) == []


def test_result_files_are_written_through_a_private_temporary_name(tmp_path):
    path = write_result(tmp_path / "exp" / "a.json", {"x": 1})
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_batch_larger_than_the_training_split_is_refused_before_training(run_overrides):
    cfg = compose([*QUICK, *run_overrides, "train.batch_size=1000"])  # the tiny mirror has 600
    with pytest.raises(ValueError, match="batch_size=1000 exceeds the 600 training examples"):
        run(cfg)
    assert max(_trained(cfg), default=0) == 0  # refused at the first chunk: no step trained


@pytest.mark.parametrize("override", ["tag=../../../../escaped", "tag=a/b", "experiment_name=../../x",
                                      "tag=..", "tag="])
def test_names_that_would_leave_their_folder_are_refused_before_anything_is_written(
        override, run_overrides, tmp_path):
    from repro.validation import ConfigError

    cfg = compose([*QUICK, *run_overrides, override])
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="a plain name .*no '/', no '..'"):
        run(cfg)
    assert set(tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escaped").exists()


def test_skip_retrains_a_seed_whose_result_file_is_unreadable(run_overrides, tmp_path):
    cfg = compose([*QUICK, *run_overrides, "results.if_exists=skip"])
    first = run(cfg)
    path = tmp_path / "results" / "debug" / f"{run_name(cfg)}.json"
    path.write_text(path.read_text()[:200])  # truncated, as by a full disk or a killed copy
    again = run(cfg)
    assert "skipped" not in again and again["history"] == first["history"]
    assert json.loads(path.read_text())["history"] == first["history"]
    (aside,) = path.parent.glob(f"{path.name}.unreadable-*")  # kept, not overwritten unseen
    assert len(aside.read_text()) == 200
    assert "skipped" in run(cfg)  # a readable one is still skipped


def test_a_weights_write_that_fails_leaves_no_result_so_the_rerun_trains(run_overrides, tmp_path,
                                                                         monkeypatch):
    import errno

    import numpy as np

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    cfg = compose([*QUICK, *run_overrides])
    savez = np.savez
    monkeypatch.setattr(np, "savez", full_disk)  # the weights' write fails, as on a full disk
    with pytest.raises(OSError, match="disk full while writing .*no result file was written"):
        run(cfg)
    assert not list((tmp_path / "results" / "debug").glob("*"))
    monkeypatch.setattr(np, "savez", savez)
    assert run(cfg)["history"]  # not refused as "already finished"
    assert list((tmp_path / "results" / "debug").glob("*.weights.npz"))


def test_a_read_only_working_folder_is_refused_before_hydra_writes_naming_the_fix(tmp_path):
    # As root, permissions do not stop writes: an `outputs` that is a regular file does.
    (tmp_path / "outputs").write_text("")
    done = subprocess.run([sys.executable, "-m", "repro", "experiment=debug"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 1
    assert done.stderr.strip().startswith(
        f"error: [Errno 17] cannot write Hydra's run folder (config, log) to {tmp_path / 'outputs'}")
    assert "give hydra.run.dir=<a writable folder>" in done.stderr and "Traceback" not in done.stderr
    # A folder given on the command line is the user's: not checked (Hydra will use it).
    check_hydra_folder(["experiment=debug", f"hydra.run.dir={tmp_path / 'outputs' / 'x'}"], tmp_path)
    with pytest.raises(OSError, match="give hydra.sweep.dir="):
        check_hydra_folder(["-m", "experiment=debug"], tmp_path / "outputs")
