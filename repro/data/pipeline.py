"""Device-side input pipeline: batch indices, normalization and augmentation, all inside jit.

Batches are a pure function of (data key, global step), so chunked and unchunked runs and
resumed runs see exactly the same examples in the same order.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def epoch_permutation(key, epoch, num_examples: int):
    """The example order of one epoch: a single sort of random 32-bit keys, half the cost of
    jax.random.permutation's multi-round shuffle (the rare ties keep index order)."""
    bits = jax.random.bits(jax.random.fold_in(key, epoch), (num_examples,), jnp.uint32)
    return jnp.argsort(bits, stable=True).astype(jnp.int32)


def batch_indices(key, start_step, num_steps: int, batch_size: int, num_examples: int):
    """Example indices for steps [start_step, start_step + num_steps): shape (num_steps, batch).

    Each epoch is a fresh permutation (drop-last) seeded by (key, epoch). Only the epochs this
    chunk touches are shuffled: the static `span` bounds them, and lax.cond skips the unused.
    """
    per_epoch = (num_examples // batch_size) * batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_examples} training examples")
    span = math.ceil(num_steps * batch_size / per_epoch) + 1  # epochs a chunk can touch
    position = start_step * batch_size + jnp.arange(num_steps * batch_size)
    epoch, offset = position // per_epoch, position % per_epoch
    first_epoch, last_epoch = epoch[0], epoch[-1]

    def permutation_if_used(e):
        return jax.lax.cond(e <= last_epoch,
                            lambda: epoch_permutation(key, e, num_examples),
                            lambda: jnp.zeros(num_examples, jnp.int32))

    perms = jax.lax.map(permutation_if_used, first_epoch + jnp.arange(span))
    return perms[epoch - first_epoch, offset].reshape(num_steps, batch_size)


def normalize(images, mean, std):
    """uint8 NHWC -> float32, (x - mean) / std with per-channel values in 0..255 units."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return (images.astype(jnp.float32) - mean) / std


def random_crop_flip(key, images, pad: int = 4, flip: bool = True):
    """Zero-pad by `pad`, take a random crop of the original size, flip half horizontally."""
    n, h, w, c = images.shape
    crop_key, flip_key = jax.random.split(key)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    corners = jax.random.randint(crop_key, (n, 2), 0, 2 * pad + 1)

    def crop(image, corner):
        return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0), (h, w, c))

    out = jax.vmap(crop)(padded, corners)
    if flip:
        do_flip = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
        out = jnp.where(do_flip, out[:, :, ::-1, :], out)
    return out


AUGMENTATIONS = {"crop_flip": random_crop_flip}


class Preprocessor:
    """uint8 batch -> model input: augment (train only, on raw pixels, so padding is black
    as in torchvision-based recipes) then normalize."""

    def __init__(self, mean, std, augment: str | None = None, pad: int | None = 4):
        if augment is not None and augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augment!r}; known: {sorted(AUGMENTATIONS)}")
        if augment is not None and pad is None:
            raise ValueError(f"augment={augment} crops a padded image: set data.pad (e.g. 4)")
        self.mean, self.std, self.augment, self.pad = tuple(mean), tuple(std), augment, pad

    def __call__(self, images, key=None, train: bool = False):
        if jnp.issubdtype(images.dtype, jnp.signedinteger):  # tokens, not pixels: read as they are
            return images
        if train and self.augment is not None:
            images = AUGMENTATIONS[self.augment](key, images, pad=self.pad)
        return normalize(images, self.mean, self.std)
