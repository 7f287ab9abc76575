"""Device-side batch order: which examples each step trains on, inside jit (the transforms
applied to them are repro/data/transforms.py).

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
