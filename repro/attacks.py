"""Projected gradient descent (Madry et al. 2018) as a batched, jitted piece: targeted or
untargeted, in an L2, L-infinity or L0 ball, inside the valid pixel range; and the attack of a
whole split in chunks on the device, with a progress bar.

Steps: L2 moves by `step_size` along the normalized gradient, L-inf by `step_size` times its sign,
L0 by `step_size` times the gradient scaled so that its largest coordinate is 1 (the pixels that
matter most move most; an L2-normalized step spreads over every pixel and hardly moves any); after
each step the perturbation is projected back onto the ball (for L0, `eps` is a whole number of
pixels: all but the `eps` largest changes are set to 0, after the clipping) and the image clipped
to [lower, upper] (clipping only shrinks each coordinate of the perturbation, so it stays in the
ball).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

NORMS = ("l2", "linf", "l0")


def _per_example_norm(x):
    return jnp.sqrt((x * x).reshape(x.shape[0], -1).sum(-1)).reshape(-1, *([1] * (x.ndim - 1)))


def unit_range_logits(model, transforms) -> Callable:
    """The classifier's logits as a function of images in [0, 1], the attack's space; `transforms`
    are the run's evaluation transforms (repro.data.transforms: pixels in 0..255 units in)."""
    return lambda x: model(transforms({"image": x * 255.0}, train=False)["image"], train=False)


def cross_entropy(logits_fn: Callable) -> Callable:
    """The per-example loss pgd takes: softmax cross-entropy of logits_fn(x) against the labels."""
    return lambda x, labels: optax.softmax_cross_entropy_with_integer_labels(logits_fn(x), labels)


def project(delta, eps: float, norm: str):
    """The perturbation's nearest point in the eps-ball of `norm`, per example."""
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    if norm == "l0":
        flat = delta.reshape(delta.shape[0], -1)
        k = int(eps)
        if k != eps or not 0 <= k <= flat.shape[1]:
            raise ValueError(f"an L0 budget is a whole number of coordinates in 0..{flat.shape[1]}, "
                             f"got {eps}")
        if k == flat.shape[1]:
            return delta
        # keep exactly the k largest |changes| (top_k's indices: ties cannot let more through)
        keep = jax.lax.top_k(jnp.abs(flat), k)[1]
        mask = jnp.zeros_like(flat).at[jnp.arange(flat.shape[0])[:, None], keep].set(1.0)
        return (flat * mask).reshape(delta.shape)
    return delta * jnp.minimum(1.0, eps / jnp.maximum(_per_example_norm(delta), 1e-12))


def pgd(loss: Callable, x, labels, *, eps: float, step_size: float, steps: int, norm: str = "l2",
        targeted: bool = True, lower: float = 0.0, upper: float = 1.0):
    """x' within `eps` of x (per example) that lowers (targeted: towards `labels`) or raises
    (untargeted: away from `labels`) loss(x', labels), a per-example loss; x' in [lower, upper]."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; known: {NORMS}")
    sign = -1.0 if targeted else 1.0

    def step(delta, _):
        g = sign * jax.grad(lambda d: loss(x + d, labels).sum())(delta)
        if norm == "linf":
            move = step_size * jnp.sign(g)
        elif norm == "l0":
            flat = jnp.abs(g).reshape(g.shape[0], -1).max(-1)
            move = step_size * g / jnp.maximum(flat, 1e-12).reshape(-1, *([1] * (g.ndim - 1)))
        else:
            move = step_size * g / jnp.maximum(_per_example_norm(g), 1e-12)
        if norm == "l0":  # clipped first, so that no pixel of the budget goes to a change clipping undoes
            return project(jnp.clip(x + delta + move, lower, upper) - x, eps, norm), None
        delta = project(delta + move, eps, norm)
        return jnp.clip(x + delta, lower, upper) - x, None

    delta, _ = jax.lax.scan(step, jnp.zeros_like(x), None, length=steps)
    return x + delta


def attack_split(loss: Callable, images: np.ndarray, labels: np.ndarray, *, chunk: int = 1000,
                 desc: str = "PGD", progress: bool = True, **pgd_args) -> np.ndarray:
    """pgd over a whole split, `chunk` examples per jitted call (the last one padded, so one
    compilation); returns the perturbed images as float32."""
    attack = jax.jit(lambda x, y: pgd(loss, x, y, **pgd_args))
    n, out = len(labels), []
    for start in tqdm(range(0, n, chunk), desc=desc, disable=not progress, unit="chunk"):
        x, y = images[start:start + chunk], labels[start:start + chunk]
        pad = chunk - len(y)
        if pad:
            x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
            y = np.concatenate([y, np.repeat(y[-1:], pad, 0)])
        out.append(np.asarray(attack(jnp.asarray(x, jnp.float32), jnp.asarray(y)))[: chunk - pad])
    return np.concatenate(out)


def deterministic_targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """t = (y + 1) mod C: D_det's labels."""
    return ((np.asarray(labels) + 1) % num_classes).astype(np.int32)


def random_targets(seed: int, n: int, num_classes: int) -> np.ndarray:
    """t uniform over the classes, independent of y: D_rand's labels."""
    return np.random.default_rng(seed).integers(0, num_classes, n).astype(np.int32)
