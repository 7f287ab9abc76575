"""What a model is trained and evaluated on. An objective maps (model, inputs, labels) to
per-example metrics; the training loss is the mean of the 'loss' entry plus any penalty the
model itself adds (`model.penalty()`, e.g. a KL term), so new papers need no loop changes."""

from __future__ import annotations

import jax.numpy as jnp
import optax


class Classification:
    """Softmax cross-entropy; reports loss, accuracy and error (%)."""

    def per_example(self, model, inputs, labels, *, train: bool, rngs=None) -> dict:
        logits = model(inputs, train=train, rngs=rngs)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return {"loss": loss, "accuracy": correct, "error_percent": 100.0 * (1.0 - correct)}

    def train_loss(self, model, inputs, labels, *, rngs=None):
        metrics = self.per_example(model, inputs, labels, train=True, rngs=rngs)
        metrics = {k: v.mean() for k, v in metrics.items()}
        loss = metrics["loss"]
        if hasattr(model, "penalty"):
            penalty = model.penalty()
            metrics["penalty"] = penalty
            loss = loss + penalty
        return loss, metrics
