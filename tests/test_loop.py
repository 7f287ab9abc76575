import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import interrupted_run, synthetic_digits
from flax import nnx

from repro.configuration import compose
from repro.data.transforms import Normalize, Transforms
from repro.loop import NonFiniteLossError, Trainer, seed_keys
from repro.models.mlp import MLP
from repro.objectives import Classification
from repro.run import run

PIXELS = Transforms([Normalize([0.0], [255.0])])


def make_trainer(lr=0.5, batchnorm=True, seed=0):
    images, labels = synthetic_digits(300, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = seed_keys(seed)
    model = MLP(784, [32], 10, activation="relu", batchnorm=batchnorm, rngs=nnx.Rngs(keys["init"]))
    return Trainer(model, optax.sgd(lr), Classification(), PIXELS, split,
                   {"test": split}, batch_size=20, keys=keys, eval_batch_size=128)


def test_loss_falls_on_a_learnable_problem():
    trainer = make_trainer()
    assert trainer.compile_seconds == 0.0  # nothing compiled before the first chunk
    t0 = time.perf_counter()
    _, history, timing = trainer.fit(trainer.initial_state, 60, chunk_steps=20, eval_every=20)
    wall = time.perf_counter() - t0
    assert history[0]["test/loss"] > 2.0
    assert history[-1]["test/loss"] < 0.5 * history[0]["test/loss"]
    assert history[-1]["test/accuracy"] > 0.9
    assert timing["steps"] == 60 and trainer.compile_seconds > 0
    # The parts of the fit's time (compile apart from training): each positive, together within its wall time.
    assert timing["train_seconds"] > 0 and timing["eval_seconds"] > 0
    assert timing["train_seconds"] + timing["eval_seconds"] + trainer.compile_seconds <= wall


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


class _NanFrom(nnx.Module):
    """A model whose loss turns NaN from step `when` on (its own, so vmapped seeds differ)."""

    def __init__(self, when: float):
        self.when, self.w = nnx.Param(jnp.float32(when)), nnx.Param(jnp.ones(3))


class _NanAtStep:
    needs = ("step",)

    def train_loss(self, model, batch, rngs=None, step=None):
        return jnp.where(step >= model.when[...], jnp.nan, (model.w[...] ** 2).sum()), {}


def _nan_trainer(whens, seeds=None):
    data = {"image": np.zeros((8, 3), np.float32), "label": np.zeros(8, np.int32)}
    models = [_NanFrom(w) for w in whens]
    keys = [seed_keys(i) for i in range(len(whens))]
    return Trainer(models if seeds else models[0], optax.sgd(0.0), _NanAtStep(),
                   lambda batch, key=None, train=False: batch, data, {}, batch_size=4,
                   keys=keys if seeds else keys[0], seeds=seeds)


def test_a_nan_loss_names_its_first_step_and_only_the_seeds_that_had_one():
    trainer = _nan_trainer([23.0])
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf at step 23\. Lower"):
        trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=10)
    # Vmapped: seed 9 turns at 23 and seed 7 at 25, in the same chunk; seed 8 never. The first
    # step of any seed is named, and exactly the seeds that had one.
    trainer = _nan_trainer([25.0, 1e9, 23.0], seeds=[7, 8, 9])
    named = r"at step 23 for seed\(s\) \[7, 9\] of the seeds \[7, 8, 9\]"
    with pytest.raises(NonFiniteLossError, match=named):
        trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=10)
    # A chunk with no NaN passes: seed 7 alone turns at step 35, in the last chunk.
    trainer = _nan_trainer([35.0, 1e9, 1e9], seeds=[7, 8, 9])
    with pytest.raises(NonFiniteLossError, match=r"at step 35 for seed\(s\) \[7\] of"):
        trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=10)
    # From the very first step (step 0 is a step like any other, not "no NaN"):
    trainer = _nan_trainer([0.0])
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf at step 0\. Lower"):
        trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=10)
    trainer = _nan_trainer([0.0, 1e9, 3.0], seeds=[7, 8, 9])
    with pytest.raises(NonFiniteLossError, match=r"at step 0 for seed\(s\) \[7, 9\] of"):
        trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=10)
    trainer = _nan_trainer([40.0])  # the first step past the run: no error
    _, history, _ = trainer.fit(trainer.initial_state, 40, chunk_steps=10, eval_every=10)
    assert [r["step"] for r in history] == [0, 10, 20, 30, 40]


class _TwoParts(nnx.Module):
    def __init__(self):
        self.a, self.b = nnx.Param(jnp.zeros(2)), nnx.Param(jnp.zeros(3))


