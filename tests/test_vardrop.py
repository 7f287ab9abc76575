"""Variational dropout (Kingma et al. 2015): KL fit, local reparameterization, gradient
variance, alpha cap, short real-MNIST runs of every method, CIFAR-10 convnet shapes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REAL_DATA, needs_real_mnist
from flax import nnx
from hydra.utils import instantiate

from experiments.vardrop_mnist.gradient_variance import GradientVariance, weight_gradient_variance
from experiments.vardrop_mnist.probes import AlphaBalance
from repro.configuration import compose
from repro.data import load_dataset
from repro.evaluation import pad_for_eval
from repro.loop import seed_keys
from repro.models.vardrop import METHODS, DropoutMLP, NoisyDense, _sample_b, neg_kl, variance_weights
from repro.run import build_trainer, run


def assert_gaussian_moments(samples, mean, var):
    """Draws along axis 0 have this mean (within 5 standard errors of the largest variance) and
    variance (within 5%: its standard error is sqrt(2 / draws), 1% at 20,000 draws)."""
    draws = samples.shape[0]
    np.testing.assert_allclose(samples.mean(0), mean, atol=float(5 * jnp.sqrt(var.max() / draws)))
    np.testing.assert_allclose(samples.var(0), var, rtol=0.05)


def test_kl_approximation_matches_monte_carlo_up_to_a_constant():
    # For q = N(theta, alpha theta^2) and the log-uniform prior,
    # -KL = const + 0.5 log alpha - E log|1 + sqrt(alpha) eps|; compare differences to alpha=1.
    eps = jax.random.normal(jax.random.key(0), (1_000_000,))
    alphas = jnp.array([0.05, 0.1, 0.25, 0.5, 0.75, 1.0])
    mc = jnp.array([0.5 * jnp.log(a) - jnp.log(jnp.abs(1 + jnp.sqrt(a) * eps)).mean() for a in alphas])
    fit = neg_kl(jnp.log(alphas))
    # The cubic fit is good to ~0.01 nats on [0.05, 1] (measured 0.010 at 0.05); MC s.e. ~0.001.
    np.testing.assert_allclose(fit - fit[-1], mc - mc[-1], atol=0.015)


def test_kl_approximation_is_the_papers_equation():
    """Eq. (15) of Kingma et al. 2015 with its printed constants, to ~1e-6: the Monte Carlo check
    above is too loose to see a constant changed in its third digit."""
    for alpha in (0.05, 0.2, 0.5, 0.9, 1.0):
        paper = 0.5 * np.log(alpha) + 1.16145124 * alpha - 1.50204118 * alpha**2 + 0.58629921 * alpha**3
        assert float(neg_kl(jnp.log(jnp.float32(alpha)))) == pytest.approx(paper, abs=1e-6), alpha


def test_local_reparameterization_matches_explicit_weight_sampling():
    k = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(k[0], (3, 20))
    w = jax.random.normal(k[1], (20, 6)) * 0.3
    alpha = jax.random.uniform(k[2], (20, 6), minval=0.1, maxval=1.0)
    draws = 20_000
    keys = jax.random.split(k[3], draws)
    local = jax.jit(jax.vmap(lambda kk: _sample_b(x, w, alpha, kk, "local")))(keys)
    weights = jax.jit(jax.vmap(lambda kk: _sample_b(x, w, alpha, kk, "shared")))(keys)
    per_example = jax.jit(jax.vmap(lambda kk: _sample_b(x, w, alpha, kk, "per_example")))(keys)
    mean, var = x @ w, (x * x) @ (alpha * w * w)
    for samples in (local, weights, per_example):
        assert_gaussian_moments(samples, mean, var)


def test_variance_weights_gradient_equals_autodiff():
    k = jax.random.split(jax.random.key(5), 3)
    w, log_alpha = jax.random.normal(k[0], (7, 5)), -jax.random.uniform(k[1], (7, 5), maxval=3.0)
    g = jax.random.normal(k[2], (7, 5))

    def plain(w, la):
        return jnp.exp(la) * w * w

    np.testing.assert_allclose(variance_weights(w, log_alpha), plain(w, log_alpha), rtol=1e-6)
    ours = jax.vjp(variance_weights, w, log_alpha)[1](g)
    ref = jax.vjp(plain, w, log_alpha)[1](g)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_learned_alpha_gets_a_gradient_at_and_below_the_cap():
    layer = NoisyDense(4, 3, "variational_b", p=0.5, rngs=nnx.Rngs(0))  # log alpha starts at 0
    layer.log_alpha[...] = layer.log_alpha[...].at[0].set(-1.0)
    graphdef, params = nnx.split(layer, nnx.Param)
    grads = jax.grad(lambda p: nnx.merge(graphdef, p).kl())(params)
    assert np.all(np.asarray(grads["log_alpha"][...]) != 0.0)  # no clip in the forward pass


def test_projection_holds_alpha_at_most_one_and_lets_it_leave_the_cap():
    layer = NoisyDense(4, 3, "variational_a", p=0.5, rngs=nnx.Rngs(0))  # 4 log alphas, all at 0
    layer.log_alpha[...] = jnp.array([0.3, 0.0, 0.0, -0.5])  # one past the cap, as after a step
    layer.project()
    np.testing.assert_array_equal(np.asarray(layer.log_alpha[...]), [0.0, 0.0, 0.0, -0.5])
    fixed = NoisyDense(4, 3, "gaussian_a", p=0.5, rngs=nnx.Rngs(0))
    fixed.project()  # nothing learned, nothing to do
    assert fixed.log_alpha is None


def test_the_loop_projects_after_every_step_and_an_alpha_at_the_cap_moves_down_when_pushed():
    # One Adam step of a loss that pulls unit 0's alpha down and pushes unit 1's up, both from the cap.
    from repro.loop import Trainer

    class Pull:
        def train_loss(self, model, batch, rngs=None):
            la = model.dense[0].log_alpha[...]
            return la[0] - la[1], {}

        def per_example(self, model, batch, train, rngs=None):
            return {"loss": jnp.zeros(batch["image"].shape[0])}

    model = DropoutMLP(3, 4, 2, dropout="variational_a", num_layers=1, input_p=0.5, rngs=nnx.Rngs(0))
    data = {"image": np.zeros((8, 3), np.float32), "label": np.zeros(8, np.int32)}
    trainer = Trainer(model, optax.adam(0.1), Pull(), lambda batch, key=None, train=False: batch, data, {},
                      batch_size=4, keys=seed_keys(0))
    state = trainer.chunk_fn(trainer.initial_state, 1)(trainer.initial_state, trainer.train_data,
                                                        trainer.keys)[0]
    log_alpha = np.asarray(state["params"]["dense"][0]["log_alpha"][...])
    assert log_alpha[0] == pytest.approx(-0.1, abs=1e-3)  # adam's first step is lr * sign(grad)
    assert log_alpha[1] == 0.0  # pushed past the cap, projected back onto it
    assert np.all(log_alpha[2:] == 0.0)


def _toy_data(n=1000, d=30):
    k1, k2 = jax.random.split(jax.random.key(2))
    x = jax.random.normal(k1, (n, d))
    y = (x[:, :10].argmax(-1)).astype(jnp.int32)
    return x, y


def test_local_reparameterization_has_lower_gradient_variance_than_one_weight_sample():
    x, y = _toy_data()
    model = DropoutMLP(30, 32, 10, dropout="variational_b", num_layers=2, rngs=nnx.Rngs(0))
    var = {}
    for est in ("local", "per_example", "shared"):
        measure = jax.jit(lambda key, est=est: weight_gradient_variance(model, x, y, key, est, 48, 100, 1000))
        var[est] = jax.device_get(measure(jax.random.key(3)))
    for where in ("top", "bottom"):
        assert var["local"][where] < var["shared"][where]
        assert var["local"][where] < var["per_example"][where]


def test_gradient_variance_probe_reports_every_estimator_and_ignores_eval_padding():
    x, y = _toy_data(n=250)
    split = pad_for_eval({"image": np.asarray(x), "label": np.asarray(y)}, 100)  # 50 padded rows
    model = DropoutMLP(30, 16, 10, dropout="variational_b", num_layers=1, rngs=nnx.Rngs(0))
    probe = GradientVariance(draws=4, batch_size=20, num_train=1000)
    untransformed = lambda batch, train=False: batch  # noqa: E731
    out = jax.device_get(jax.jit(lambda d: probe(model, d, untransformed))({"validation": split}))
    assert set(out) == {f"gradvar_{e}_{w}" for e in ("local", "per_example", "shared", "none")
                        for w in ("top", "bottom")}
    assert all(np.isfinite(v) and v > 0 for v in out.values())


def test_the_penalty_is_the_kl_summed_over_every_learned_alpha_divided_by_n():
    # The per-example bound: mean cross-entropy + KL / N; A2 scales the KL by 1/3. Layers 5-4-3-2.
    for method, scale in (("variational_b", 1.0), ("variational_a2", 1.0 / 3.0)):
        model = DropoutMLP(5, [4, 3], 2, dropout=method, num_train=700, rngs=nnx.Rngs(0))
        for i, layer in enumerate(model.dense):
            layer.log_alpha[...] = jnp.full(layer.log_alpha.shape, -0.1 * (i + 1))
        sizes = [(5, 4), (4, 3), (3, 2)]
        counts = [a * b if method == "variational_b" else a for a, b in sizes]
        kl = sum(-n * float(neg_kl(jnp.float32(-0.1 * (i + 1)))) for i, n in enumerate(counts))
        assert float(model.penalty()) == pytest.approx(scale * kl / 700, rel=1e-5), method
    fixed = DropoutMLP(5, 4, 2, dropout="gaussian_b", rngs=nnx.Rngs(0))
    assert float(fixed.penalty()) == 0.0


def _balance(model, draws=2):
    """The AlphaBalance probe of `model` on toy data, jitted, as a function of its key."""
    x, y = _toy_data(n=400)
    split = {"image": np.asarray(x), "label": np.asarray(y)}
    probe = AlphaBalance(draws=draws, batch_size=100, train_split=split)
    untransformed = lambda batch, train=False: batch  # noqa: E731
    measure = jax.jit(lambda k, arrays: probe(model, {}, untransformed, key=k, arrays=arrays))
    return lambda key=0: jax.device_get(measure(jax.random.key(key), probe.arrays))


def test_alpha_balance_without_noise_is_the_kl_alone_which_holds_every_capped_alpha():
    # The mean network ('none' estimator) gives log alpha no data gradient: only the KL is left,
    # and it pushes every alpha up (eq. 15 decreases in alpha on (0, 1]).
    model = DropoutMLP(30, 16, 10, dropout="variational_b", num_layers=2, estimator="none", rngs=nnx.Rngs(0))
    out = _balance(model)()
    assert set(out) == {f"{k}_{i}" for k in ("held_at_cap", "kl_dominates", "data_wants_less",
                                             "data_to_kl_p50", "layer_data_to_kl") for i in range(3)}
    for i in (1, 2):  # hidden layers start at the cap (p = 0.5); the input layer below it (p = 0.2)
        assert out[f"held_at_cap_{i}"] == 1.0
    for i in range(3):
        assert out[f"kl_dominates_{i}"] == 1.0 and out[f"data_wants_less_{i}"] == 0.0
        assert out[f"data_to_kl_p50_{i}"] == 0.0 and out[f"layer_data_to_kl_{i}"] == 0.0
    assert out["held_at_cap_0"] == 0.0  # no alpha of layer 0 is at the cap: the fraction of none


def test_alpha_balance_with_a_negligible_kl_is_the_data_term_which_wants_less_noise():
    # N huge: the KL's gradient vanishes beside the data's, which (noise costs likelihood) mostly
    # asks for smaller alphas, so few capped alphas are held there. Asymmetric layers (30-16-8-10).
    model = DropoutMLP(30, [16, 8], 10, dropout="variational_b", num_layers=2, num_train=10**9,
                       rngs=nnx.Rngs(0))
    balance = _balance(model)
    out = balance()
    for i in range(3):
        assert out[f"kl_dominates_{i}"] < 0.05
        assert out[f"data_to_kl_p50_{i}"] > 100.0 and out[f"layer_data_to_kl_{i}"] > 100.0
    assert out["data_wants_less_2"] > 0.6  # the output layer's weights: noise there only hurts
    assert out["held_at_cap_1"] < 0.5 and out["held_at_cap_2"] < 0.5
    assert balance(0) == out  # one key, one answer
    assert balance(1) != out  # another key, other noise


@pytest.mark.parametrize("method", ["variational_a", "variational_b"])
def test_alpha_stays_at_or_below_the_cap_after_training(method, run_overrides):
    cfg = compose(["experiment=vardrop_mnist", *run_overrides, f"model.dropout={method}",
                   "model.hidden=32", "data.validation_size=100", "model.num_train=500",
                   "optim.lr=0.01", "train.steps=200", "train.batch_size=50"])
    trainer = build_trainer(cfg)
    state, _, _ = trainer.fit(trainer.initial_state, 200, chunk_steps=100, eval_every=200)
    model = nnx.merge(trainer.graphdef, state["params"], state["rest"])
    raw = np.concatenate([np.ravel(layer.log_alpha[...]) for layer in model.dense])
    assert raw.max() == 0.0  # the KL pushes alphas up: some sit at the cap, none above it ...
    assert (raw < -0.01).mean() > 0.2  # ... and many have left it (a clip in the forward pass stuck them)
    assert np.isfinite(float(model.penalty()))


@needs_real_mnist()
@pytest.mark.parametrize("method", METHODS)
def test_each_method_learns_real_mnist_in_400_steps(method, tmp_path):
    # 400 Adam steps (constant lr 1e-3), batch 100, h=100; validation accuracy measured at the
    # commit adding this test: 0.90 (binary, gaussian_a, variational_a/a2), 0.94 (B), 0.95 (none).
    result = run(compose([
        "experiment=vardrop_mnist", f"data.dir={REAL_DATA}", f"model.dropout={method}",
        "model.hidden=100", "optim.schedule=constant", "train.steps=400", "train.chunk_steps=200",
        "train.eval_every=400",
        "train.checkpoint_every=0", "progress=false", "logger.mode=disabled",
        f"paths.results={tmp_path}"]))
    assert result["final"]["validation/accuracy"] > 0.88


@functools.cache
def _cifar_subset_images():
    return load_dataset("cifar10", str(REAL_DATA)).split("test")["image"][:4]  # read once


@pytest.mark.skipif(not (REAL_DATA / "cifar10-subset").is_dir(), reason="no CIFAR-10 subset")
@pytest.mark.parametrize("k", [1, 2, 3])
def test_cifar10_convnet_shapes_on_the_subset(k):
    cfg = compose(["experiment=vardrop_cifar10", f"data.dir={REAL_DATA}", f"model.k={k}"])
    images = _cifar_subset_images()
    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    x = jnp.asarray(images, jnp.float32) / 255.0
    assert model(x, train=True, rngs=nnx.Rngs(dropout=1)).shape == (4, 10)
    assert model(x).shape == (4, 10)
    assert [layer.kernel.shape for layer in model.dense][1] == (128 * k, 128 * k)
    assert model.convs[1].kernel.shape[-1] == 64 * k and np.isfinite(float(model.penalty()))


def test_the_60k_protocol_variants_train_for_the_epoch_the_committed_runs_chose_on_validation():
    # Pre-registration that can be checked: each <variant>_60k retrains on all 60,000 images for
    # the epoch of lowest mean validation error of <variant>'s committed 50k runs, nothing else.
    from experiments.vardrop_mnist.protocol import chosen_epoch, retrain_overrides
    from repro.report import ROOT, group_by_variant
    from repro.reproduce import find_spec
    from repro.results import load_results

    spec = find_spec("vardrop_mnist")
    retrained = {v[:-len("_60k")]: o for v, o in spec["variants"].items() if v.endswith("_60k")}
    assert sorted(retrained) == sorted(f"{m}_h{h}" for m in METHODS for h in (100, 250))
    bases = group_by_variant({**spec, "variants": {b: spec["variants"][b] for b in retrained}},
                             load_results(ROOT / "results", spec["experiment"], strict=True))
    for base, overrides in retrained.items():
        assert len(bases[base]) == 5, base
        assert overrides == retrain_overrides(spec["variants"][base], chosen_epoch(bases[base])), base


def test_the_chosen_epoch_is_the_lowest_mean_validation_error_the_earliest_of_ties():
    from experiments.vardrop_mnist.protocol import chosen_epoch

    def run(errors, every=5000):
        return {"history": [{"step": 0, "validation/error_percent": 90.0}]
                + [{"step": every * (i + 1), "validation/error_percent": e} for i, e in enumerate(errors)]}

    # Seed means 2.0, 1.5, 1.5, 1.7: epochs 20 and 30 tie, the earlier wins; step 0 never counts.
    assert chosen_epoch([run([2.0, 1.0, 2.0, 1.7]), run([2.0, 2.0, 1.0, 1.7])]) == 20
    assert chosen_epoch([run([3.0, 2.0, 1.0])]) == 30  # the last evaluation can win
    with pytest.raises(ValueError, match="no validation"):
        chosen_epoch([{"history": [{"step": 5000, "test/error_percent": 1.0}]}])
    with pytest.raises(ValueError, match="whole epoch"):
        chosen_epoch([run([1.0], every=250)])


def test_fixed_rate_layers_drop_and_scale_by_hand_and_their_alpha_is_p_over_one_minus_p():
    """Binary dropout keeps each input at x / (1 - p) or zeroes it; Gaussian dropout's fixed alpha
    is p / (1 - p) (Srivastava et al.'s equivalence), at p = 0.2 and 0.5."""
    x = jnp.arange(1.0, 6.0)[None].repeat(400, 0)  # 400 examples of [1..5]: 5 inputs, 5 outputs
    layer = NoisyDense(5, 5, "binary", 0.2, rngs=nnx.Rngs(0))
    layer.kernel[...], layer.bias[...] = jnp.eye(5), jnp.full(5, 0.25)
    out = np.asarray(layer(x, train=True, rngs=nnx.Rngs(dropout=1))) - 0.25
    kept = out != 0
    np.testing.assert_allclose(out[kept], (np.asarray(x) / 0.8)[kept], rtol=1e-6)
    assert 0.7 < kept.mean() < 0.9  # keeps 1 - p
    np.testing.assert_allclose(layer(x, train=False), x + 0.25, rtol=1e-6)  # evaluation: no noise, no scale
    np.testing.assert_allclose(layer(x), x + 0.25, rtol=1e-6)  # ... which is the default
    for p, alpha in ((0.2, 0.25), (0.5, 1.0)):
        assert float(NoisyDense(5, 3, "gaussian_a", p, rngs=nnx.Rngs(0)).alpha()) == pytest.approx(alpha)
        assert float(NoisyDense(5, 3, "gaussian_b", p, rngs=nnx.Rngs(0)).alpha()) == pytest.approx(alpha)


def test_the_cifar_convnet_is_the_papers_shape_for_any_image_size_and_width():
    """Two 3x3 stride-2 convs of 32k and 64k maps ('SAME': ceil(h/4) x ceil(w/4) left), dense
    layers of 128k, 128k and the classes; input p 0.5, hidden p 0.5 by default. An image of
    13 x 10 (odd, unequal) and k = 2 tell every size apart."""
    from repro.models.vardrop import DropoutConvNet

    net = DropoutConvNet((13, 10, 3), 7, k=2, dropout="binary", rngs=nnx.Rngs(0))
    assert [c.kernel[...].shape for c in net.convs] == [(3, 3, 3, 64), (3, 3, 64, 128)]
    assert [(c.strides, c.padding) for c in net.convs] == [(2, "SAME"), (2, "SAME")]
    assert [d.kernel[...].shape for d in net.dense] == [(4 * 3 * 128, 256), (256, 256), (256, 7)]
    assert [d.p for d in net.dense] == [0.5, 0.5, 0.5]
    assert net(jnp.ones((2, 13, 10, 3))).shape == (2, 7)
    default = DropoutConvNet((8, 8, 3), 10, rngs=nnx.Rngs(0))
    assert [d.kernel[...].shape for d in default.dense] == [(2 * 2 * 64, 128), (128, 128), (128, 10)]
    assert default.num_train == 50000  # CIFAR-10's training set: the KL is divided by it


def test_the_mnist_nets_defaults_are_srivastavas():
    """Three hidden layers, input p 0.2, hidden p 0.5, the KL divided by MNIST's 60,000."""
    net = DropoutMLP(784, 50, 10, dropout="variational_a", rngs=nnx.Rngs(0))
    assert [d.kernel[...].shape for d in net.dense] == [(784, 50), (50, 50), (50, 50), (50, 10)]
    assert [d.p for d in net.dense] == [0.2, 0.5, 0.5, 0.5] and net.num_train == 60000


@pytest.mark.parametrize("method", ["gaussian_a", "gaussian_b", "variational_b"])
def test_gaussian_layers_in_training_have_mean_x_w_plus_b_and_variance_alpha_x2_w2(method):
    """Moments over 20,000 draws (inputs 20, outputs 6, alpha 0.25): A multiplies each input by
    1 + sqrt(alpha) eps, B each weight; both give mean x w + b and variance alpha (x^2)(w^2)."""
    k = jax.random.split(jax.random.key(5), 3)
    x = jax.random.normal(k[0], (3, 20))
    layer = NoisyDense(20, 6, method, 0.2, rngs=nnx.Rngs(0))  # alpha 0.25
    layer.kernel[...] = jax.random.normal(k[1], (20, 6)) * 0.3
    layer.bias[...] = jnp.arange(6.0)
    w, b = layer.kernel[...], layer.bias[...]
    draws = jax.jit(jax.vmap(lambda kk: layer(x, train=True, rngs=nnx.Rngs(dropout=kk))))(
        jax.random.split(k[2], 20_000))
    mean, var = x @ w + b, 0.25 * (x * x) @ (w * w)
    assert_gaussian_moments(draws, mean, var)


def test_the_mlp_evaluates_as_its_layers_chained_by_hand_relu_between_none_after():
    net = DropoutMLP(12, [7, 5], 3, dropout="gaussian_b", num_layers=2, rngs=nnx.Rngs(1))
    for i, layer in enumerate(net.dense):
        layer.bias[...] = jnp.linspace(-1.0, 1.0, layer.bias[...].shape[0]) * (i + 1)
    x = jax.random.normal(jax.random.key(2), (4, 3, 4, 1))
    h = np.asarray(x).reshape(4, 12)
    for i, layer in enumerate(net.dense):
        h = h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
        h = np.maximum(h, 0.0) if i < 2 else h
    assert (h < 0).any()  # logits a ReLU would have cut
    np.testing.assert_allclose(net(x), h, rtol=1e-5, atol=1e-6)
