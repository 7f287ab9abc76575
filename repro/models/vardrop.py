"""Dropout variants of Kingma, Salimans & Welling 2015 ("Variational Dropout and the Local
Reparameterization Trick", arXiv 1506.02557) as one noisy dense layer plus MLP / convnet.

Methods (`dropout=`), all applied to the input of every dense layer (Srivastava et al.'s
rates p=0.2 on the network input, p=0.5 on hidden units; Gaussian alpha = p / (1 - p)):
  none            deterministic layer
  binary          Bernoulli keep-mask on the layer input, scaled by 1/(1-p)
  gaussian_a      layer input times N(1, alpha) noise, one draw per example and input unit
  gaussian_b      independent per-weight noise w ~ N(theta, alpha theta^2), sampled through
                  the local reparameterization trick (each example its own pre-activation noise)
  variational_a   gaussian_a with alpha learned: one alpha per input unit of each layer (the
                  noise variable of A is per unit; sec. 4.2), KL summed over those units
  variational_a2  variational_a with the KL term scaled down by 3
  variational_b   gaussian_b with alpha learned: one alpha per weight (the factorized posterior
                  of sec. 4.1), KL summed over weights
Learned alphas are stored as log alpha, initialised at the fixed-rate value and constrained to
alpha <= 1 (log alpha <= 0), the range of the paper's KL approximation (eq. 15) in which it
says it keeps alpha. The paper does not say how; we project: the loop calls `project()` after
every optimizer step (repro.interfaces.Constrained), which sets log alpha = min(log alpha, 0).
The forward pass uses log alpha as it is, so its gradient never vanishes: an alpha at the cap
moves back below it as soon as the gradient says so. (A clip inside the forward pass instead has
zero gradient above the cap, and after one Adam step a quarter to two thirds of the hidden
layers' alphas, which start at the cap, were stuck at alpha = 1 for good.)

For B methods `estimator` picks the gradient estimator of Table 1: local (reparameterize the
pre-activations), per_example (a separate weight sample per example, vmapped), shared (one
weight sample per minibatch) or none (mean weights, no noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from repro.models.conv import Conv

# -KL(q(w|theta, alpha) || log-uniform prior) ~= const + 0.5 log a + C1 a + C2 a^2 + C3 a^3 (eq. 15)
C1, C2, C3 = 1.16145124, -1.50204118, 0.58629921
METHODS = ("none", "binary", "gaussian_a", "gaussian_b", "variational_a", "variational_a2",
           "variational_b")
ESTIMATORS = ("local", "per_example", "shared", "none")
LOG_ALPHA_MAX = 0.0


def neg_kl(log_alpha):
    """-KL up to its additive constant (the paper's cubic fit, valid for alpha <= 1), from
    log alpha: no log(exp(.)) round trip and one exp, so XLA fuses it into one pass over the
    weights (with alpha**2, alpha**3 it made three exps and four passes per layer)."""
    alpha = jnp.exp(log_alpha)
    return 0.5 * log_alpha + alpha * (C1 + alpha * (C2 + C3 * alpha))


class NoisyDense(nnx.Module):
    """Dense layer y = noisy(x) W + b for one of METHODS; `p` is the dropout rate of its input."""

    def __init__(self, in_features: int, out_features: int, method: str, p: float,
                 estimator: str = "local", *, rngs: nnx.Rngs):
        if method not in METHODS:
            raise ValueError(f"unknown dropout {method!r}; known: {METHODS}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; known: {ESTIMATORS}")
        self.method, self.p, self.estimator = method, p, estimator
        self.kernel = nnx.Param(nnx.initializers.he_normal()(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        log_alpha = jnp.log(p / (1.0 - p))
        if method in ("variational_a", "variational_a2"):
            self.log_alpha = nnx.Param(jnp.full((in_features,), log_alpha))
        elif method == "variational_b":
            self.log_alpha = nnx.Param(jnp.full((in_features, out_features), log_alpha))
        else:
            self.log_alpha = None
            self.fixed_alpha = p / (1.0 - p)

    @property
    def family(self) -> str:
        return {"gaussian_a": "a", "variational_a": "a", "variational_a2": "a",
                "gaussian_b": "b", "variational_b": "b"}.get(self.method, self.method)

    def project(self):
        """Back onto alpha <= 1 after an optimizer step (see the module docstring)."""
        if self.log_alpha is not None:
            self.log_alpha[...] = jnp.minimum(self.log_alpha[...], LOG_ALPHA_MAX)

    def alpha(self):
        if self.log_alpha is None:
            return jnp.asarray(self.fixed_alpha)
        return jnp.exp(self.log_alpha[...])

    def kl(self):
        """KL (minus its constant) of this layer's learned noise; 0 for fixed-rate methods."""
        if self.log_alpha is None:
            return jnp.zeros(())
        return -neg_kl(self.log_alpha[...]).sum()

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None, estimator=None):
        w, b = self.kernel[...], self.bias[...]
        if not train or self.method == "none":
            return x @ w + b
        key = rngs.dropout()
        if self.method == "binary":
            keep = jax.random.bernoulli(key, 1.0 - self.p, x.shape)
            return jnp.where(keep, x / (1.0 - self.p), 0.0) @ w + b
        alpha = self.alpha()
        if self.family == "a":  # one multiplicative N(1, alpha) per example and input unit
            return (x * (1.0 + jnp.sqrt(alpha) * jax.random.normal(key, x.shape))) @ w + b
        var_w = None if self.log_alpha is None else variance_weights(w, self.log_alpha[...])
        return _sample_b(x, w, alpha, key, estimator or self.estimator, var_w) + b


