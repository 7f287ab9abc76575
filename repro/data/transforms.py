"""Batch transforms on the device, inside jit: a batch dict in, a batch dict out.

Each transform reads the fields' kinds (repro/data/fields.py), so geometry stays consistent: a
random crop or flip moves every image, box and mask field of an example by the same offset.
A run's transforms are `data.transforms` (a list of `_target_` nodes), else the ones its
`data.mean/std/augment/pad` describe (`for_data`): augmentation on raw pixels (so padding is
black, as in torchvision recipes), then normalization. Fields of other kinds (labels, tokens,
instance classes) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from repro.data.fields import KINDS, Field


def _of_kind(fields: dict[str, Field], batch: dict, kind: str) -> list[str]:
    return [name for name, f in fields.items() if f.kind == kind and name in batch]


def normalize(images, mean, std):
    """uint8 NHWC -> float32, (x - mean) / std with per-channel values in 0..255 units."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return (images.astype(jnp.float32) - mean) / std


class Normalize:
    """Every image field -> float32 (x - mean) / std, per channel, in 0..255 units."""

    random, train_only = False, False

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, batch: dict, fields: dict[str, Field], key=None) -> dict:
        return {**batch, **{name: normalize(batch[name], self.mean, self.std)
                            for name in _of_kind(fields, batch, "image")}}


def crop_flip_offsets(key, n: int, pad: int, flip: bool):
    """Per example: the crop's corner (row, col) in the padded image, 0..2*pad, and a 0/1 flip."""
    crop_key, flip_key = jax.random.split(key)
    corners = jax.random.randint(crop_key, (n, 2), 0, 2 * pad + 1)
    flips = jax.random.bernoulli(flip_key, 0.5, (n,)) if flip else jnp.zeros((n,), bool)
    return corners, flips


def _crop_flip_planes(x, corners, flips, pad: int):
    """x [N, H, W, ...]: zero-pad H and W by `pad`, crop H x W at each corner, flip W if asked."""
    n, h, w = x.shape[:3]
    rest = x.shape[3:]
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad)) + ((0, 0),) * len(rest))

    def crop(image, corner):
        return jax.lax.dynamic_slice(image, (corner[0], corner[1]) + (0,) * len(rest), (h, w, *rest))

    out = jax.vmap(crop)(padded, corners)
    return jnp.where(flips.reshape(n, *(1,) * (out.ndim - 1)), out[:, :, ::-1], out)


def move_boxes(boxes, corners, flips, pad: int, width: int, height: int):
    """Boxes [N, K, 4] (x0, y0, x1, y1, pixels) under the crop at `corners` and the flips: shifted
    by pad - corner, clipped to the canvas, and mirrored (x -> W - x) where flipped."""
    dx = (pad - corners[:, 1]).astype(boxes.dtype)[:, None]
    dy = (pad - corners[:, 0]).astype(boxes.dtype)[:, None]
    x0 = jnp.clip(boxes[..., 0] + dx, 0, width)
    x1 = jnp.clip(boxes[..., 2] + dx, 0, width)
    y0 = jnp.clip(boxes[..., 1] + dy, 0, height)
    y1 = jnp.clip(boxes[..., 3] + dy, 0, height)
    f = flips[:, None]
    x0, x1 = jnp.where(f, width - x1, x0), jnp.where(f, width - x0, x1)
    return jnp.stack([x0, y0, x1, y1], axis=-1)


def random_crop_flip(key, images, pad: int = 4, flip: bool = True):
    """Images only [N, H, W, C]: RandomCropFlip's draw and crop (for bare-JAX benchmarks)."""
    corners, flips = crop_flip_offsets(key, images.shape[0], pad, flip)
    return _crop_flip_planes(images, corners, flips, pad)


class RandomCropFlip:
    """Training only: zero-pad by `pad`, crop the original size at a random corner, flip half of
    the examples horizontally; images [N, H, W, C], masks [N, K, H, W] and boxes [N, K, 4] of an
    example all move together. A box cropped out of the canvas (no area left) is marked invalid
    in its `valid` field, when it has one."""

    random, train_only = True, True

    def __init__(self, pad: int = 4, flip: bool = True):
        self.pad, self.flip = pad, flip

    def __call__(self, batch: dict, fields: dict[str, Field], key=None) -> dict:
        images = _of_kind(fields, batch, "image")
        if not images:
            raise ValueError("RandomCropFlip needs an image field to take the canvas size from")
        n, h, w = batch[images[0]].shape[:3]
        corners, flips = crop_flip_offsets(key, n, self.pad, self.flip)
        out = dict(batch)
        for name in images:
            out[name] = _crop_flip_planes(batch[name], corners, flips, self.pad)
        for name in _of_kind(fields, batch, "masks"):  # [N, K, H, W] -> planes first
            planes = jnp.moveaxis(batch[name], 1, -1)
            out[name] = jnp.moveaxis(_crop_flip_planes(planes, corners, flips, self.pad), -1, 1)
        for name in _of_kind(fields, batch, "boxes"):
            moved = move_boxes(batch[name], corners, flips, self.pad, w, h)
            out[name] = moved
            valid = fields[name].valid
            if valid is not None and valid in batch:
                area = (moved[..., 2] - moved[..., 0]) * (moved[..., 3] - moved[..., 1])
                out[valid] = jnp.where(area > 0, batch[valid], jnp.zeros_like(batch[valid]))
        return out


class Transforms:
    """The run's transforms in order: `transforms(batch, key=..., train=...)`. Training-only ones
    are skipped at evaluation; each random one draws from its own fold of the step's key."""

    def __init__(self, transforms: Sequence, fields: dict[str, Field] | None = None):
        self.transforms, self.fields = list(transforms), fields

    def __call__(self, batch: dict, key=None, train: bool = False) -> dict:
        fields = self.fields  # None: kinds read off the conventional names
        if fields is None:
            fields = {name: Field(name) for name in batch if name in KINDS}
        for i, t in enumerate(self.transforms):
            if t.train_only and not train:
                continue
            if t.random and key is None:
                raise ValueError(f"{type(t).__name__} is random: give the transforms a key")
            batch = t(batch, fields, key=jax.random.fold_in(key, i) if t.random else None)
        return batch


def for_data(data_cfg, fields: dict[str, Field]) -> Transforms:
    """The transforms a `data` config names: `data.transforms` (built from `_target_` nodes) or,
    without them, crop/flip (data.augment=crop_flip, data.pad) then Normalize(data.mean, data.std)."""
    configured = data_cfg.get("transforms") if hasattr(data_cfg, "get") else None
    if configured:
        from hydra.utils import instantiate

        return Transforms([instantiate(node) for node in configured], fields)
    steps = []
    if data_cfg.augment is not None:
        if data_cfg.augment != "crop_flip":
            raise ValueError(f"unknown augmentation {data_cfg.augment!r}; known: crop_flip "
                             "(or list transforms in data.transforms)")
        if data_cfg.pad is None:
            raise ValueError(f"augment={data_cfg.augment} crops a padded image: set data.pad (e.g. 4)")
        steps.append(RandomCropFlip(pad=data_cfg.pad))
    if data_cfg.get("mean") is not None:
        steps.append(Normalize(data_cfg.mean, data_cfg.std))
    return Transforms(steps, fields)
