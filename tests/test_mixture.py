"""The reparameterized mixture sampler (experiments/mixture_backprop/mixture.py, Graves 2016)
and the checks its experiment reports (experiments/mixture_backprop/checks.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REAL_DATA, needs_real_mnist
from flax import nnx
from scipy import stats
from scipy.optimize import brentq
from scipy.special import expit, logsumexp, softmax

from experiments.mixture_backprop import mixture
from experiments.mixture_backprop.checks import objectives, per_sample_gradients, random_mixture
from experiments.mixture_backprop.objective import MixtureELBO
from experiments.mixture_backprop.vae import MixtureVAE
from repro.configuration import compose
from repro.run import run

pytestmark = pytest.mark.usefixtures("drop_compiled_programs_after_each_test")


def test_closed_form_gradients_match_finite_differences():
    with jax.enable_x64(True):
        for k, d in ((1, 1), (3, 2), (4, 5)):
            params = random_mixture(jax.random.key(k * 10 + d), k, d)
            for _, mean_fn in objectives(d, jax.random.key(1)).values():
                grads = jax.grad(mean_fn)(params)
                for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                    flat = np.asarray(p).ravel()
                    for j in range(flat.size):
                        step = np.zeros_like(flat)
                        step[j] = 1e-6
                        up = [*params]
                        up[i] = jnp.asarray((flat + step).reshape(p.shape))
                        down = [*params]
                        down[i] = jnp.asarray((flat - step).reshape(p.shape))
                        fd = (mean_fn(tuple(up)) - mean_fn(tuple(down))) / 2e-6
                        assert float(np.asarray(g).ravel()[j]) == pytest.approx(float(fd), rel=1e-5, abs=1e-7)


def _inverse_cdf_sample(u, logits, means, log_scales):
    """x with F_d(x_d | x_<d) = u_d for every d, by root finding: the map the estimator differentiates."""
    x = np.zeros(len(u))
    for d in range(len(u)):
        def gap(v, d=d):
            trial = x.copy()
            trial[d] = v
            cdfs = mixture._conditional_cdfs(jnp.asarray(trial), logits, means, log_scales)
            return float(cdfs[d]) - u[d]
        x[d] = brentq(gap, -50.0, 50.0, xtol=1e-13)
    return x


def test_each_sample_moves_as_the_inverse_cdf_map_does():
    # Graves' derivative is d/dtheta of x = F^-1(u; theta) with u fixed: compare it, per sample, with
    # finite differences of that map solved by root finding (K = 3, D = 2: the conditional part too).
    with jax.enable_x64(True):
        params = random_mixture(jax.random.key(7), 3, 2)
        key = jax.random.key(11)
        x = mixture.sample(key, *params)
        u = np.asarray(mixture._conditional_cdfs(x, *params))
        np.testing.assert_allclose(_inverse_cdf_sample(u, *params), x, atol=1e-9)
        jac = jax.jacobian(lambda p: mixture.sample(key, *p))(params)
        for i, p in enumerate(params):
            flat = np.asarray(p).ravel()
            for j in range(flat.size):
                moved = []
                for sign in (1.0, -1.0):
                    q = [*params]
                    q[i] = jnp.asarray((flat + sign * 1e-6 * (np.arange(flat.size) == j)).reshape(p.shape))
                    moved.append(_inverse_cdf_sample(u, *q))
                fd = (moved[0] - moved[1]) / 2e-6
                ours = np.asarray(jac[i]).reshape(2, -1)[:, j]
                np.testing.assert_allclose(ours, fd, rtol=1e-4, atol=1e-6)


def test_samples_have_the_mixture_distribution():
    logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
    means = jnp.array([[-2.0, 0.0], [1.0, 3.0], [4.0, -1.0]])
    log_scales = jnp.log(jnp.array([[0.5, 1.0], [1.0, 0.3], [0.7, 2.0]]))
    n = 20000
    batch = (jnp.broadcast_to(logits, (n, 3)), jnp.broadcast_to(means, (n, 3, 2)),
             jnp.broadcast_to(log_scales, (n, 3, 2)))
    x = np.asarray(mixture.sample(jax.random.key(3), *batch))
    w, s = np.exp(np.asarray(logits)), np.exp(np.asarray(log_scales))
    mean = w @ np.asarray(means)
    var = w @ (np.asarray(means) ** 2 + s**2) - mean**2
    assert np.all(np.abs(x.mean(0) - mean) < 4 * np.sqrt(var / n)), (x.mean(0), mean)
    np.testing.assert_allclose(x.var(0), var, rtol=0.05)
    for d in range(2):
        cdf = lambda v, d=d: (w[:, None] * stats.norm.cdf((v[None] - np.asarray(means)[:, d, None])  # noqa: E731
                                                          / s[:, d, None])).sum(0)
        assert stats.kstest(x[:, d], cdf).pvalue > 0.01


def test_one_component_is_the_ordinary_reparameterization():
    params = random_mixture(jax.random.key(0), 1, 4)
    key = jax.random.key(5)
    f = objectives(4, jax.random.key(2))["quadratic"][0]
    ours = jax.grad(lambda p: f(mixture.sample(key, *p)))(params)
    eps = jax.random.normal(jax.random.split(key)[1], (4,))
    plain = jax.grad(lambda p: f(p[1][0] + jnp.exp(p[2][0]) * eps))(params)
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_estimator_is_unbiased_on_a_light_tailed_mixture():
    params = random_mixture(jax.random.key(4), 3, 2)
    for f, mean_fn in objectives(2, jax.random.key(9)).values():
        grads = per_sample_gradients(f, params, jax.random.key(8), 8192)
        for g, exact in zip(grads, jax.grad(mean_fn)(params), strict=True):
            se = np.maximum(np.asarray(g.std(0)) / math.sqrt(8192), 1e-5)
            assert np.all(np.abs(np.asarray(g.mean(0) - exact)) < 4.5 * se)


@pytest.mark.parametrize("case", ["near_zero_weight", "tiny_scales", "k1_d1"])
def test_edge_cases_give_finite_values_and_gradients(case):
    k, d = (1, 1) if case == "k1_d1" else (3, 2)
    logits, means, log_scales = random_mixture(jax.random.key(1), k, d)
    if case == "near_zero_weight":
        logits = logits.at[0].set(-40.0)
    if case == "tiny_scales":
        log_scales = jnp.full_like(log_scales, -7.0)
    n = 512

    def loss(p):
        lg, m, ls = p
        x = mixture.sample(jax.random.key(2), jnp.broadcast_to(lg, (n, k)), jnp.broadcast_to(m, (n, k, d)),
                           jnp.broadcast_to(ls, (n, k, d)))
        return (x**2).sum() + mixture.log_prob(x, lg, m, ls).sum()

    value, grads = jax.value_and_grad(loss)((logits, means, log_scales))
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


@pytest.mark.parametrize("estimator, leave_one_out, batch", [
    ("score", True, 5), ("score", True, 2), ("score", True, 1), ("score_no_baseline", False, 5)])
def test_the_score_estimator_weighs_each_grad_log_q_by_its_bound_less_the_others_mean(estimator,
                                                                                       leave_one_out, batch):
    # Encoder gradient of the batch's loss = sum_i (1 + f_i - b_i) grad log q(z_i|x_i): the 1 is the
    # bound's own log q term (z held fixed), b_i the mean bound of the *other* images (or 0; a
    # batch of one has no other image: b = 0).
    x = (jax.random.uniform(jax.random.key(0), (batch, 2, 3, 1)) < 0.5).astype(jnp.float32)
    model = MixtureVAE(6, hidden=4, latent=2, components=3, rngs=nnx.Rngs(0))
    objective, key = MixtureELBO(estimator), jax.random.key(1)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def per_example(p):
        return objective.per_example(nnx.merge(graphdef, p, rest), {"image": x}, train=True,
                                     rngs=nnx.Rngs(dropout=key))

    out = per_example(params)
    np.testing.assert_allclose(out["loss"], out["neg_elbo_nats"], rtol=1e-6)  # the surrogate adds 0
    f = np.asarray(out["neg_elbo_nats"], np.float64)
    b = (f.sum() - f) / max(len(f) - 1, 1) if leave_one_out else np.zeros_like(f)
    z = mixture.sample(nnx.Rngs(dropout=key).dropout(), *model.posterior(x))  # the objective's draw
    jac = jax.jacrev(lambda p: mixture.log_prob(z, *nnx.merge(graphdef, p, rest).posterior(x)))(params)
    grads = jax.grad(lambda p: per_example(p)["loss"].sum())(params)
    for part in ("encoder", "head"):
        for g, j in zip(jax.tree.leaves(grads[part]), jax.tree.leaves(jac[part]), strict=True):
            expected = np.tensordot(1.0 + f - b, np.asarray(j, np.float64), axes=1)
            np.testing.assert_allclose(np.asarray(g), expected, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("estimator", ["implicit", "score", "score_no_baseline"])
def test_a_mixture_vae_learns_with_every_estimator(estimator):
    x = (jax.random.uniform(jax.random.key(0), (64, 4, 4, 1)) < 0.3).astype(jnp.float32)
    x = x.at[:32].set(x[0])  # half the images are one image: something to learn
    model = MixtureVAE(16, hidden=32, latent=2, components=3, rngs=nnx.Rngs(0))
    objective = MixtureELBO(estimator)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt = optax.adam(3e-3)
    state = opt.init(params)

    @jax.jit
    def step(params, state, i):
        def loss(p):
            m = nnx.merge(graphdef, p, rest)
            rngs = nnx.Rngs(dropout=jax.random.fold_in(jax.random.key(1), i))
            return objective.train_loss(m, {"image": x}, rngs=rngs)[0]
        g = jax.grad(loss)(params)
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    def bound(p):
        metrics = objective.per_example(nnx.merge(graphdef, p, rest), {"image": x}, train=False)
        return float(metrics["neg_elbo_nats"].mean())

    before = bound(params)
    for i in range(300):
        params, state = step(params, state, i)
    assert bound(params) < before - 1.0


@needs_real_mnist()
def test_the_experiment_runs_on_real_binarized_mnist_with_its_probe(tmp_path):
    # 500 steps of the experiment's VAE per estimator; the probe with few samples (shape and keys).
    results = {}
    for estimator in ("implicit", "score"):
        results[estimator] = run(compose([
            "experiment=mixture_backprop", f"data.dir={REAL_DATA}", f"objective.estimator={estimator}",
            "train.steps=500", "train.eval_every=500", "train.checkpoint_every=0", "progress=false",
            "logger.mode=disabled", f"paths.results={tmp_path}", "probes.0.samples=256"]))["final"]
    # Measured at the commit adding this test: implicit 150.7 nats after 500 steps (score ~220).
    assert results["implicit"]["test/neg_elbo_nats"] < 170.0
    assert results["implicit"]["test/neg_elbo_nats"] < results["score"]["test/neg_elbo_nats"]
    checks = results["implicit"]
    assert checks["probe/k1_max_abs_diff"] < 1e-4
    assert {f"probe/max_z_k{k}_d{d}" for k in (1, 3, 10) for d in (1, 2, 8)} <= set(checks)
    assert 0.0 < checks["probe/within_4se"] <= 1.0


def mixture_log_q_by_hand(x, logits, means, log_scales):
    """log sum_k pi_k prod_d N(x_d; mu_kd, sigma_kd) in float64 with scipy: x [..., D], logits
    [..., K], means and log scales [..., K, D]."""
    x, logits, means, scales = (np.asarray(a, np.float64) for a in (x, logits, means, np.exp(log_scales)))
    per_component = stats.norm.logpdf(x[..., None, :], means, scales).sum(-1)
    return logsumexp(np.log(softmax(logits, -1)) + per_component, axis=-1)


def test_the_negative_elbo_is_minus_log_lik_minus_log_prior_plus_log_q_by_hand():
    """Batch 3, 8 pixels (2 x 4), 2 components, 3 latent dimensions, hidden 5: every axis differs.
    Evaluation (no rngs) draws z with the objective's fixed eval_seed: the same bound every time."""

    x = (jax.random.uniform(jax.random.key(4), (3, 2, 4, 1)) < 0.4).astype(jnp.float32)
    model = MixtureVAE(8, hidden=5, latent=3, components=2, rngs=nnx.Rngs(1))
    objective = MixtureELBO("implicit", eval_seed=7)
    out = objective.per_example(model, {"image": x}, train=False)
    again = objective.per_example(model, {"image": x}, train=False)
    np.testing.assert_array_equal(out["neg_elbo_nats"], again["neg_elbo_nats"])
    other = MixtureELBO("implicit", eval_seed=8).per_example(model, {"image": x}, train=False)
    assert not np.allclose(other["neg_elbo_nats"], out["neg_elbo_nats"])
    default = MixtureELBO().per_example(model, {"image": x}, train=False)  # the committed runs' seed, 0
    zero = MixtureELBO("implicit", eval_seed=0).per_example(model, {"image": x}, train=False)
    np.testing.assert_array_equal(default["neg_elbo_nats"], zero["neg_elbo_nats"])

    z = np.asarray(mixture.sample(jax.random.key(7), *model.posterior(x)), np.float64)  # [3, 3]
    assert z.shape == (3, 3)
    log_q = mixture_log_q_by_hand(z, *model.posterior(x))
    log_prior = stats.norm.logpdf(z).sum(-1)
    p = expit(np.asarray(model.decode(jnp.asarray(z, jnp.float32)), np.float64))
    pixels = np.asarray(x, np.float64).reshape(3, 8)
    log_lik = (pixels * np.log(p) + (1 - pixels) * np.log1p(-p)).sum(-1)
    np.testing.assert_allclose(out["neg_elbo_nats"], -(log_lik + log_prior - log_q), rtol=1e-4)
    np.testing.assert_allclose(out["loss"], out["neg_elbo_nats"], rtol=1e-6)


def test_log_prob_is_the_mixture_density_by_hand_over_two_batch_axes():
    """log q(x) = log sum_k pi_k prod_d N(x_d; mu_kd, sigma_kd), with batch axes 2 x 3, K = 4
    components and D = 5 dimensions (every axis differs), against scipy."""

    keys = jax.random.split(jax.random.key(11), 4)
    x = jax.random.normal(keys[0], (2, 3, 5))
    logits = jax.random.normal(keys[1], (2, 3, 4))
    means = jax.random.normal(keys[2], (2, 3, 4, 5))
    log_scales = 0.3 * jax.random.normal(keys[3], (2, 3, 4, 5))
    got = mixture.log_prob(x, logits, means, log_scales)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, mixture_log_q_by_hand(x, logits, means, log_scales), rtol=1e-5)
