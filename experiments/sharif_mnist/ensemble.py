"""Independently trained classifiers in one run: the reference model that is attacked (member 0)
and the others that judge its adversarial examples (Sharif et al. 2018 ask whether an Lp-small
change keeps an image's class; here models stand in for the study's people, which they are not).

Members differ in their initialization and in the examples they see: a batch of M x b examples is
cut into M slices and member m trains on slice m alone, with its own loss, so no gradient crosses
members (one optimizer over all of them is M optimizers: Adam's update is per coordinate).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import optax
from flax import nnx

from repro.models.vardrop import DropoutConvNet


class ConvNetEnsemble(nnx.Module):
    """`members` copies of the Kingma et al. convnet used as a plain CNN (conv 32 and 64 maps, 3x3
    stride 2, dense 128 x2, softplus; repro/models/vardrop.py), each with its own initialization.
    Called on images [B, H, W, C] it returns every member's logits, [members, B, classes]."""

    def __init__(self, image_shape: Sequence[int], num_classes: int, members: int = 3, *, rngs: nnx.Rngs):
        if members < 2:
            raise ValueError(f"an ensemble needs the attacked model and at least one judge: "
                             f"members={members}")
        self.members = nnx.List([DropoutConvNet(image_shape, num_classes, dropout="none", rngs=rngs)
                                 for _ in range(members)])

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        return jnp.stack([member(x, train=train, rngs=rngs) for member in self.members])

    def reference(self, x):
        """The attacked model's logits (member 0)."""
        return self.members[0](x)


class EnsembleClassification:
    """Training: member m's softmax cross-entropy on the m-th of `members` equal slices of the
    batch, summed over members (each member's gradient is its own mean loss's). Evaluation, per
    example: `loss`, `accuracy` and `error_percent` of the reference model (member 0), and
    `judges_accuracy`, the mean accuracy of the other members."""

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        logits, labels = model(batch["image"], train=train, rngs=rngs).astype(jnp.float32), batch["label"]
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)  # [members, B]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits[0], labels)
        return {"loss": loss, "accuracy": correct[0], "error_percent": 100.0 * (1.0 - correct[0]),
                "judges_accuracy": correct[1:].mean(0)}

    def train_loss(self, model, batch, *, rngs=None):
        images, labels = batch["image"], batch["label"]
        members = len(model.members)
        if len(labels) % members:
            raise ValueError(f"train.batch_size {len(labels)} does not split into {members} equal "
                             f"slices, one per member: use a multiple of {members}")
        size = len(labels) // members
        losses = [optax.softmax_cross_entropy_with_integer_labels(
            member(images[m * size:(m + 1) * size], train=True, rngs=rngs).astype(jnp.float32),
            labels[m * size:(m + 1) * size]).mean() for m, member in enumerate(model.members)]
        metrics = {"loss": sum(losses) / members, "reference_loss": losses[0]}
        return sum(losses), metrics
