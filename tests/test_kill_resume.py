"""A run killed (SIGKILL) at random moments, many times, and rerun each time ends with exactly
the result of an uninterrupted run. Slow (~2 min): `make test-kill`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest
from conftest import latest_checkpoint

KILLS = 12
COMMON = ["experiment=debug", "data.allow_partial=true", "logger.mode=disabled", "progress=false",
          "train.steps=4000", "train.chunk_steps=10", "train.eval_every=500",
          "train.checkpoint_every=10", "model.hidden=[32]", "results.if_exists=error"]


def _command(data_dir, where):
    return [sys.executable, "-m", "repro", *COMMON, f"data.dir={data_dir}",
            f"paths.results={where}/results", f"paths.checkpoints={where}/checkpoints",
            f"hydra.run.dir={where}/outputs"]


def _result(where) -> dict:
    (path,) = (where / "results" / "debug").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_killed_at_random_moments_and_rerun_gives_the_uninterrupted_result(tiny_data_dir, tmp_path):
    straight = subprocess.run(_command(tiny_data_dir, tmp_path / "straight"), capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    rng = random.Random(0)  # the same kill moments every time the test runs
    where = tmp_path / "killed"
    killed_after = []
    for attempt in range(KILLS):
        before = latest_checkpoint(where)
        proc = subprocess.Popen(_command(tiny_data_dir, where), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if attempt % 4 == 3:  # now and then during start-up (imports, data, compile, restore)
            time.sleep(rng.uniform(0.2, 2.0))
        else:  # mostly once training has gone on past the last checkpoint: mid-chunk or mid-save
            deadline = time.monotonic() + 300
            while latest_checkpoint(where) == before and proc.poll() is None:
                assert time.monotonic() < deadline, "no new checkpoint within 300 s"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            break  # finished before this kill came
        proc.kill()  # SIGKILL: no cleanup, as an OOM kill or a lost node
        proc.wait(timeout=60)
        killed_after.append(latest_checkpoint(where))
    final = subprocess.run(_command(tiny_data_dir, where), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]

    assert len(killed_after) == KILLS, f"the run finished after {len(killed_after)} kills"
    print("latest checkpoint step at each kill:", killed_after)
    ours, reference = _result(where), _result(tmp_path / "straight")
    assert ours["resumed"] and len(ours["timing"]["parts"]) > 1
    assert ours["history"] == reference["history"]  # bitwise: every record, every metric
    assert ours["final"] == reference["final"]
