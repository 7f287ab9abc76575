"""How batches reach the step: device-drawn epochs, host samplers (ClassBalanced: P x K), and a
host feed for data that stays off the device; all pure functions of (seed, step), so resumed
runs (also after kill -9) see exactly the batches of an uninterrupted one."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest
from conftest import compose, latest_checkpoint, synthetic_digits
from flax import nnx

from repro.data.samplers import ClassBalanced, EpochSampler
from repro.data.transforms import Normalize, Transforms
from repro.loop import Trainer, seed_keys
from repro.models.mlp import MLP
from repro.objectives import Classification
from repro.run import run

PIXELS = Transforms([Normalize([0.0], [255.0])])


def _trainer(seeds=(0,), **feeding):
    images, labels = synthetic_digits(300, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = [seed_keys(s) for s in seeds]
    models = [MLP(784, [16], 10, activation="relu", batchnorm=True, rngs=nnx.Rngs(k["init"])) for k in keys]
    one = len(seeds) == 1
    return Trainer(models[0] if one else models, optax.sgd(0.3), Classification(), PIXELS, split,
                   {"test": split}, batch_size=20, keys=keys[0] if one else keys, eval_batch_size=100,
                   **feeding)


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_host_sampled_and_host_fed_runs_equal_the_device_path_bitwise(seeds):
    """Epochs drawn on the host (data on the device, or gathered on the host) are the device's."""
    histories = []
    for feeding in ({}, {"sampler": EpochSampler()}, {"feed": "host"}):
        trainer = _trainer(seeds, **feeding)
        _, history, _ = trainer.fit(trainer.initial_state, 50, chunk_steps=20, eval_every=20)
        histories.append(history)
    assert [r["step"] for r in histories[0]] == [0, 20, 40, 50]
    assert histories[1] == histories[0] and histories[2] == histories[0]
    assert _trainer(seeds, feed="host").train_data == {}  # nothing of the split on the device


def test_class_balanced_batches_hold_p_classes_of_k_examples_each():
    labels = np.repeat(np.arange(12), 9)  # 12 classes, 9 examples each
    labels[:5] = 11  # class 0 keeps only 4 examples: fewer than K, never chosen
    split = {"label": labels}
    sampler = ClassBalanced(classes_per_batch=4, per_class=5)
    idx = sampler.indices(seed_keys(0)["data"], 7, 30, 20, split)
    assert idx.shape == (30, 20)
    for batch in idx:
        groups = labels[batch].reshape(4, 5)
        assert (groups == groups[:, :1]).all()  # rows of K share a class...
        assert len(set(groups[:, 0])) == 4 and 0 not in groups[:, 0]  # ...P distinct classes
        assert len(set(batch)) == 20  # no example twice
    chosen = {c for batch in idx for c in labels[batch]}
    assert len(chosen) == 11  # every eligible class gets drawn over 30 steps
    again = np.concatenate([sampler.indices(seed_keys(0)["data"], s, 1, 20, split) for s in range(7, 37)])
    np.testing.assert_array_equal(again, idx)  # a pure function of (key, step): chunking is invisible
    other = sampler.indices(seed_keys(1)["data"], 7, 30, 20, split)
    assert not np.array_equal(other, idx)
    with pytest.raises(ValueError, match="must be classes_per_batch x per_class = 4 x 5 = 20"):
        sampler.indices(seed_keys(0)["data"], 0, 1, 16, split)
    with pytest.raises(Exception, match="needs 12 classes with at least 5 examples"):
        ClassBalanced(12, 5).indices(seed_keys(0)["data"], 0, 1, 60, split)
    # at the edges: classes of exactly K examples count, and exactly P such classes suffice
    exact = {"label": np.repeat(np.arange(3), [5, 5, 4])}  # two classes of K = 5, one of 4
    rows = ClassBalanced(2, 5).indices(seed_keys(0)["data"], 0, 3, 10, exact)
    assert all(sorted(exact["label"][r].tolist()) == [0] * 5 + [1] * 5 for r in rows)
    with pytest.raises(Exception, match="needs 3 classes with at least 5 examples each; the split has 2"):
        ClassBalanced(3, 5).indices(seed_keys(0)["data"], 0, 1, 15, exact)


