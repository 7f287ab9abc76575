import jax
import numpy as np
import optax
import pytest
from conftest import interrupted_run, synthetic_digits
from flax import nnx

from repro.configuration import compose
from repro.data.pipeline import Preprocessor
from repro.loop import NonFiniteLossError, Trainer, seed_keys
from repro.models.mlp import MLP
from repro.objectives import Classification
from repro.run import run


def make_trainer(lr=0.5, batchnorm=True, seed=0):
    images, labels = synthetic_digits(300, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = seed_keys(seed)
    model = MLP(784, [32], 10, activation="relu", batchnorm=batchnorm, rngs=nnx.Rngs(keys["init"]))
    return Trainer(model, optax.sgd(lr), Classification(), Preprocessor([0.0], [255.0]), split,
                   {"test": split}, batch_size=20, keys=keys, eval_batch_size=128)


def test_loss_falls_on_a_learnable_problem():
    trainer = make_trainer()
    _, history, timing = trainer.fit(trainer.initial_state, 60, chunk_steps=20, eval_every=20)
    assert history[0]["test/loss"] > 2.0
    assert history[-1]["test/loss"] < 0.5 * history[0]["test/loss"]
    assert history[-1]["test/accuracy"] > 0.9
    assert timing["steps"] == 60 and trainer.compile_seconds > 0


def test_chunked_and_unchunked_runs_agree():
    a, b = make_trainer(), make_trainer()
    state_a, hist_a, _ = a.fit(a.initial_state, 30, chunk_steps=30, eval_every=30)
    state_b, hist_b, _ = b.fit(b.initial_state, 30, chunk_steps=1, eval_every=30)
    for x, y in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    assert hist_a[-1]["test/loss"] == pytest.approx(hist_b[-1]["test/loss"], rel=1e-4)


def test_eval_every_must_align_with_chunks():
    trainer = make_trainer()
    with pytest.raises(ValueError, match="multiple of train.chunk_steps"):
        trainer.fit(trainer.initial_state, 30, chunk_steps=20, eval_every=30)


def test_nan_loss_stops_with_a_clear_message():
    trainer = make_trainer(lr=1e30, batchnorm=False)
    with pytest.raises(NonFiniteLossError, match="NaN/inf at step .*optim.lr"):
        trainer.fit(trainer.initial_state, 40, chunk_steps=20, eval_every=20)


def test_state_buffers_are_donated():
    trainer = make_trainer()
    state = trainer.initial_state
    params_leaf = jax.tree.leaves(state["params"])[0]
    trainer.fit(state, 20, chunk_steps=20, eval_every=20)
    assert params_leaf.is_deleted()


def test_resume_after_interrupt_equals_uninterrupted_run(run_overrides, tmp_path):
    common = ["experiment=debug", *run_overrides, "train.steps=120", "train.chunk_steps=20",
              "train.eval_every=40", "train.checkpoint_every=40", "model.hidden=[32]"]
    elsewhere = [f"paths.results={tmp_path}/a", f"paths.checkpoints={tmp_path}/a"]
    straight = run(compose([*common, *elsewhere]))

    cfg = compose(common)
    interrupted_run(cfg, at_step=80)
    resumed = run(cfg)
    assert resumed["resumed"]
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in straight["history"]]
    assert resumed["final"] == straight["final"]  # bitwise-equal numbers on CPU


def test_vmapped_seeds_equal_separate_runs():
    images, labels = synthetic_digits(300, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}

    def parts(seed):
        keys = seed_keys(seed)
        model = MLP(784, [32], 10, activation="relu", batchnorm=True, rngs=nnx.Rngs(keys["init"]))
        return model, keys

    def trainer(models, keys):
        return Trainer(models, optax.sgd(0.5), Classification(), Preprocessor([0.0], [255.0]),
                       split, {"test": split}, batch_size=20, keys=keys, eval_batch_size=128)

    seeds = (0, 1, 2)
    together = trainer(*zip(*[parts(s) for s in seeds], strict=True))
    state, history, _ = together.fit(together.initial_state, 40, chunk_steps=20, eval_every=20)
    assert np.asarray(history[-1]["test/loss"]).shape == (3,)
    for i, seed in enumerate(seeds):
        alone = trainer(*parts(seed))
        state_i, history_i, _ = alone.fit(alone.initial_state, 40, chunk_steps=20, eval_every=20)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state_i), strict=True):
            np.testing.assert_allclose(np.asarray(a)[i], b, rtol=1e-4, atol=1e-5)
        assert history[-1]["test/loss"][i] == pytest.approx(history_i[-1]["test/loss"], rel=1e-4)
    losses = history[-1]["test/loss"]
    assert len(set(np.round(losses, 6))) == 3  # the seeds really differ


def test_unrolled_chunks_compute_the_same_steps():
    a, b = make_trainer(), make_trainer()
    b.unroll = True
    state_a, hist_a, _ = a.fit(a.initial_state, 20, chunk_steps=10, eval_every=20)
    state_b, hist_b, _ = b.fit(b.initial_state, 20, chunk_steps=10, eval_every=20)
    for x, y in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert hist_a[-1]["test/loss"] == pytest.approx(hist_b[-1]["test/loss"], rel=1e-5)


class CountingProbe:
    def __init__(self, final_only):
        self.final_only = final_only
        self.name = "final" if final_only else "every"

    def __call__(self, model, eval_data, preprocess):
        return {self.name: eval_data["test"]["mask"].sum()}


def test_final_only_probes_run_once_at_the_last_evaluation():
    images, labels = synthetic_digits(100, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = seed_keys(0)
    model = MLP(784, [8], 10, activation="relu", rngs=nnx.Rngs(keys["init"]))
    trainer = Trainer(model, optax.sgd(0.1), Classification(), Preprocessor([0.0], [255.0]), split,
                      {"test": split}, batch_size=20, keys=keys, eval_batch_size=50,
                      probes=[CountingProbe(False), CountingProbe(True)])
    _, history, _ = trainer.fit(trainer.initial_state, 30, chunk_steps=10, eval_every=10)
    assert [("probe/every" in r, "probe/final" in r) for r in history] == [
        (True, False), (True, False), (True, False), (True, True)]
    assert history[-1]["probe/final"] == 100
