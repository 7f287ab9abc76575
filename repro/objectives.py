"""What a model is trained and evaluated on. An objective maps (model, batch) to per-example
metrics (a classifier's loss and error, a density model's negative log-likelihood);
the training loss is the mean of the 'loss' entry plus any penalty the model itself adds
(`model.penalty()`, e.g. a KL term), so new papers need no loop changes. The batch is the
transformed dict of named fields (repro/data/fields.py): `image` (normalized), `label`,
`tokens`, ..."""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

from repro.interfaces import Penalized


def mean_loss_plus_penalty(model, per_example: dict):
    """Batch means of the per-example metrics; the loss is the mean 'loss' plus model.penalty()."""
    metrics = {k: v.mean() for k, v in per_example.items()}
    loss = metrics["loss"]
    if isinstance(model, Penalized):
        penalty = model.penalty()
        metrics["penalty"] = penalty
        loss = loss + penalty
    return loss, metrics


class Classification:
    """Softmax cross-entropy; reports loss, accuracy and error (%)."""

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        logits, labels = model(batch["image"], train=train, rngs=rngs), batch["label"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return {"loss": loss, "accuracy": correct, "error_percent": 100.0 * (1.0 - correct)}

    def train_loss(self, model, batch, *, rngs=None):
        return mean_loss_plus_penalty(model, self.per_example(model, batch, train=True, rngs=rngs))


class BernoulliLikelihood:
    """Density model of binary images: the model's output is one logit per pixel (same shape as
    the input) and the target is the input image itself (labels are ignored). Inputs must be the
    0/1 pixels (binarized data, mean 0, std 1). Per image it reports

      nll_nats      -log p(x) = sum over pixels of the sigmoid cross-entropy, in nats
      bits_per_dim  the same in bits per pixel (nll_nats / (num_pixels * ln 2))

    and trains on the mean nll_nats over the batch. Lower is better for both."""

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        inputs = batch["image"]
        logits = model(inputs, train=train, rngs=rngs).astype(jnp.float32)
        if logits.shape != inputs.shape:
            raise ValueError(f"a Bernoulli model must return one logit per input value: "
                             f"logits {logits.shape} vs inputs {inputs.shape}")
        per_pixel = optax.sigmoid_binary_cross_entropy(logits, inputs.astype(jnp.float32))
        nll = per_pixel.reshape(len(inputs), -1).sum(-1)
        num_pixels = per_pixel[0].size
        return {"loss": nll, "nll_nats": nll, "bits_per_dim": nll / (num_pixels * math.log(2.0))}

    def train_loss(self, model, batch, *, rngs=None):
        return mean_loss_plus_penalty(model, self.per_example(model, batch, train=True, rngs=rngs))