class _Alternating:
    """Part a for steps 0-2, then b for 1 step and a for 2, in turn (like SeqGAN's phases)."""

    needs, phases = ("phase",), ("a", "b")

    def phase(self, step):
        if step < 3:
            return "a", 3 - step
        position = (step - 3) % 3
        return ("b", 1) if position == 0 else ("a", 3 - position)

    def train_loss(self, model, batch, rngs=None, phase=None):
        return model.a[...].sum() + model.b[...].sum(), {}  # every gradient is 1


def test_phases_train_only_their_part_and_a_chunk_never_spans_two():
    from repro.optim import grouped

    data = {"image": np.zeros((8, 3), np.float32), "label": np.zeros(8, np.int32)}
    trainer = Trainer(_TwoParts(), grouped({"a": optax.sgd(1.0), "b": optax.sgd(1.0)}), _Alternating(),
                      lambda batch, key=None, train=False: batch, data, {}, batch_size=4, keys=seed_keys(0))
    state, history, _ = trainer.fit(trainer.initial_state, 9, chunk_steps=4, eval_every=4)
    # a at steps 0-2, 4-5, 7-8; b at 3 and 6: a chunk ends at each switch and at each multiple of 4.
    assert [r["step"] for r in history] == [0, 3, 4, 6, 7, 8, 9]
    np.testing.assert_array_equal(state["params"]["a"][...], np.full(2, -7.0))
    np.testing.assert_array_equal(state["params"]["b"][...], np.full(3, -2.0))


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
        return Trainer(models, optax.sgd(0.5), Classification(), PIXELS,
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
    # A stack of one seed (train.seeds=[s] vmapped) is that seed's run with a seed axis of 1.
    one = trainer(*zip(parts(seeds[-1]), strict=True))
    _, history_one, _ = one.fit(one.initial_state, 40, chunk_steps=20, eval_every=20)
    assert np.asarray(history_one[-1]["test/loss"]).shape == (1,)
    assert history_one[-1]["test/loss"][0] == pytest.approx(history_i[-1]["test/loss"], rel=1e-4)


class CountingProbe:
    def __init__(self, final_only):
        self.final_only = final_only
        self.name = "final" if final_only else "every"

    def __call__(self, model, eval_data, transforms):
        return {self.name: eval_data["test"]["batch_mask"].sum()}


def test_final_only_probes_run_once_at_the_last_evaluation():
    images, labels = synthetic_digits(100, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = seed_keys(0)
    model = MLP(784, [8], 10, activation="relu", rngs=nnx.Rngs(keys["init"]))
    trainer = Trainer(model, optax.sgd(0.1), Classification(), PIXELS, split,
                      {"test": split}, batch_size=20, keys=keys, eval_batch_size=50,
                      probes=[CountingProbe(False), CountingProbe(True)])
    _, history, _ = trainer.fit(trainer.initial_state, 30, chunk_steps=10, eval_every=10)
    assert [("probe/every" in r, "probe/final" in r) for r in history] == [
        (True, False), (True, False), (True, False), (True, True)]
    assert history[-1]["probe/final"] == 100


class ArraysProbe:
    """Sums arrays it holds; records whether it was given them as traced arguments."""
    needs = ("arrays",)

    def __init__(self, n):
        self.arrays = {"x": np.arange(n, dtype=np.float32)}
        self.traced = []

    def __call__(self, model, eval_data, transforms, arrays):
        self.traced.append(isinstance(arrays["x"], jax.core.Tracer))
        return {"sum": arrays["x"].sum()}


def test_a_probes_own_arrays_enter_its_jit_as_arguments_not_constants():
    images, labels = synthetic_digits(40, 0)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = seed_keys(0)
    model = MLP(784, [8], 10, activation="relu", rngs=nnx.Rngs(keys["init"]))
    probe = ArraysProbe(1000)
    trainer = Trainer(model, optax.sgd(0.1), Classification(), PIXELS, split,
                      {"test": split}, batch_size=20, keys=keys, eval_batch_size=20, probes=[probe])
    _, history, _ = trainer.fit(trainer.initial_state, 4, chunk_steps=2, eval_every=2)
    assert [r["probe/sum"] for r in history] == [499500.0] * 3
    assert probe.traced == [True]  # traced once, its arrays an argument of the compiled program


# ----- direct value checks of the step, the evaluation and resume (each catches a planted bug)

def _one_image_split(n):
    """n copies of one image and label: any batch order gives the same batch."""
    images, labels = synthetic_digits(1, 0)
    return {"image": np.repeat(images[..., None], n, 0), "label": np.repeat(labels, n).astype(np.int32)}


def test_dropout_noise_is_redrawn_every_step():
    """With lr = 0 and a batch that is the same every step, only the dropout draw can change
    the training loss between steps."""
    from repro.models.vardrop import DropoutMLP

    split = _one_image_split(32)
    keys = seed_keys(0)
    model = DropoutMLP(784, [64], 10, dropout="binary", num_layers=1, rngs=nnx.Rngs(keys["init"]))
    trainer = Trainer(model, optax.sgd(0.0), Classification(), PIXELS, split,
                      {"test": split}, batch_size=32, keys=keys, eval_batch_size=32)
    _, history, _ = trainer.fit(trainer.initial_state, 4, chunk_steps=1, eval_every=4)
    losses = [r["train/loss"] for r in history[1:]]
    assert len(set(losses)) == 4, losses


def _plain_mlp_trainer(n, lr, batch_size, eval_batch_size):
    """n synthetic digits and an SGD trainer of a small MLP without BN or dropout."""
    images, labels = synthetic_digits(n, 3)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}
    keys = seed_keys(0)
    model = MLP(784, [16], 10, activation="relu", batchnorm=False, rngs=nnx.Rngs(keys["init"]))
    return split, Trainer(model, optax.sgd(lr), Classification(), PIXELS, split,
                          {"test": split}, batch_size=batch_size, keys=keys,
                          eval_batch_size=eval_batch_size)


def test_one_sgd_step_applies_minus_lr_times_the_gradient():
    """Full-batch step without BN or dropout: the update is exactly -lr * gradient of the mean
    loss (a dropped or doubled update fails)."""
    split, trainer = _plain_mlp_trainer(40, lr=0.3, batch_size=40, eval_batch_size=40)
    before = jax.tree.map(np.array, trainer.initial_state["params"])
    batch = PIXELS(split)

    def loss(params):
        m = nnx.merge(trainer.graphdef, params, trainer.initial_state["rest"])
        return Classification().train_loss(m, batch, rngs=nnx.Rngs(0))[0]

    grads = jax.grad(loss)(trainer.initial_state["params"])
    state, _, _ = trainer.fit(trainer.initial_state, 1, chunk_steps=1, eval_every=1)
    assert int(state["step"]) == 1
    for b, g, a in zip(jax.tree.leaves(before), jax.tree.leaves(grads), jax.tree.leaves(state["params"]),
                       strict=True):
        np.testing.assert_allclose(a, b - 0.3 * np.asarray(g), rtol=1e-5, atol=1e-7)


def test_evaluation_counts_only_real_examples():
    """130 examples in eval batches of 50 (20 padded): the metrics equal a direct computation
    over the 130 real examples."""
    split, trainer = _plain_mlp_trainer(130, lr=0.1, batch_size=10, eval_batch_size=50)
    got = trainer.evaluate(trainer.initial_state)
    m = nnx.merge(trainer.graphdef, trainer.initial_state["params"], trainer.initial_state["rest"])
    direct = Classification().per_example(m, PIXELS(split), train=False)
    for k, v in direct.items():
        assert got[f"test/{k}"] == pytest.approx(float(np.mean(v)), rel=1e-5), k


def test_batchnorm_evaluates_with_population_statistics():
    """At evaluation an example's output must not depend on the other examples in its batch."""
    images, _ = synthetic_digits(64, 2)
    x = PIXELS({"image": images[..., None]})["image"]
    model = MLP(784, [16], 10, activation="sigmoid", batchnorm=True, rngs=nnx.Rngs(0))
    model(x, train=True)  # move the running statistics off their initial values
    together = np.asarray(model(x, train=False))
    alone = np.concatenate([np.asarray(model(x[i : i + 1], train=False)) for i in range(4)])
    np.testing.assert_allclose(together[:4], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optim", [["optim.momentum=0.9"], ["optim=adam", "optim.lr=0.003"]],
                         ids=["momentum", "adam"])
def test_resume_restores_the_optimizer_state(run_overrides, tmp_path, optim):
    """Momentum and Adam carry state between steps: a resume that restored a fresh optimizer
    state would end elsewhere than the uninterrupted run."""
    common = ["experiment=debug", *run_overrides, *optim, "train.steps=60", "train.chunk_steps=20",
              "train.eval_every=60", "train.checkpoint_every=20", "model.hidden=[16]"]
    straight = run(compose([*common, f"paths.results={tmp_path}/a", f"paths.checkpoints={tmp_path}/a"]))
    cfg = compose(common)
    interrupted_run(cfg, at_step=40)
    resumed = run(cfg)
    assert resumed["resumed"]
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in straight["history"]]
    assert resumed["final"] == straight["final"]


