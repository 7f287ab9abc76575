"""PGD (repro/attacks.py) and the non-robust-feature data sets of Ilyas et al. 2019
(experiments/nonrobust_mnist)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from scipy import stats

from repro import attacks
from repro.configuration import compose
from repro.run import run


def _linear_model(key, d=20, c=4):
    w = jax.random.normal(key, (d, c))
    return lambda x: x.reshape(x.shape[0], -1) @ w


@pytest.mark.parametrize("norm, eps", [("l2", 0.5), ("linf", 0.05)])
def test_pgd_stays_in_the_ball_and_the_pixel_range(norm, eps):
    model = _linear_model(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (64, 20))
    y = jnp.zeros(64, jnp.int32)
    adv = attacks.pgd(attacks.cross_entropy(model), x, y, eps=eps, step_size=eps / 4, steps=20, norm=norm)
    delta = np.asarray(adv - x)
    size = np.sqrt((delta**2).sum(-1)) if norm == "l2" else np.abs(delta).max(-1)
    assert np.all(size <= eps * (1 + 1e-5))
    assert np.all((np.asarray(adv) >= 0.0) & (np.asarray(adv) <= 1.0))
    assert np.mean(size > 0.9 * eps) > 0.5  # it used the budget


def _linear_loss(w):
    """A per-example loss whose gradient in x is w (one row per example), whatever x."""
    return lambda x, labels: (x * w).reshape(x.shape[0], -1).sum(-1)


@pytest.mark.parametrize("norm", ["l2", "linf", "l0"])
@pytest.mark.parametrize("targeted", [True, False])
@pytest.mark.parametrize("scale", [1e-3, 3.0])
def test_one_pgd_step_from_the_clean_image_is_its_norms_steepest_step(norm, targeted, scale):
    # Images of 3 x 4 x 5 (every axis a different size), well inside [0, 1], a large budget:
    # one step moves exactly by step_size along the gradient as the norm measures it, whether the
    # gradient is smaller or larger than 1.
    w = scale * jax.random.normal(jax.random.key(0), (3, 4, 5))
    x = jnp.full((3, 4, 5), 0.5)
    adv = attacks.pgd(_linear_loss(w), x, jnp.zeros(3, jnp.int32), eps=20.0 if norm == "l0" else 10.0,
                      step_size=0.01, steps=1, norm=norm, targeted=targeted)
    g = np.asarray(w) * (-1.0 if targeted else 1.0)  # targeted: down the loss; untargeted: up
    if norm == "l2":
        move = g / np.sqrt((g**2).sum((1, 2), keepdims=True))
    elif norm == "linf":
        move = np.sign(g)
    else:  # scaled so that each example's largest coordinate moves by step_size
        move = g / np.abs(g).max((1, 2), keepdims=True)
    np.testing.assert_allclose(np.asarray(adv - x), 0.01 * move, rtol=1e-5, atol=1e-7)


def test_l0_clips_before_it_spends_its_budget_and_the_other_norms_project_before_they_clip():
    # Pixel 0 sits at the top of the range: pushing it up is undone by the clip.
    x = jnp.asarray([[1.0, 0.5, 0.5, 0.2]])
    w = jnp.asarray([[3.0, 2.0, 1.0, 0.5]])
    one = dict(step_size=1.0, steps=1, targeted=False)
    l0 = attacks.pgd(_linear_loss(w), x, jnp.zeros(1, jnp.int32), eps=1, norm="l0", **one)
    # Clipped first, the one pixel of the budget goes to the largest change that survives (pixel 1).
    np.testing.assert_allclose(np.asarray(l0 - x), [[0.0, 0.5, 0.0, 0.0]], atol=1e-7)
    # L2: the step is projected onto the ball first (radius 0.1 along w), then the image clipped.
    l2 = attacks.pgd(_linear_loss(w), x, jnp.zeros(1, jnp.int32), eps=0.1, norm="l2", **one)
    along = 0.1 * np.asarray(w) / np.linalg.norm(np.asarray(w))
    np.testing.assert_allclose(np.asarray(l2 - x), [[0.0, *along[0, 1:]]], rtol=1e-5)


@pytest.mark.parametrize("norm", ["l2", "linf", "l0"])
def test_an_example_with_no_gradient_stays_put_without_nans_beside_one_that_moves(norm):
    w = jnp.stack([jnp.zeros(6), jnp.linspace(-1.0, 1.0, 6)])  # example 0: a flat loss
    x = jnp.full((2, 6), 0.5)
    eps = 2.0 if norm == "l0" else 0.3
    adv = np.asarray(attacks.pgd(_linear_loss(w), x, jnp.zeros(2, jnp.int32), eps=eps, step_size=0.1, steps=3,
                                 norm=norm))
    assert np.all(np.isfinite(adv))
    np.testing.assert_array_equal(adv[0], np.asarray(x[0]))
    assert np.abs(adv[1] - 0.5).max() > 0.05


def test_an_l0_budget_that_is_not_a_whole_number_of_coordinates_is_refused_naming_the_range():
    delta = jnp.ones((2, 3, 4))  # 12 coordinates per example
    for eps in (2.5, 13, -1):
        with pytest.raises(ValueError, match=rf"whole number of coordinates in 0\.\.12, got {eps}"):
            attacks.project(delta, eps, "l0")
    np.testing.assert_array_equal(attacks.project(delta, 12, "l0"), delta)  # both ends are budgets
    np.testing.assert_array_equal(attacks.project(delta, 0, "l0"), jnp.zeros_like(delta))


def test_attack_split_shows_a_progress_bar_unless_told_not_to(capsys):
    model = _linear_model(jax.random.key(3))
    x, y = np.zeros((5, 20), np.float32), np.zeros(5, np.int32)
    args = {"loss": attacks.cross_entropy(model), "images": x, "labels": y, "chunk": 2, "eps": 0.5,
            "step_size": 0.1, "steps": 1}
    attacks.attack_split(desc="PGD test", progress=False, **args)
    assert "PGD test" not in capsys.readouterr().err
    attacks.attack_split(desc="PGD test", **args)
    assert "PGD test" in capsys.readouterr().err


@pytest.mark.parametrize("targeted", [True, False])
def test_l0_steps_accumulate_on_the_k_coordinates_of_largest_gradient(targeted):
    """A linear loss has the same gradient at every step, so 3 L0 steps of 0.05 inside the pixel
    range move each example's 4 coordinates of largest |w| by 0.15 along the gradient's sign."""
    w = jax.random.normal(jax.random.key(2), (2, 3, 5))
    x = jnp.full((2, 3, 5), 0.5)
    adv = attacks.pgd(_linear_loss(w), x, jnp.zeros(2, jnp.int32), eps=4, step_size=0.05, steps=3, norm="l0",
                      targeted=targeted)
    g = np.asarray(w).reshape(2, 15) * (-1.0 if targeted else 1.0)
    expected = np.zeros_like(g)
    for i, row in enumerate(g):
        top = np.argsort(-np.abs(row))[:4]
        expected[i, top] = 0.15 * row[top] / np.abs(row).max()
    np.testing.assert_allclose(np.asarray(adv - x).reshape(2, 15), expected, atol=1e-6)


def test_attack_split_traces_the_attack_once_for_a_split_whose_last_chunk_is_short(monkeypatch):
    traced, pgd = [], attacks.pgd

    def recording_pgd(loss, x, y, **kwargs):  # runs once per trace of the jitted attack
        traced.append(x.shape)
        return pgd(loss, x, y, **kwargs)

    monkeypatch.setattr(attacks, "pgd", recording_pgd)
    model = _linear_model(jax.random.key(3))
    x, y = np.zeros((5, 20), np.float32), np.zeros(5, np.int32)
    out = attacks.attack_split(attacks.cross_entropy(model), x, y, chunk=2, progress=False, eps=0.5,
                               step_size=0.1, steps=1)
    assert out.shape == (5, 20) and traced == [(2, 20)]


def test_the_attacked_model_sees_pixels_in_0_255_units():
    from repro.data.transforms import Normalize, Transforms

    pixels = Transforms([Normalize([0.0], [255.0])])  # what the runs' evaluation transforms undo
    logits = attacks.unit_range_logits(lambda image, train=False: image, pixels)
    x = jnp.linspace(0.0, 1.0, 12).reshape(2, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(logits(x)), np.asarray(x), rtol=1e-6)
    # the attack sees the evaluation path: no augmentation in the transforms, no dropout in the model
    seen = []
    transforms = lambda batch, train: seen.append(("transforms", train)) or batch  # noqa: E731
    model = lambda image, train: seen.append(("model", train)) or image  # noqa: E731
    np.testing.assert_array_equal(attacks.unit_range_logits(model, transforms)(x), x * 255.0)
    assert seen == [("transforms", False), ("model", False)]


def test_targeted_pgd_reaches_its_targets_on_a_trained_model():
    # A linear classifier trained on 4 Gaussian blobs in 20-d (~99% accurate); targeted L2 PGD with
    # eps 3.0 moves 95%+ of the points to their target class (measured: 100%).
    key = jax.random.split(jax.random.key(2), 3)
    centers = 0.5 + 0.2 * jax.random.normal(key[0], (4, 20))
    y = jax.random.randint(key[1], (512,), 0, 4)
    x = jnp.clip(centers[y] + 0.05 * jax.random.normal(key[2], (512, 20)), 0, 1)
    w = jnp.zeros((20, 4))
    for _ in range(300):
        w = w - 2.0 * jax.grad(lambda w: optax.softmax_cross_entropy_with_integer_labels(x @ w, y).mean())(w)
    model = lambda v: v @ w  # noqa: E731
    assert float((jnp.argmax(model(x), -1) == y).mean()) > 0.95
    targets = jnp.asarray(attacks.deterministic_targets(np.asarray(y), 4))
    adv = attacks.pgd(attacks.cross_entropy(model), x, targets, eps=3.0, step_size=0.2, steps=50)
    assert float((jnp.argmax(model(adv), -1) == targets).mean()) > 0.95


def test_attack_split_matches_one_batch_and_pads_the_last_chunk():
    model = _linear_model(jax.random.key(3))
    x = np.asarray(jax.random.uniform(jax.random.key(4), (250, 20)))
    y = np.asarray(jax.random.randint(jax.random.key(5), (250,), 0, 4))
    args = {"eps": 0.5, "step_size": 0.1, "steps": 10}
    chunked = attacks.attack_split(attacks.cross_entropy(model), x, y, chunk=100, progress=False, **args)
    whole = np.asarray(attacks.pgd(attacks.cross_entropy(model), jnp.asarray(x), jnp.asarray(y), **args))
    assert chunked.shape == (250, 20)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_relabelling_det_is_next_class_and_rand_is_uniform_and_independent():
    y = np.random.default_rng(0).integers(0, 10, 20000)
    np.testing.assert_array_equal(attacks.deterministic_targets(y, 10), (y + 1) % 10)
    t = attacks.random_targets(7, len(y), 10)
    assert stats.chisquare(np.bincount(t, minlength=10)).pvalue > 0.01  # uniform
    table = np.histogram2d(y, t, bins=10)[0]
    assert stats.chi2_contingency(table).pvalue > 0.01  # independent of y
    np.testing.assert_array_equal(t, attacks.random_targets(7, len(y), 10))  # fixed by its seed


def _derive(target, source):
    return ("data.derive={_target_:experiments.nonrobust_mnist.construct.NonRobustFeatures,"
            f"source:[{','.join(repr(s) for s in source)}],target:{target},eps:2.0,step_size:0.2,"
            "steps:10,chunk:256,progress:false}")


def test_the_construction_end_to_end_on_a_tiny_mirror_is_deterministic(tiny_data_dir, tmp_path):
    small = ["train.steps=100", "train.chunk_steps=50", "train.eval_every=100", "model.k=1",
             "probes.0.num=64", "probes.0.steps=10"]
    common = ["experiment=nonrobust_mnist", f"data.dir={tiny_data_dir}", "data.allow_partial=true",
              "train.checkpoint_every=0", "progress=false", "logger.mode=disabled",
              f"paths.results={tmp_path}/results", *small]
    standard = run(compose(common))
    assert 0.0 <= standard["final"]["probe/attack_target_rate"] <= 1.0
    source = ["data.allow_partial=true", *small]
    det = run(compose([*common, _derive("det", source)]))
    assert det["tag"] == "det" and "D_det" in det["data_source"] and "standard" in det["data_source"]
    assert any(name.endswith(".weights.npz") for name in det["data"]["sha256"])  # names its source model
    again = run(compose([*common, _derive("det", source), "results.if_exists=overwrite"]))
    assert again["history"] == det["history"]  # same source model and seed: same data, same run
    with pytest.raises(Exception, match="Train that first"):
        run(compose([*common, _derive("rand", ["train.steps=7"]), "seed=1"]))


def test_the_derived_train_split_holds_the_targets_as_labels(tiny_data_dir, tmp_path):
    from repro.run import dataset_for

    small = ["train.steps=50", "train.chunk_steps=50", "train.eval_every=50", "probes=[]"]
    common = ["experiment=nonrobust_mnist", f"data.dir={tiny_data_dir}", "data.allow_partial=true",
              "train.checkpoint_every=0", "progress=false", "logger.mode=disabled",
              f"paths.results={tmp_path}/results", *small]
    run(compose(common))
    base = dataset_for(compose(common))
    derived = dataset_for(compose([*common, _derive("det", ["data.allow_partial=true", *small])]))
    np.testing.assert_array_equal(derived.split("train")["label"], (base.split("train")["label"] + 1) % 10)
    moved = derived.split("train")["image"].astype(np.float32) - base.split("train")["image"]
    norms = np.sqrt(((moved / 255.0) ** 2).reshape(len(moved), -1).sum(-1))
    assert np.all(norms <= 2.0 + 1e-3) and norms.mean() > 0.1
    np.testing.assert_array_equal(derived.split("test")["image"], base.split("test")["image"])
    json.dumps(derived.identity())  # recordable in a result file


def test_cifar10_configuration_shapes_on_the_subset():
    from conftest import REAL_DATA
    from hydra.utils import instantiate

    from repro.data import load_dataset
    from repro.data.transforms import Normalize, Transforms

    if not (REAL_DATA / "cifar10-subset").is_dir():
        pytest.skip("no CIFAR-10 subset")
    cfg = compose(["experiment=nonrobust_cifar10", f"data.dir={REAL_DATA}", "model.depth=8"])
    images = load_dataset("cifar10", str(REAL_DATA)).split("test")["image"][:4].astype(np.float32) / 255.0
    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    pixels = Transforms([Normalize(cfg.data.mean, cfg.data.std)])
    loss = attacks.cross_entropy(attacks.unit_range_logits(model, pixels))
    targets = attacks.deterministic_targets(np.zeros(4, np.int32), 10)
    adv = attacks.pgd(loss, jnp.asarray(images), jnp.asarray(targets), eps=0.5, step_size=0.1, steps=3)
    assert adv.shape == (4, 32, 32, 3)
    assert np.all(np.sqrt(((np.asarray(adv) - images) ** 2).reshape(4, -1).sum(-1)) <= 0.5 + 1e-5)
