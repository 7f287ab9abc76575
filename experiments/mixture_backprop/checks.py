"""Graves 2016's claims about the mixture estimator (mixture.py beside this file), measured on mixtures with
random parameters (drawn from the run's seed: each seed measures its own mixtures and samples)
and objectives whose expectation under a mixture is known:

  linear     f(x) = a . x                          E f = sum_k pi_k a . mu_k
  quadratic  f(x) = sum_d c_d x_d^2 + x_0 x_{D-1}   E f = sum_k pi_k (sum_d c_d (mu_kd^2 + s_kd^2)
                                                          + mu_k0 mu_k,D-1)   (D > 1; x_0^2 adds
                                                          to c_0 when D = 1)

The cross term couples the first and last coordinates, so the conditional (multi-dimensional)
part of the estimator is tested too. The exact gradient of E f is jax.grad of the closed form.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from scipy.stats import norm

from experiments.mixture_backprop import mixture

GRID = [(k, d) for k in (1, 3, 10) for d in (1, 2, 8)]
GROUPS = ("logits", "means", "log_scales")


def random_mixture(key, k: int, d: int):
    a, b, c = jax.random.split(key, 3)
    return (jax.random.normal(a, (k,)), 1.5 * jax.random.normal(b, (k, d)),
            0.4 * jax.random.normal(c, (k, d)) - 0.3)


def objectives(d: int, key):
    a = jax.random.normal(key, (d,))
    c = 0.5 + jnp.arange(d) / max(d, 1)

    def linear(x):
        return x @ a

    def quadratic(x):
        return (c * x * x).sum(-1) + x[..., 0] * x[..., -1]

    def linear_mean(params):
        logits, means, _ = params
        return jax.nn.softmax(logits) @ (means @ a)

    def quadratic_mean(params):
        logits, means, log_scales = params
        second = means**2 + jnp.exp(2 * log_scales)  # E x_d^2 per component
        cross = second[:, 0] if d == 1 else means[:, 0] * means[:, -1]
        return jax.nn.softmax(logits) @ ((second * c).sum(-1) + cross)

    return {"linear": (linear, linear_mean), "quadratic": (quadratic, quadratic_mean)}


def per_sample_gradients(f, params, key, n: int):
    """[n] gradients (pytrees with a leading axis) of f(x_i), x_i ~ the mixture, by the estimator."""
    def one(k):
        return jax.grad(lambda p: f(mixture.sample(k, *p)))(params)
    return jax.vmap(one)(jax.random.split(key, n))


def score_gradients(f, params, key, n: int, baseline):
    """[n] score-function gradients (f(x_i) - baseline) grad log q(x_i)."""
    def one(k):
        x = jax.lax.stop_gradient(mixture.sample(k, *params))
        g = jax.grad(lambda p: mixture.log_prob(x, *p))(params)
        return jax.tree.map(lambda t: (f(x) - baseline) * t, g)
    return jax.vmap(one)(jax.random.split(key, n))


def _one_gaussian(key, params, d: int):
    """mu + sigma eps of a one-component mixture, with the noise mixture.sample draws for `key`."""
    _, means, log_scales = params
    eps = jax.random.normal(jax.random.split(key)[1], (d,))
    return means[0] + jnp.exp(log_scales[0]) * eps


class EstimatorChecks:
    """Probe (final only: it does not depend on the trained model). For each (K, D) of GRID, over
    the parameters of both objectives:

      max_z_k<K>_d<D>    the largest |mean estimate - exact| / standard error (the standard error
                         floored at 1e-5 (1 + |exact|) for float32 rounding where an estimate has
                         no spread, e.g. d(a.x)/d mu = a);
      bound_k<K>_d<D>    the Bonferroni bound on it at level 0.01 (the normal's |z| at
                         1 - 0.005 / parameters tested): an unbiased estimator stays below it;
      tail_k<K>_d<D>     the largest |g - mean| / std of one sample's gradient over the
                         parameters: 9-12 with K = 1 (the Gaussian reparameterization, whose
                         gradients here are skewed but light-tailed); far above that the gradients
                         are heavy-tailed and their standard error (so the z) is unreliable;
      within_4se         the fraction of all tested parameters within 4 standard errors;
      k1_max_abs_diff    K = 1: the largest |estimator - (mu + sigma eps) gradient| for the same
                         noise, over D = 1, 2, 8 (float tolerance);
      var_ratio_<score|score_baseline>_<group>   variance of our estimator / the score-function
                         estimator's (without / with the exact E f as baseline), averaged over
                         the parameters of each group, quadratic objective, K=3, D=2 and
                         (suffix _k10_d8) K=10, D=8.
    """

    final_only = True
    needs = ("key",)  # the run's seed's probe key: seeds are independent repeats of the checks

    def __init__(self, samples: int = 16384):
        self.samples = samples

    def __call__(self, model, eval_data, transforms, key) -> dict:
        out, within, tested = {}, jnp.zeros(()), 0
        for k, d in GRID:
            key, pk, ok, sk = jax.random.split(key, 4)
            params = random_mixture(pk, k, d)
            worst, tail, count = jnp.zeros(()), jnp.zeros(()), 0
            for f, mean_fn in objectives(d, ok).values():
                grads = per_sample_gradients(f, params, sk, self.samples)
                for g, e in zip(grads, jax.grad(mean_fn)(params), strict=True):
                    std = g.std(0)
                    se = jnp.maximum(std / math.sqrt(self.samples), 1e-5 * (1.0 + jnp.abs(e)))
                    z = jnp.abs(g.mean(0) - e) / se
                    worst = jnp.maximum(worst, z.max())
                    tail = jnp.maximum(tail, (jnp.abs(g - g.mean(0)).max(0) / jnp.maximum(std, 1e-30)).max())
                    within = within + (z <= 4.0).sum()
                    count += z.size
            tested += count
            out[f"max_z_k{k}_d{d}"], out[f"tail_k{k}_d{d}"] = worst, tail
            out[f"bound_k{k}_d{d}"] = jnp.asarray(norm.isf(0.005 / count), jnp.float32)
        out["within_4se"] = within / tested
        out["k1_max_abs_diff"] = self._k1_difference(key)
        for k, d, suffix in ((3, 2, ""), (10, 8, "_k10_d8")):
            out.update(self._variance_ratios(jax.random.fold_in(key, k), k, d, suffix))
        return out

    def _k1_difference(self, key):
        worst = jnp.zeros(())
        for d in (1, 2, 8):
            key, pk, xk = jax.random.split(key, 3)
            params = random_mixture(pk, 1, d)
            f = objectives(d, xk)["quadratic"][0]
            keys = jax.random.split(xk, 256)
            ours = jax.vmap(lambda k, p, f=f: jax.grad(lambda q: f(mixture.sample(k, *q)))(p),
                            in_axes=(0, None))(keys, params)
            plain = jax.vmap(lambda k, p, f=f, d=d: jax.grad(lambda q: f(_one_gaussian(k, q, d)))(p),
                             in_axes=(0, None))(keys, params)
            for x, y in zip(ours, plain, strict=True):
                worst = jnp.maximum(worst, jnp.abs(x - y).max())
        return worst

    def _variance_ratios(self, key, k, d, suffix):
        pk, ok, sk = jax.random.split(key, 3)
        params = random_mixture(pk, k, d)
        f, mean_fn = objectives(d, ok)["quadratic"]
        ours = per_sample_gradients(f, params, sk, self.samples)
        out = {}
        for name, baseline in (("score", 0.0), ("score_baseline", mean_fn(params))):
            theirs = score_gradients(f, params, sk, self.samples, baseline)
            for group, a, b in zip(GROUPS, ours, theirs, strict=True):
                out[f"var_ratio_{name}_{group}{suffix}"] = a.var(0).mean() / b.var(0).mean()
        return out
