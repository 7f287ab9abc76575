"""Sweeps through Hydra launchers: the SLURM config composes; submitit's local launcher really runs
and groups its jobs' wandb runs by sweep."""

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from repro.configuration import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]


def test_slurm_launcher_config_composes():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                 "experiment=bn_mnist"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min > 0


def test_submitit_local_runs_a_two_job_sweep(tiny_data_dir, tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "repro", "-m", "hydra/launcher=submitit_local",
           f"hydra.sweep.dir={tmp_path / 'sweep'}", "experiment=debug", "seed=0,1",
           f"data.dir={tiny_data_dir}", "data.allow_partial=true", f"paths.results={results}",
           "train.steps=40", "train.chunk_steps=20", "train.eval_every=20", "model.hidden=[32]"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [json.loads(f.read_text()) for f in sorted((results / "debug").glob("*.json"))]
    assert [r["seed"] for r in found] == [0, 1]
    assert len({r["config_hash"] for r in found}) == 1
    # Both jobs' wandb runs are in the sweep's group: <experiment>-<sweep dir name>.
    assert [r["config"]["logger"]["group"] for r in found] == ["debug-sweep"] * 2
