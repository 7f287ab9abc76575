"""Identities for the FaceNet proxy (`data.derive`): each identity is one real MNIST digit image, its
"photos" are random variations of it, drawn deterministically from (seed, split, identity).

Why a fair stand-in: verification must tell whether two images show the same *writer's* digit,
not the same class; an identity's nearest impostors are other writers' versions of the same
digit, so hard negatives come as naturally as a look-alike's face does. Training identities are
MNIST training images, test identities MNIST test images: no test identity is ever seen in
training. What it cannot say: faces vary in pose, lighting, age and occlusion; these photos vary
only by the small geometric and stroke changes below.

A photo of image x: an affine map (rotation +-12 degrees, scale 0.9-1.1, shear +-0.15, shift +-2
pixels) composed with an elastic displacement (a random field smoothed by a Gaussian of 3 pixels,
peak ~1.5 pixels), sampled bilinearly; then the stroke thickened or thinned by up to half a 3x3
dilation/erosion; then Gaussian pixel noise (8/255), clipped to 0..255.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

SPLIT_STREAMS = {"train": 0, "test": 1}  # each split draws from its own stream


def _smooth_field(key, size: int, sigma: float, peak: float):
    """A [2, size, size] displacement field: white noise blurred by a Gaussian, scaled to `peak`."""
    noise = jax.random.normal(key, (2, size, size))
    radius = int(3 * sigma)
    taps = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1) / sigma) ** 2)
    taps = taps / taps.sum()
    blur = jax.vmap(lambda f: jnp.convolve(f, taps, mode="same"))
    field = jax.vmap(lambda f: blur(blur(f).T).T)(noise)
    return peak * field / (jnp.abs(field).max() + 1e-6)


def photo(key, image):
    """One random variation of a [H, W] float image in 0..255 (see the module docstring)."""
    size = image.shape[0]
    k_rot, k_scale, k_shear, k_shift, k_field, k_stroke, k_noise = jax.random.split(key, 7)
    angle = jnp.deg2rad(jax.random.uniform(k_rot, (), minval=-12.0, maxval=12.0))
    scale = jax.random.uniform(k_scale, (), minval=0.9, maxval=1.1)
    shear = jax.random.uniform(k_shear, (), minval=-0.15, maxval=0.15)
    shift = jax.random.uniform(k_shift, (2,), minval=-2.0, maxval=2.0)
    c, s = jnp.cos(angle), jnp.sin(angle)
    # output pixel -> input pixel (the inverse map), about the image centre
    inverse = jnp.array([[c, -s], [s, c]]) @ jnp.array([[1.0, shear], [0.0, 1.0]]) / scale
    centre = (size - 1) / 2.0
    rows, cols = jnp.meshgrid(jnp.arange(size, dtype=jnp.float32), jnp.arange(size, dtype=jnp.float32),
                              indexing="ij")
    grid = jnp.stack([rows - centre - shift[0], cols - centre - shift[1]])
    coords = jnp.einsum("ij,jhw->ihw", inverse, grid) + centre
    coords = coords + _smooth_field(k_field, size, sigma=3.0, peak=1.5)
    warped = map_coordinates(image, [coords[0], coords[1]], order=1, mode="constant", cval=0.0)
    padded = jnp.pad(warped, 1)
    windows = jnp.stack([padded[i:i + size, j:j + size] for i in range(3) for j in range(3)])
    amount = jax.random.uniform(k_stroke, (), minval=-0.5, maxval=0.5)
    stroke = jnp.where(amount > 0, warped + amount * (windows.max(0) - warped),
                       warped + amount * (warped - windows.min(0)))
    noisy = stroke + 8.0 * jax.random.normal(k_noise, stroke.shape)
    return jnp.clip(jnp.round(noisy), 0, 255)


@functools.partial(jax.jit, static_argnums=2)
def _photos(key, images, k: int, first):
    """[N, K, H, W] photos of N [H, W] images, identities first, first + 1, ...; photo j of
    identity i depends on (key, i, j) only."""

    def of_identity(i, image):
        keys = jax.vmap(lambda j: jax.random.fold_in(jax.random.fold_in(key, i), j))(jnp.arange(k))
        return jax.vmap(photo, in_axes=(0, None))(keys, image)

    return jax.vmap(of_identity)(first + jnp.arange(images.shape[0]), images)


def identity_photos(images: np.ndarray, photos: int, seed: int, stream: int, chunk: int = 500) -> np.ndarray:
    """uint8 [N * photos, H, W, 1], identity i's photos in rows [i*photos, (i+1)*photos)."""
    key = jax.random.fold_in(jax.random.key(seed), stream)
    out = []
    for start in range(0, len(images), chunk):
        block = jnp.asarray(images[start:start + chunk, ..., 0], jnp.float32)
        drawn = _photos(key, block, photos, start)
        out.append(np.asarray(drawn, np.uint8).reshape(-1, *images.shape[1:3], 1))
    return np.concatenate(out)


class IdentityPhotos:
    """data.derive: `train` becomes `train_identities` identities x `train_photos` photos (labels:
    identity ids 0..), `test` becomes `test_identities` x `test_photos` (ids 0.. of their own);
    identities are the first images of each split (MNIST's order). The generated arrays' SHA-256
    enters the data set's identity, so a result names exactly what it was trained and tested on."""

    def __init__(self, train_identities: int = 2000, train_photos: int = 20, test_identities: int = 1000,
                 test_photos: int = 10, seed: int = 0):
        splits = {"train": train_identities, "test": test_identities}
        for name, n in splits.items():
            if n < 2:
                raise ValueError(f"{name}_identities={n}: verification needs at least 2 identities")
        for name, k in {"train": train_photos, "test": test_photos}.items():
            if k < 2:
                raise ValueError(f"{name}_photos={k}: an identity needs at least 2 photos (a positive pair)")
        self.sizes = {"train": (train_identities, train_photos), "test": (test_identities, test_photos)}
        self.seed = seed

    def __call__(self, data, cfg):
        splits, digest = {}, hashlib.sha256()
        for name, (identities, photos) in self.sizes.items():
            source = data.split(name)["image"]
            if identities > len(source):
                raise ValueError(f"{name}_identities={identities}, but the {name} split has only "
                                 f"{len(source)} images: lower it")
            images = identity_photos(source[:identities], photos, self.seed, SPLIT_STREAMS[name])
            labels = np.repeat(np.arange(identities, dtype=np.int32), photos)
            splits[name] = {"image": images, "label": labels}
            digest.update(images.tobytes())
            digest.update(labels.tobytes())
        (n_train, k_train), (n_test, k_test) = self.sizes["train"], self.sizes["test"]
        described = (f"{data.source}; identities: {n_train} train / {n_test} test images x {k_train} / "
                     f"{k_test} photos (seed {self.seed})")
        files = {**data.files, "identity_photos": {"sha256": digest.hexdigest(), "official": False}}
        return dataclasses.replace(data, splits=splits, source=described, files=files)