@pytest.mark.parametrize("stop_at", [40, 60], ids=["mid-run", "at-the-last-step"])
def test_a_resumed_runs_timing_covers_every_part(run_overrides, stop_at):
    """Steps and seconds add up over the interrupted part and the resumed one, and each part
    is listed with its step range, also when the run was stopped after its last checkpoint."""
    cfg = compose(["experiment=debug", *run_overrides, "train.steps=60", "train.chunk_steps=20",
                   "train.eval_every=20", "train.checkpoint_every=20", "model.hidden=[8]"])
    interrupted_run(cfg, at_step=stop_at)
    timing = run(cfg)["timing"]
    assert timing["steps"] == 60 and timing["steps_per_second"] > 0
    assert [(p["from_step"], p["to_step"]) for p in timing["parts"]] == [(0, stop_at), (stop_at, 60)]
    assert timing["train_seconds"] > 0 and timing["compile_seconds"] > 0
    assert all(p["started_utc"] <= p["stopped_utc"] for p in timing["parts"])


def test_a_schedule_off_its_boundaries_pins_chunk_lengths_step_numbers_and_the_last_evaluation():
    """25 steps in chunks of 10, evaluated every 20: chunks of 10, 10, 5; evaluations at 0, 20 and
    the end (25), never at 10. Resumed at step 7 (another chunk length before): a 3-step chunk
    back onto the boundary, then 10 and 5. Callbacks get each boundary's step, record and state."""
    def recorded(trainer, lengths):
        real = trainer.chunk_fn
        trainer.chunk_fn = lambda state, num_steps, phase=None: (lengths.append(num_steps),
                                                                 real(state, num_steps, phase))[1]
        return trainer

    def called(steps):  # a callback (checkpoints, loggers) noting the step and record it is given
        return lambda step, state, record: steps.append((step, record["step"], int(np.max(state["step"]))))

    lengths, calls = [], []
    trainer = recorded(make_trainer(), lengths)
    state, history, timing = trainer.fit(trainer.initial_state, 25, chunk_steps=10, eval_every=20,
                                         callbacks=[called(calls)])
    assert lengths == [10, 10, 5] and timing["steps"] == 25
    assert [r["step"] for r in history] == [0, 10, 20, 25]
    assert [r["step"] for r in history if "test/loss" in r] == [0, 20, 25]
    assert calls == [(0, 0, 0), (10, 10, 10), (20, 20, 20), (25, 25, 25)]
    assert int(np.max(state["step"])) == 25
    # Nothing left to train: no step, no evaluation, no callback, and the timing is this call's (zero).
    timing = {"train_seconds": 5.0, "eval_seconds": 5.0, "steps": 5}
    _, again, _ = trainer.fit(state, 25, chunk_steps=10, eval_every=20, history=list(history),
                              callbacks=[called(calls)], timing=timing)
    assert again == history and len(calls) == 4 and lengths == [10, 10, 5]
    assert timing == {"train_seconds": 0.0, "eval_seconds": 0.0, "steps": 0}

    lengths, calls = [], []
    resumed = recorded(make_trainer(), lengths)
    partial, history, _ = resumed.fit(resumed.initial_state, 7, chunk_steps=7, eval_every=7)
    lengths.clear()
    _, history, timing = resumed.fit(partial, 25, chunk_steps=10, eval_every=20, history=history,
                                     callbacks=[called(calls)])
    assert lengths == [3, 10, 5] and timing["steps"] == 18
    assert [r["step"] for r in history] == [0, 7, 10, 20, 25]
    assert [r["step"] for r in history if "test/loss" in r] == [0, 7, 20, 25]
    assert calls == [(10, 10, 10), (20, 20, 20), (25, 25, 25)]

    # Started mid-run without the earlier history: no step-0 evaluation of a state at step 7.
    calls, fresh = [], make_trainer()
    partial, _, _ = fresh.fit(fresh.initial_state, 7, chunk_steps=7, eval_every=7)  # the last one was donated
    _, history, _ = fresh.fit(partial, 25, chunk_steps=10, eval_every=20, callbacks=[called(calls)])
    assert [r["step"] for r in history] == [10, 20, 25]
    assert calls == [(10, 10, 10), (20, 20, 20), (25, 25, 25)]


