"""Section 3.3 of Szegedy et al. 2016: very wide residual Inception networks "died" early in
training: "the last layer before the average pooling started to produce only zeros". This probe
measures how close a network is to that."""

from __future__ import annotations

import jax.numpy as jnp


class DeadFeatures:
    """On the first `examples` images of an eval split, the last stage's output before the
    average pooling (`model.features`): `dead_channels`, the fraction of its channels that are
    zero at every position of every image; `zero_activations`, the fraction of all its values
    that are zero. A network that has died in the paper's sense has 1.0 for both."""

    def __init__(self, split: str = "test", examples: int = 1000):
        if examples < 1:
            raise ValueError(f"DeadFeatures.examples={examples}: use at least 1 image")
        self.split, self.examples = split, examples

    def __call__(self, model, eval_data, transforms) -> dict:
        split = eval_data[self.split]
        images = split["image"].reshape(-1, *split["image"].shape[2:])
        real = split["batch_mask"].reshape(-1) > 0
        n = min(self.examples, images.shape[0])
        inputs = transforms({"image": images[:n]}, train=False)["image"]
        real = real[:n, None, None, None]
        zero = jnp.where(real, model.features(inputs, train=False) == 0, True)  # padding counts as dead
        return {"dead_channels": zero.all(axis=(0, 1, 2)).mean(),
                "zero_activations": jnp.sum(zero & real) / (jnp.sum(real) * zero[0].size)}
