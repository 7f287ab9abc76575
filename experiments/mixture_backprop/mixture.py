"""Reparameterized samples of diagonal Gaussian mixtures (Graves 2016, "Stochastic
Backpropagation through Mixture Density Distributions", arXiv 1607.05690).

A mixture sample x cannot be written as a smooth function of the parameters and fixed noise (the
component is a discrete draw), but each coordinate can be read as an inverse CDF: with
u_d = F_d(x_d | x_<d; theta) uniform, holding u fixed and differentiating gives

    dx_d/dtheta = -(dF_d/dtheta + sum_{j<d} dF_d/dx_j dx_j/dtheta) / f_d(x_d | x_<d; theta),

where F_d and f_d are the CDF and density of x_d given the coordinates before it: for a diagonal
mixture, a mixture of the same 1-d Gaussians with the weights pi_k N(x_<d; mu_k, sigma_k) renormalized.
`sample` draws x the ordinary way (component, then Gaussian) and attaches that derivative through a
custom JVP, so any loss of the samples backpropagates into the logits, means and log-scales.
With one component it is exactly the usual x = mu + sigma * eps gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, ndtr

LOG_SQRT_2PI = 0.5 * jnp.log(2.0 * jnp.pi)


def _normal_log_density(x, mean, log_scale):
    z = (x - mean) * jnp.exp(-log_scale)
    return -0.5 * z * z - log_scale - LOG_SQRT_2PI


def log_prob(x, logits, means, log_scales):
    """log q(x) of a diagonal Gaussian mixture: x [..., D], logits [..., K], means and
    log_scales [..., K, D]."""
    per_component = _normal_log_density(x[..., None, :], means, log_scales).sum(-1)
    return logsumexp(jax.nn.log_softmax(logits) + per_component, axis=-1)


def _conditional_cdfs(x, logits, means, log_scales):
    """F_d(x_d | x_<d) for every d, one mixture: x [D]."""
    log_n = _normal_log_density(x, means, log_scales)  # [K, D]
    # Log weights of the conditional of dimension d: prior weights times the densities of x_<d.
    prefix = jnp.cumsum(log_n, axis=-1) - log_n  # [K, D]: sum over j < d
    log_w = jax.nn.log_softmax(jax.nn.log_softmax(logits)[:, None] + prefix, axis=0)
    return (jnp.exp(log_w) * ndtr((x - means) * jnp.exp(-log_scales))).sum(0)


@jax.custom_jvp
def _attach(logits, means, log_scales, x):
    """x itself; its tangent is Graves' implicit derivative (module docstring)."""
    return x


@_attach.defjvp
def _attach_jvp(primals, tangents):
    # Differentiating F(x; theta) = u (all D conditional CDFs at once, u fixed) gives
    # (dF/dx) dx = -(dF/dtheta) dtheta, with dF/dx lower triangular (F_d depends on x_<=d only)
    # and its diagonal the conditional densities f_d: one forward substitution.
    logits, means, log_scales, x = primals
    d_params = tangents[:3]  # x is a drawn value: no tangent of its own
    params = (logits, means, log_scales)
    _, d_cdf = jax.jvp(lambda p: _conditional_cdfs(x, *p), (params,), (tuple(d_params),))
    jac_x = jax.jacfwd(lambda v: _conditional_cdfs(v, *params))(x)
    return x, -jax.scipy.linalg.solve_triangular(jac_x, d_cdf, lower=True)


def _sample_one(key, logits, means, log_scales):
    k_key, e_key = jax.random.split(key)
    k = jax.random.categorical(k_key, jax.lax.stop_gradient(logits))
    eps = jax.random.normal(e_key, means.shape[-1:], means.dtype)
    x = jax.lax.stop_gradient(means[k] + jnp.exp(log_scales[k]) * eps)
    return _attach(logits, means, log_scales, x)


def sample(key, logits, means, log_scales):
    """One sample per mixture: logits [..., K], means and log_scales [..., K, D] -> x [..., D],
    differentiable in all three by the mixture's implicit reparameterization."""
    batch = logits.shape[:-1]
    keys = jax.random.split(key, batch) if batch else key
    fn = _sample_one
    for _ in batch:
        fn = jax.vmap(fn)
    return fn(keys, logits, means, log_scales)
