"""A variational autoencoder for binary images whose approximate posterior q(z|x) is a diagonal
Gaussian mixture (K components, D latent dimensions), sampled with the mixture's implicit
reparameterization (experiments/mixture_backprop/mixture.py) or scored by the score-function estimator. Prior
p(z) = N(0, I); decoder: Bernoulli logits per pixel. The ELBO is in repro/objectives.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class MixtureVAE(nnx.Module):
    """in -> hidden -> hidden -> (logits [K], means [K, D], log-scales [K, D]); z [D] -> hidden ->
    hidden -> one logit per input value. tanh hidden units."""

    def __init__(self, in_features: int, hidden: int = 200, latent: int = 8, components: int = 5,
                 *, rngs: nnx.Rngs):
        self.latent, self.components = latent, components
        self.encoder = nnx.List([nnx.Linear(in_features, hidden, rngs=rngs),
                                 nnx.Linear(hidden, hidden, rngs=rngs)])
        self.head = nnx.Linear(hidden, components * (1 + 2 * latent), rngs=rngs)
        self.decoder = nnx.List([nnx.Linear(latent, hidden, rngs=rngs),
                                 nnx.Linear(hidden, hidden, rngs=rngs),
                                 nnx.Linear(hidden, in_features, rngs=rngs)])

    def posterior(self, x):
        """q(z|x) parameters: logits [B, K], means [B, K, D], log-scales [B, K, D]."""
        h = x.reshape(x.shape[0], -1).astype(jnp.float32)
        for layer in self.encoder:
            h = jnp.tanh(layer(h))
        out = self.head(h)
        k, d = self.components, self.latent
        logits, rest = out[:, :k], out[:, k:].reshape(-1, k, 2 * d)
        return logits, rest[..., :d], jnp.clip(rest[..., d:], -7.0, 5.0)

    def decode(self, z):
        h = z
        for layer in self.decoder[:-1]:
            h = jnp.tanh(layer(h))
        return self.decoder[-1](h)

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        """Decoder logits of the posterior means' mixture average (a deterministic reconstruction)."""
        logits, means, _ = self.posterior(x)
        z = (jax.nn.softmax(logits)[..., None] * means).sum(-2)
        return self.decode(z).reshape(x.shape)
