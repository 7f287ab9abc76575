"""FaceNet's triplet loss with online negative mining inside the batch (Schroff et al. 2015, sec.
3.1-3.2), vectorized over every (anchor, positive, negative) of the batch:

    L = sum over (a, p) of max(||f(a) - f(p)||^2 - ||f(a) - f(n)||^2 + alpha, 0)

over all anchor-positive pairs of the batch (the paper uses all of them), each with one negative n
chosen by `mining`:

  semihard  the closest negative farther from the anchor than the positive (d_an > d_ap; it lies
            inside the margin when it counts); where no negative is that far, the farthest one
            (the least hard: the paper's warning is against the hardest);
  hardest   the closest negative of the anchor (argmin d_an), which the paper says can collapse
            the model early in training (f(x) = 0);
  random    a negative drawn uniformly (the baseline mining is measured against).

The loss is averaged over the anchor-positive pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MINING = ("semihard", "hardest", "random")


def squared_distances(e):
    """[B, B] squared Euclidean distances between the rows of e (>= 0)."""
    sq = (e * e).sum(-1)
    return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * e @ e.T, 0.0)


def chosen_negative_distance(d, labels, mining: str, key=None):
    """[B, B] d(a, n(a, p)): the distance from anchor a to the negative chosen for the pair (a, p)."""
    negative = labels[:, None] != labels[None, :]  # [a, n]
    if mining == "hardest":
        hardest = jnp.where(negative, d, jnp.inf).min(-1)
        return jnp.broadcast_to(hardest[:, None], d.shape)
    if mining == "random":
        # the anchor's negatives first in each row; pair (a, p) takes the j-th, j uniform
        order = jnp.argsort(~negative, axis=1, stable=True)
        count = negative.sum(1, keepdims=True)
        j = jnp.minimum((jax.random.uniform(key, d.shape) * count).astype(jnp.int32), count - 1)
        picked = jnp.take_along_axis(order, j, axis=1)  # [a, p] -> n
        return jnp.take_along_axis(d, picked, axis=1)
    if mining == "semihard":
        d_ap = d[:, :, None]  # [a, p, 1]
        d_an = d[:, None, :]  # [a, 1, n]
        farther = negative[:, None, :] & (d_an > d_ap)
        closest_farther = jnp.where(farther, d_an, jnp.inf).min(-1)
        farthest = jnp.where(negative, d, -jnp.inf).max(-1)[:, None]
        return jnp.where(jnp.isfinite(closest_farther), closest_farther, farthest)
    raise ValueError(f"unknown mining {mining!r}; known: {MINING}")


def triplet_terms(e, labels, margin: float, mining: str, key=None):
    """(per-pair hinge [B, B], anchor-positive mask [B, B], d_ap [B, B], chosen d_an [B, B])."""
    d = squared_distances(e)
    same = labels[:, None] == labels[None, :]
    pairs = same & ~jnp.eye(len(labels), dtype=bool)
    d_an = chosen_negative_distance(d, labels, mining, key)
    hinge = jnp.maximum(d - d_an + margin, 0.0)
    return hinge, pairs, d, d_an


class TripletLoss:
    """Objective: training batches must hold several photos of each identity (the ClassBalanced
    sampler: P identities x K photos). Logs the loss, the fraction of active triplets (hinge > 0),
    the mean anchor-positive and chosen anchor-negative distances, and the embedding spread."""

    def __init__(self, margin: float = 0.2, mining: str = "semihard"):
        if mining not in MINING:
            raise ValueError(f"objective.mining={mining!r}; known: {', '.join(MINING)}")
        if margin <= 0:
            raise ValueError(f"objective.margin={margin}: the margin must be positive")
        self.margin, self.mining = margin, mining

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        """spread: ||f(x) - mean f||^2 over the batch's real examples (0 for a collapsed model,
        1 - ||mean f||^2 on average: near 1 for embeddings spread over the sphere)."""
        e = model(batch["image"], train=train, rngs=rngs)
        mask = batch.get("batch_mask", jnp.ones(len(e)))
        mean = (e * mask[:, None]).sum(0) / jnp.maximum(mask.sum(), 1.0)
        return {"spread": ((e - mean) ** 2).sum(-1)}

    def train_loss(self, model, batch, *, rngs=None):
        e = model(batch["image"], train=True, rngs=rngs)
        key = rngs.dropout() if (rngs is not None and self.mining == "random") else None
        hinge, pairs, d, d_an = triplet_terms(e, batch["label"], self.margin, self.mining, key)
        count = jnp.maximum(pairs.sum(), 1)
        loss = jnp.where(pairs, hinge, 0.0).sum() / count
        mean = e.mean(0)
        return loss, {
            "loss": loss,
            "active_triplets": jnp.where(pairs, hinge > 0, False).sum() / count,
            "positive_distance": jnp.where(pairs, d, 0.0).sum() / count,
            "negative_distance": jnp.where(pairs, d_an, 0.0).sum() / count,
            "spread": ((e - mean) ** 2).sum(-1).mean(),
        }
