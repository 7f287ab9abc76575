"""Ancestral samples from a trained PixelCNN, kept in the result file so the report can draw them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.pixelcnn_mnist.pixelcnn import sample


class AncestralSamples:
    """`num` images sampled pixel by pixel (H*W sequential forward passes) with a fixed key.
    Returns {'samples_packed': uint8 (num, ceil(H*W*C / 8))}: the 0/1 pixels in raster order,
    8 to a byte (np.unpackbits(..., count=H*W*C) restores them). Runs only at the end of a run
    (final_only), since sampling costs as much as evaluating a few thousand images."""

    final_only = True

    def __init__(self, num: int = 64, seed: int = 0, window: bool = True):
        self.num, self.seed, self.window = num, seed, window

    def __call__(self, model, eval_data, transforms) -> dict:
        images = sample(model, jax.random.key(self.seed), self.num, window=self.window)
        return {"samples_packed": jnp.packbits(images.reshape(self.num, -1), axis=-1)}