def test_evaluation_sees_no_training_randomness_neither_augmentation_nor_dropout():
    """The evaluation of a dropout net trained with random crops is deterministic and equals the
    evaluation of the same parameters through transforms without the augmentation: crops and
    dropout noise are training-only. (A leak of either changes the value, not only the speed.)"""
    from repro.data.transforms import RandomCropFlip
    from repro.models.vardrop import DropoutMLP

    images, labels = synthetic_digits(120, 5)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}

    def trainer(transforms):
        keys = seed_keys(0)
        model = DropoutMLP(784, [32], 10, dropout="binary", num_layers=1, rngs=nnx.Rngs(keys["init"]))
        return Trainer(model, optax.sgd(0.1), Classification(), transforms, split, {"test": split},
                       batch_size=20, keys=keys, eval_batch_size=50)

    augmented = trainer(Transforms([Normalize([0.0], [255.0]), RandomCropFlip(pad=4)]))
    state, _, _ = augmented.fit(augmented.initial_state, 6, chunk_steps=3, eval_every=3)
    first, again = augmented.evaluate(state), augmented.evaluate(state)
    plain = trainer(PIXELS).evaluate(state)
    assert {"test/loss", "test/accuracy"} <= set(first)
    for name in first:
        assert first[name] == again[name] == plain[name], name
    # ... and equals the deterministic model (train=False) on the normalized images, by hand
    model = nnx.merge(augmented.graphdef, state["params"], state["rest"])
    batch = {"image": split["image"] / 255.0, "label": split["label"]}
    by_hand = Classification().per_example(model, batch, train=False)
    np.testing.assert_allclose(first["test/loss"], np.mean(by_hand["loss"]), rtol=1e-5)


