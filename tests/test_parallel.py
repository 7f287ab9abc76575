"""Data parallelism on 4 virtual CPU devices (a subprocess: the device count is fixed at start),
alone and with vmapped seeds."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
import jax, numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import synthetic_digits
from repro.configuration import compose
from repro.data import Dataset
from repro.run import build_trainer

images, labels = synthetic_digits(400, 0)
split = {"image": images[..., None], "label": labels.astype(np.int32)}
data = Dataset("synthetic", {"train": split, "test": split}, 10, "synthetic")
out = {"devices": jax.device_count()}
for parallel in (False, True):
    cfg = compose(["experiment=debug", "train.batch_size=64", "train.eval_batch_size=200",
                   "model.hidden=[64,64]", "model.batchnorm=true", "optim.lr=0.5",
                   f"train.data_parallel={parallel}"])
    trainer = build_trainer(cfg, data)
    _, history, _ = trainer.fit(trainer.initial_state, 60, chunk_steps=20, eval_every=20)
    out[str(parallel)] = [r["train/loss"] for r in history[1:]] + [history[-1]["test/loss"]]
    if parallel:
        idx = np.arange(64).reshape(1, 64)[0]
        images_b = jax.jit(trainer.gather_batch)(trainer.train_data, idx)["image"]
        out["shard_shapes"] = [list(s.data.shape) for s in images_b.addressable_shards]
        out["data_replicated"] = trainer.train_data["image"].sharding.is_fully_replicated
        # Vmapped seeds on the mesh too: seed 0 of seeds=[0,1] is the unstacked seed-0 run.
        stacked = build_trainer(cfg, data, seeds=[0, 1])
        _, history, _ = stacked.fit(stacked.initial_state, 60, chunk_steps=20, eval_every=20)
        out["stacked"] = [r["train/loss"][0] for r in history[1:]] + [history[-1]["test/loss"][0]]
print("RESULT" + json.dumps(out))
"""


def test_four_devices_match_one_device_and_split_the_batch(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    tests_dir = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, tests_dir], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT")[-1])
    assert out["devices"] == 4
    assert out["shard_shapes"] == [[16, 28, 28, 1]] * 4  # global batch 64 split 4 ways
    assert out["data_replicated"]
    one, four, stacked = out["False"], out["True"], out["stacked"]
    assert len(one) == len(four) == len(stacked) == 4
    for a, b, c in zip(one, four, stacked, strict=True):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)) and abs(a - c) <= 1e-4 * max(1.0, abs(a))
