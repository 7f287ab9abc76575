"""Small natural changes of an image and the distances the study compares (Sharif et al. 2018).

Changes act on images in [0, 1], [B, H, W, C], jitted: `shift` (whole pixels, zeros enter at the
edge: MNIST's background), `rotate` (degrees about the image centre, bilinear, zeros outside;
scipy.ndimage.rotate(reshape=False, order=1) but at the border), `brightness` (+amount, clipped)
and `contrast` (scaled by `amount` about each image's mean, clipped; tf.image.adjust_contrast's
definition). Distances are per image, on the host: L0 counts the pixels that change by more than
half an 8-bit level (a change an 8-bit display shows), L2 and L-inf in [0, 1] units, SSIM is
scikit-image's (7x7 windows, data range 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("shift", "rotate", "brightness", "contrast")
L0_TOLERANCE = 0.5 / 255.0
NORMS = ("l0", "l2", "linf")


def shift(x, dx: int, dy: int):
    """Moved dx pixels right and dy down; the pixels that enter are 0."""
    h, w = x.shape[1:3]
    if abs(dx) >= w or abs(dy) >= h:
        raise ValueError(f"a shift of ({dx}, {dy}) moves the whole {h}x{w} image out")
    padded = jnp.pad(x, ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top:top + h, left:left + w]


def rotate(x, degrees: float):
    """Rotated by `degrees` counter-clockwise as displayed (row 0 on top) about the centre, bilinear,
    as scipy.ndimage.rotate turns it."""
    h, w = x.shape[1:3]
    theta = np.deg2rad(degrees)
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                              indexing="ij")
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # the source pixel of each output pixel: the inverse rotation of its offset from the centre
    src_r = cy + np.cos(theta) * (rows - cy) + np.sin(theta) * (cols - cx)
    src_c = cx - np.sin(theta) * (rows - cy) + np.cos(theta) * (cols - cx)

    def one(channel):
        return jax.scipy.ndimage.map_coordinates(channel, [src_r, src_c], order=1, mode="constant", cval=0.0)

    return jax.vmap(jax.vmap(one, in_axes=-1, out_axes=-1))(x)


def brightness(x, amount: float):
    return jnp.clip(x + amount, 0.0, 1.0)


def contrast(x, amount: float):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return jnp.clip(mean + amount * (x - mean), 0.0, 1.0)


def apply(x, change: dict):
    """One configured change, e.g. {name: shift1, kind: shift, dx: 1, dy: 0}, {kind: rotate,
    degrees: 3}, {kind: brightness, amount: 0.1}, {kind: contrast, amount: 0.8}."""
    kind = change["kind"]
    if kind == "shift":
        return shift(x, int(change.get("dx", 0)), int(change.get("dy", 0)))
    if kind == "rotate":
        return rotate(x, float(change["degrees"]))
    if kind == "brightness":
        return brightness(x, float(change["amount"]))
    if kind == "contrast":
        return contrast(x, float(change["amount"]))
    raise ValueError(f"unknown change {kind!r} in {dict(change)}; known: {KINDS}")


def check(changes) -> None:
    """A clear error for a change config before any run: a known kind, a name, no name twice."""
    names = [c.get("name") for c in changes]
    for c in changes:
        if c.get("kind") not in KINDS or not c.get("name"):
            raise ValueError(f"a change needs a name and a kind in {KINDS}: got {dict(c)}")
    if len(set(names)) != len(names):
        raise ValueError(f"change names must differ: {names}")


def distances(a, b) -> dict:
    """Per image pair (jnp or numpy arrays [N, ...] in [0, 1]): l0 (pixels changed beyond half
    an 8-bit level), l2, linf."""
    d = (jnp.asarray(b, jnp.float32) - jnp.asarray(a, jnp.float32)).reshape(a.shape[0], -1)
    return {"l0": (jnp.abs(d) > L0_TOLERANCE).sum(-1).astype(jnp.float32),
            "l2": jnp.sqrt((d * d).sum(-1)), "linf": jnp.abs(d).max(-1)}


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image pair, scikit-image's SSIM (images [N, H, W, C] in [0, 1])."""
    from skimage.metrics import structural_similarity

    return np.asarray([structural_similarity(x, y, data_range=1.0, channel_axis=-1)
                       for x, y in zip(np.asarray(a, np.float64), np.asarray(b, np.float64), strict=True)])
