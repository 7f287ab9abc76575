"""Graves 2016's estimator at work: the negative ELBO of a VAE whose posterior is a Gaussian
mixture, its gradient reaching the encoder through the mixture sample (or the score function)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from experiments.mixture_backprop import mixture
from repro.objectives import mean_loss_plus_penalty


class MixtureELBO:
    """Negative ELBO, in nats per image, of a VAE with a Gaussian-mixture posterior
    (experiments.mixture_backprop.vae.MixtureVAE): -E_q[log p(x|z) + log p(z) - log q(z|x)], one z per image.

    `estimator` is how its gradient reaches the encoder: 'implicit' backpropagates through the
    mixture sample (mixture.py beside this file, Graves 2016); 'score' uses the score-function estimator
    (f - b) grad log q(z|x) with b the mean f of the other images in the batch ('score_no_baseline':
    b = 0). Evaluation uses a fixed key per batch, so the test bound is deterministic."""

    def __init__(self, estimator: str = "implicit", eval_seed: int = 0):
        if estimator not in ("implicit", "score", "score_no_baseline"):
            raise ValueError(f"unknown estimator {estimator!r}: implicit, score or score_no_baseline")
        self.estimator, self.eval_seed = estimator, eval_seed

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        key = rngs.dropout() if rngs is not None else jax.random.key(self.eval_seed)
        inputs = batch["image"]
        x = inputs.reshape(inputs.shape[0], -1).astype(jnp.float32)
        logits, means, log_scales = model.posterior(inputs)
        z = mixture.sample(key, logits, means, log_scales)
        if self.estimator != "implicit":
            z = jax.lax.stop_gradient(z)
        log_q = mixture.log_prob(z, logits, means, log_scales)
        log_prior = -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2.0 * math.pi)
        log_lik = -optax.sigmoid_binary_cross_entropy(model.decode(z), x).sum(-1)
        neg_elbo = -(log_lik + log_prior - log_q)
        loss = neg_elbo
        if self.estimator != "implicit":
            # Surrogate whose gradient is the score-function estimate: (f - b) grad log q(z|x).
            f = jax.lax.stop_gradient(neg_elbo)
            n = f.shape[0]
            baseline = (f.sum() - f) / max(n - 1, 1) if self.estimator == "score" else 0.0
            loss = neg_elbo + (f - baseline) * (log_q - jax.lax.stop_gradient(log_q))
        return {"loss": loss, "neg_elbo_nats": neg_elbo}

    def train_loss(self, model, batch, *, rngs=None):
        return mean_loss_plus_penalty(model, self.per_example(model, batch, train=True, rngs=rngs))