class _StreamRecorder(Classification):
    """Classification whose training metrics also report what each random stream gave the step:
    a dropout draw, the batch's labels (data order) and its augmented pixels."""

    def train_loss(self, model, batch, *, rngs=None):
        loss, metrics = super().train_loss(model, batch, rngs=None)
        labels = batch["label"].astype(np.float32)
        image = batch["image"][..., 0]
        # A crop shifted off centre leaves a border line of padding zeros; the images' noise never does.
        border_zero = jnp.stack([jnp.all(line == 0, axis=-1) for line in
                                 (image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1])]).any(0)
        metrics.update(dropout_draw=jax.random.uniform(rngs.dropout()),
                       data_order=(labels * np.arange(1, labels.shape[0] + 1)).sum(),
                       augment_pixels=batch["image"].sum(), shifted_share=border_zero.mean())
        return loss, metrics


def test_every_random_stream_changes_from_step_to_step_and_is_reproducible():
    """Each purpose of KEY_PURPOSES, enumerated: the init differs between seeds; the data order,
    the augmentation and the dropout noise differ at every step of a run and repeat exactly in a
    second run of the same seed (and differ for another seed). The probes' stream is folded with
    each probe's index (tests/test_seeds.py: Draws)."""
    from repro.data.transforms import RandomCropFlip
    from repro.loop import KEY_PURPOSES

    assert KEY_PURPOSES == ("init", "data", "dropout", "augment", "probe")  # a new stream needs a line here
    images, labels = synthetic_digits(200, 7)
    split = {"image": images[..., None], "label": labels.astype(np.int32)}

    def streams(seed):
        keys = seed_keys(seed)
        model = MLP(784, [16], 10, activation="relu", rngs=nnx.Rngs(keys["init"]))
        init = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))])
        trainer = Trainer(model, optax.sgd(0.0), _StreamRecorder(),
                          Transforms([Normalize([0.0], [255.0]), RandomCropFlip(pad=2)]), split,
                          {"test": split}, batch_size=20, keys=keys, eval_batch_size=100)
        _, history, _ = trainer.fit(trainer.initial_state, 4, chunk_steps=1, eval_every=4)
        per_step = {name: [r[f"train/{name}"] for r in history[1:]]
                    for name in ("dropout_draw", "data_order", "augment_pixels", "shifted_share")}
        return init, per_step

    init, first = streams(0)
    init_again, again = streams(0)
    other_init, other = streams(1)
    np.testing.assert_array_equal(init, init_again)
    assert not np.array_equal(init, other_init)
    # Training batches are augmented: most of them shifted (24 of the 25 offsets of pad=2 are).
    assert all(share > 0.5 for share in first.pop("shifted_share")), first
    for name, values in first.items():
        assert len(set(values)) == len(values) == 4, (name, values)  # new at every step
        assert values == again[name], name                            # the same seed repeats
        assert values != other[name], name                            # another seed draws anew
