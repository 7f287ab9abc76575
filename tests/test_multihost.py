"""Multi-host training for real: JAX processes on this machine joined the way a SLURM job joins
them (`distributed=true`: jax.distributed.initialize() reads the SLURM_* variables srun sets; CPU
collectives through gloo), each process with one CPU device, training the debug experiment
data-parallel. The fast test compares two processes with one process of two devices; the slow
ones (`make test-multihost`) kill processes and resume."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest
from conftest import latest_checkpoint
from omegaconf import OmegaConf

from repro.configuration import CONFIG_DIR

COMMON = ["experiment=debug", "data.allow_partial=true", "progress=false", "model.hidden=[32]",
          "train.chunk_steps=10", "train.eval_every=100", "results.if_exists=error"]


def _slurm_env(process: int, processes: int, job_id: int) -> dict:
    """What srun sets for task `process` of a one-node job (JAX derives the port from the job id)."""
    return {"SLURM_JOB_ID": str(job_id), "SLURM_STEP_NODELIST": "localhost",
            "SLURM_NTASKS": str(processes), "SLURM_PROCID": str(process), "SLURM_LOCALID": str(process),
            "SLURM_STEP_NUM_NODES": "1"}


def _command(data_dir, where, *extra):
    return [sys.executable, "-m", "repro", *COMMON, f"data.dir={data_dir}", f"paths.results={where}/results",
            f"paths.checkpoints={where}/checkpoints", f"hydra.run.dir={where}/outputs", *extra]


def _cpu_env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
            "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo", **extra}


def _launch(data_dir, where, processes: int, *extra) -> list[subprocess.Popen]:
    job_id = random.Random(f"{where}{time.time_ns()}").randrange(10_000, 4_000_000)  # its own port
    where.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(_command(data_dir, where, "distributed=true", *extra),
                             env=_cpu_env(1, **_slurm_env(i, processes, job_id)),
                             stdout=open(where / f"process{i}.log", "w"), stderr=subprocess.STDOUT)
            for i in range(processes)]


def _wait(procs, timeout=600) -> list[int]:
    return [p.wait(timeout=timeout) for p in procs]


def _results(where) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((where / "results" / "debug").glob("*.json"))]


def _single(data_dir, where, devices: int, *extra) -> dict:
    proc = subprocess.run(_command(data_dir, where, "logger.mode=disabled", *extra), env=_cpu_env(devices),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = _results(where)
    return result


def test_two_processes_train_exactly_as_one_process_with_two_devices(tiny_data_dir, tmp_path):
    steps = ["train.steps=200", "train.checkpoint_every=50", "train.keep_checkpoints=true"]
    where = tmp_path / "two"
    procs = _launch(tiny_data_dir, where, 2, "logger.mode=offline", *steps)
    codes = _wait(procs)
    logs = [(where / f"process{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    (ours,) = _results(where)  # one result file: only process 0 writes
    reference = _single(tiny_data_dir, tmp_path / "one", 2, *steps)
    # Same global batch, same 2-device mesh and reduction order: equal to the bit.
    assert ours["history"] == reference["history"] and ours["final"] == reference["final"]
    assert ours["provenance"]["hardware"]["process_count"] == 2
    assert len(list((where / "outputs" / "wandb").glob("offline-run-*"))) == 1  # one wandb run
    saved = sorted(int(p.name) for p in (where / "checkpoints" / "debug").glob("*/*") if p.name.isdigit())
    assert saved == [150, 200]  # one checkpoint per step for both processes (the last two kept)
    assert "wrote" in logs[0] and "wrote" not in logs[1]


@pytest.mark.slow
def test_killed_processes_resume_to_the_uninterrupted_result(tiny_data_dir, tmp_path):
    run = ["train.steps=3000", "train.checkpoint_every=100", "logger.mode=disabled"]
    straight = tmp_path / "straight"
    assert _wait(_launch(tiny_data_dir, straight, 2, *run)) == [0, 0]
    where = tmp_path / "killed"
    procs = _launch(tiny_data_dir, where, 2, *run)
    deadline = time.monotonic() + 300
    while latest_checkpoint(where) < 200 and all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    for p in procs:
        p.kill()  # SIGKILL both: a lost job
    _wait(procs)
    assert not _results(where), "the run finished before it was killed"
    assert _wait(_launch(tiny_data_dir, where, 2, *run)) == [0, 0]  # the same processes again
    (ours,), (reference,) = _results(where), _results(straight)
    assert ours["resumed"] and ours["history"] == reference["history"]


@pytest.mark.slow
def test_a_killed_process_stops_the_other_with_a_clear_error(tiny_data_dir, tmp_path):
    where = tmp_path / "lost"
    procs = _launch(tiny_data_dir, where, 2, "train.steps=100000", "train.checkpoint_every=100",
                    "logger.mode=disabled", "distributed_timeout_s=20")
    deadline = time.monotonic() + 300
    while latest_checkpoint(where) < 100 and procs[0].poll() is None:  # training is under way
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    procs[1].kill()
    started = time.monotonic()
    code = procs[0].wait(timeout=180)  # bounded: the heartbeat timeout, not forever
    assert code != 0 and time.monotonic() - started < 120
    log = (where / "process0.log").read_text()
    assert "another process of this run has most likely died" in log


def test_slurm_launcher_asks_for_nodes_times_gpus_tasks(tmp_path, monkeypatch):
    """`hydra.launcher.nodes=2 tasks_per_node=4 gpus_per_node=4 distributed=true`: the sbatch
    script submitit would submit (no cluster: a stand-in srun, map_array captured) asks for 2 nodes
    x 4 tasks, one per GPU; srun starts the 8 tasks and each one's SLURM_* variables are what
    jax.distributed.initialize() reads."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.nodes=2",
            "hydra.launcher.tasks_per_node=4", "hydra.launcher.gpus_per_node=4", "experiment=debug",
            "distributed=true", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    captured = {}
    monkeypatch.setattr(submitit.AutoExecutor, "map_array",
                        lambda self, fn, *args: captured.setdefault("executor", self) and [])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    launcher = SlurmLauncher(**{k: v for k, v in params.items() if k != "_target_"})
    launcher.config = cfg
    launcher.launch([["experiment=debug", "distributed=true"]], 0)
    script = captured["executor"]._executor._make_submission_file_text("python -m repro", "job")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu"):
        assert line in script
    assert "\nsrun " in script
    assert cfg.distributed is True


def test_vmapped_seeds_with_distributed_are_refused_before_any_setup(run_overrides):
    from repro.configuration import compose
    from repro.run import run

    cfg = compose(["experiment=debug", *run_overrides, "distributed=true", "seeds=[0,1]"])
    with pytest.raises(ValueError, match="sweep seeds as separate jobs"):
        run(cfg)