COMMON = ["experiment=debug", "data.allow_partial=true", "logger.mode=disabled", "progress=false",
          "train.batch_size=20", "data.feed=host", "train.chunk_steps=10", "train.eval_every=50",
          "train.checkpoint_every=10", "model.hidden=[16]",
          "data.sampler={_target_: repro.data.samplers.ClassBalanced, classes_per_batch: 4, per_class: 5}"]


def _result(where):
    (path,) = (where / "results" / "debug").glob("*.json")
    return json.loads(path.read_text())


def test_a_host_fed_class_balanced_run_killed_and_rerun_gives_the_uninterrupted_result(
        tiny_data_dir, tmp_path):
    def command(where, steps):
        return [sys.executable, "-m", "repro", *COMMON, f"train.steps={steps}", f"data.dir={tiny_data_dir}",
                f"paths.results={where}/results", f"paths.checkpoints={where}/checkpoints",
                f"hydra.run.dir={where}/outputs"]

    steps = 400  # 40 checkpoints: seconds of run to kill it in
    straight = subprocess.run(command(tmp_path / "straight", steps), capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    where = tmp_path / "killed"
    proc = subprocess.Popen(command(where, steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while latest_checkpoint(where) < 30 and proc.poll() is None:  # a few checkpoints in: kill -9
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.kill()  # SIGKILL: no cleanup
    proc.wait(timeout=60)
    killed_at = latest_checkpoint(where)
    assert 30 <= killed_at < steps
    final = subprocess.run(command(where, steps), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    ours, reference = _result(where), _result(tmp_path / "straight")
    assert ours["resumed"] and ours["timing"]["parts"][0]["to_step"] >= killed_at
    assert ours["history"] == reference["history"]  # bitwise: every record, every metric
    assert ours["config"]["data"]["feed"] == "host"


def test_an_in_process_interrupted_host_fed_run_resumes_bitwise(run_overrides):
    from conftest import interrupted_run

    overrides = [*COMMON, *run_overrides, "train.steps=60"]
    interrupted_run(compose(overrides), at_step=30)
    resumed = run(compose(overrides))
    straight = run(compose([*overrides, "tag=straight", "train.resume=false",
                            "results.if_exists=overwrite"]))
    assert resumed["resumed"] and not straight["resumed"]
    assert resumed["history"] == straight["history"]
    assert jax.device_get(resumed["final"]) == straight["final"]


class GeneratedDigits:
    """A training split that never exists whole: example i is drawn when asked for, from i alone
    (e.g. generated scenes, or a file read on demand). Any field with len() and integer-array
    indexing can be fed from the host."""

    def __init__(self, n: int, field: str):
        self.n, self.field = n, field

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        images, labels = synthetic_digits(10, 0)
        if self.field == "label":
            return labels.astype(np.int32)[idx % 10]
        shift = (idx // 10) % 3  # examples beyond the first ten: shifted copies
        return np.stack([np.roll(images[i % 10], s, axis=1) for i, s in zip(idx.ravel(), shift.ravel(),
                                                                           strict=True)]
                        ).reshape(*idx.shape, 28, 28)[..., None]


def test_a_split_generated_on_demand_trains_from_the_host_deterministically():
    split = {"image": GeneratedDigits(3000, "image"), "label": GeneratedDigits(3000, "label")}
    images, labels = synthetic_digits(10, 0)
    test = {"image": images[..., None], "label": labels.astype(np.int32)}
    histories = []
    for _ in range(2):
        model = MLP(784, [16], 10, activation="relu", rngs=nnx.Rngs(seed_keys(0)["init"]))
        trainer = Trainer(model, optax.sgd(0.3), Classification(), PIXELS, split, {"test": test},
                          batch_size=20, keys=seed_keys(0), eval_batch_size=10, feed="host")
        _, history, _ = trainer.fit(trainer.initial_state, 60, chunk_steps=20, eval_every=60)
        histories.append(history)
    assert histories[0] == histories[1]
    assert histories[-1][-1]["test/accuracy"] > 0.5  # it learned from the generated examples