@jax.custom_vjp
def variance_weights(w, log_alpha):
    """alpha w^2 elementwise (alpha = exp(log_alpha)), the weight variances of method B. Its
    gradient recomputes alpha instead of saving it: one pass over the weights each way."""
    return jnp.exp(log_alpha) * w * w


def _variance_weights_fwd(w, log_alpha):
    return variance_weights(w, log_alpha), (w, log_alpha)


def _variance_weights_bwd(residuals, g):
    w, log_alpha = residuals
    g_alpha_w = g * jnp.exp(log_alpha) * w
    return 2.0 * g_alpha_w, g_alpha_w * w


variance_weights.defvjp(_variance_weights_fwd, _variance_weights_bwd)


def _sample_b(x, w, alpha, key, estimator: str, var_w=None):
    """x W for W ~ N(w, alpha w^2) elementwise, sampled by the chosen gradient estimator;
    `var_w` (alpha w^2) may come precomputed."""
    if estimator == "local":
        # Pre-activations are Gaussian: mean x w, variance x^2 (alpha w^2); sample them directly.
        var_w = alpha * w * w if var_w is None else var_w
        mean, var = x @ w, (x * x) @ var_w
        return mean + jnp.sqrt(var + 1e-8) * jax.random.normal(key, mean.shape)
    if estimator == "shared":
        return x @ (w * (1.0 + jnp.sqrt(alpha) * jax.random.normal(key, w.shape)))
    if estimator == "per_example":
        def one(xi, k):
            return xi @ (w * (1.0 + jnp.sqrt(alpha) * jax.random.normal(k, w.shape)))
        return jax.vmap(one)(x, jax.random.split(key, x.shape[0]))
    return x @ w  # 'none': the mean network, no dropout noise


class _NoisyNet(nnx.Module):
    """Shared KL penalty and helpers for networks built from NoisyDense layers."""

    def dense_layers(self) -> list[NoisyDense]:
        return list(self.dense)

    def penalty(self):
        """KL / N_train, so mean cross-entropy + penalty is the per-example SGVB bound (eq. 3)."""
        kl = sum(layer.kl() for layer in self.dense_layers())
        return self.kl_scale * kl / self.num_train

    def alphas(self) -> list[jax.Array]:
        return [layer.alpha() for layer in self.dense_layers()]

    def project(self):
        """Every layer's learned alphas back onto alpha <= 1 (called by the loop after each step)."""
        for layer in self.dense_layers():
            layer.project()

    @staticmethod
    def _dense_stack(sizes, dropout, input_p, hidden_p, estimator, rngs):
        """NoisyDense layers between consecutive sizes; the first noises the input at input_p."""
        return nnx.List([
            NoisyDense(a, b, dropout, input_p if i == 0 else hidden_p, estimator, rngs=rngs)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        ])

    def _dense_forward(self, h, activation, train, rngs, estimator):
        """The dense stack with `activation` between layers (none after the logits)."""
        for i, layer in enumerate(self.dense):
            h = layer(h, train, rngs, estimator)
            if i < len(self.dense) - 1:
                h = activation(h)
        return h


def _kl_scale(dropout: str, kl_scale: float | None) -> float:
    return kl_scale if kl_scale is not None else (1.0 / 3.0 if dropout == "variational_a2" else 1.0)


class DropoutMLP(_NoisyNet):
    """in -> [NoisyDense -> ReLU] * num_layers -> NoisyDense -> logits (Srivastava et al.'s MNIST net)."""

    def __init__(self, in_features: int, hidden: int | Sequence[int], num_classes: int,
                 dropout: str = "none", num_layers: int = 3, num_train: int = 60000,
                 input_p: float = 0.2, hidden_p: float = 0.5, estimator: str = "local",
                 kl_scale: float | None = None, *, rngs: nnx.Rngs):
        widths = [hidden] * num_layers if isinstance(hidden, int) else list(hidden)
        sizes = [in_features, *widths, num_classes]
        self.num_train, self.kl_scale = num_train, _kl_scale(dropout, kl_scale)
        self.dense = self._dense_stack(sizes, dropout, input_p, hidden_p, estimator, rngs)

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None, estimator=None):
        return self._dense_forward(x.reshape(x.shape[0], -1), jax.nn.relu, train, rngs, estimator)


class DropoutConvNet(_NoisyNet):
    """The paper's CIFAR-10 net: conv 32k and 64k maps (3x3, stride 2, softplus), two dense
    layers of 128k softplus units, output. Dropout noise on the dense layers' inputs only
    (the paper does not say it noised the convolutions)."""

    def __init__(self, image_shape: Sequence[int], num_classes: int, k: int = 1,
                 dropout: str = "none", num_train: int = 50000, input_p: float = 0.5,
                 hidden_p: float = 0.5, estimator: str = "local", kl_scale: float | None = None,
                 *, rngs: nnx.Rngs):
        h, w, c = image_shape
        self.num_train, self.kl_scale = num_train, _kl_scale(dropout, kl_scale)
        self.convs = nnx.List([
            Conv(c, 32 * k, (3, 3), strides=2, rngs=rngs),
            Conv(32 * k, 64 * k, (3, 3), strides=2, rngs=rngs),
        ])
        flat = -(-h // 4) * -(-w // 4) * 64 * k  # 'SAME' padding, stride 2 twice
        sizes = [flat, 128 * k, 128 * k, num_classes]
        self.dense = self._dense_stack(sizes, dropout, input_p, hidden_p, estimator, rngs)

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None, estimator=None):
        for conv in self.convs:
            x = jax.nn.softplus(conv(x))
        return self._dense_forward(x.reshape(x.shape[0], -1), jax.nn.softplus, train, rngs, estimator)
