"""Detection scenes made of real MNIST digits (the proxy for COCO / VOC of the Faster R-CNN and
Mask R-CNN reproductions): `data.derive` replaces MNIST's splits by scenes built from them, train
scenes from train digits only and test scenes from test digits only.

A scene is a black `canvas` x `canvas` image holding 1..`max_digits` digits, each an MNIST image
scaled (bilinear) so that its 28-pixel frame is `min_size`..`max_size` pixels, placed at a random
position wholly inside the canvas, pasted by maximum (digits may overlap; a placement whose box
overlaps an earlier one by IoU > `max_overlap` is drawn again, up to 50 times, then the digit is
left out). Each instance has a class (the digit), a mask (its scaled pixels >= `mask_threshold`)
and a tight box around the mask, (x0, y0, x1, y1) with x1 - x0 its width in pixels. Everything is
drawn from `seed` and the split's name, so a scene set is a function of (MNIST, the settings); the
SHA-256 of the generated arrays enters the data set's identity (result files name it).

Fields (repro/data/fields.py): image uint8 [N, C, C, 1], boxes float32 [N, K, 4], classes int32
[N, K], masks uint8 [N, K, C, C], valid uint8 [N, K], with K = max_digits slots per scene. With
`proposals="selective_search"`, also each scene's selective-search boxes (Fast R-CNN's input,
repro/data/selective_search.py): proposals float32 [N, P, 4] and proposal_valid uint8 [N, P].
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import scipy.ndimage

from repro.data.fields import Field, infer_fields
from repro.data.selective_search import SelectiveSearch

SPLIT_STREAMS = {"train": 0, "test": 1}
PROPOSAL_METHODS = {"selective_search": SelectiveSearch}
PROPOSAL_FIELDS = {"proposals": Field("boxes", "proposal_valid"), "proposal_valid": Field("valid")}
DIGIT = 28  # MNIST's frame


def _box(mask: np.ndarray, y: int, x: int) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.asarray([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1], np.float32)


def _iou(box: np.ndarray, others: list[np.ndarray]) -> float:
    # plain Python on purpose: repro.detection.iou (JAX) in this per-digit loop makes generating
    # 11k scenes 4x slower (9 s -> 35 s) and, in float32, changes which placements are accepted
    best = 0.0
    for o in others:
        w = max(0.0, min(box[2], o[2]) - max(box[0], o[0]))
        h = max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
        union = (box[2] - box[0]) * (box[3] - box[1]) + (o[2] - o[0]) * (o[3] - o[1]) - w * h
        best = max(best, w * h / union)
    return best


@dataclasses.dataclass(frozen=True)
class SceneSettings:
    canvas: int = 64
    max_digits: int = 4
    min_size: int = 16
    max_size: int = 36
    max_overlap: float = 0.3
    mask_threshold: int = 128

    def __post_init__(self):
        if not 1 <= self.max_digits:
            raise ValueError(f"max_digits must be at least 1, got {self.max_digits}")
        if not 8 <= self.min_size <= self.max_size <= self.canvas:
            raise ValueError(f"digit sizes must satisfy 8 <= min_size <= max_size <= canvas: got "
                             f"{self.min_size}, {self.max_size}, canvas {self.canvas}")
        if not 0.0 <= self.max_overlap <= 1.0:
            raise ValueError(f"max_overlap is an IoU in [0, 1], got {self.max_overlap}")


def make_scenes(images: np.ndarray, labels: np.ndarray, n: int, settings: SceneSettings,
                seed: int, stream: int) -> dict[str, np.ndarray]:
    """`n` scenes from the digits `images` [M, 28, 28, 1] uint8 with their `labels`."""
    s, rng = settings, np.random.default_rng([seed, stream])
    c, k = s.canvas, s.max_digits
    out = {"image": np.zeros((n, c, c, 1), np.uint8), "boxes": np.zeros((n, k, 4), np.float32),
           "classes": np.zeros((n, k), np.int32), "masks": np.zeros((n, k, c, c), np.uint8),
           "valid": np.zeros((n, k), np.uint8)}
    for i in range(n):
        boxes = []
        for slot in range(rng.integers(1, k + 1)):
            j = rng.integers(len(images))
            size = int(rng.integers(s.min_size, s.max_size + 1))
            digit = scipy.ndimage.zoom(images[j, :, :, 0].astype(np.float32), size / DIGIT, order=1)
            digit = np.clip(np.round(digit), 0, 255).astype(np.uint8)
            mask = digit >= s.mask_threshold
            if not mask.any():
                continue
            for _ in range(50):
                y, x = (int(v) for v in rng.integers(0, c - digit.shape[0] + 1, 2))
                box = _box(mask, y, x)
                if _iou(box, boxes) <= s.max_overlap:
                    break
            else:
                continue
            h, w = digit.shape
            region = out["image"][i, y:y + h, x:x + w, 0]
            np.maximum(region, digit, out=region)
            out["masks"][i, slot, y:y + h, x:x + w] = mask
            out["boxes"][i, slot], out["classes"][i, slot], out["valid"][i, slot] = box, labels[j], 1
            boxes.append(box)
    return out


def digest(splits: dict[str, dict[str, np.ndarray]]) -> str:
    """SHA-256 of every generated array, in a fixed order."""
    h = hashlib.sha256()
    for name in sorted(splits):
        for field in sorted(splits[name]):
            h.update(f"{name}/{field}".encode())
            h.update(np.ascontiguousarray(splits[name][field]).tobytes())
    return h.hexdigest()


class MnistScenes:
    """data.derive: MNIST's train and test splits replaced by `train_scenes` / `test_scenes`
    scenes of their own digits (module docstring); with `proposals`, each scene's proposals by
    that method (one of PROPOSAL_METHODS, at its stated settings)."""

    def __init__(self, train_scenes: int = 10000, test_scenes: int = 1000, seed: int = 0,
                 proposals: str | None = None, **settings):
        if train_scenes < 1 or test_scenes < 1:
            raise ValueError(f"scene counts must be at least 1: train {train_scenes}, test {test_scenes}")
        if proposals is not None and proposals not in PROPOSAL_METHODS:
            raise ValueError(f"proposals={proposals!r}: one of {sorted(PROPOSAL_METHODS)} or null")
        self.counts = {"train": train_scenes, "test": test_scenes}
        self.settings, self.seed = SceneSettings(**settings), seed
        self.proposals = PROPOSAL_METHODS[proposals]() if proposals else None

    def __call__(self, data, cfg=None):
        splits = {}
        for name, n in self.counts.items():
            digits = data.split(name)
            splits[name] = make_scenes(digits["image"], digits["label"], n, self.settings, self.seed,
                                       SPLIT_STREAMS[name])
        s = self.settings
        described = (f"{data.source}; scenes: {self.counts['train']} train / {self.counts['test']} test, "
                     f"{s.canvas}x{s.canvas}, 1-{s.max_digits} digits of {s.min_size}-{s.max_size} px "
                     f"(seed {self.seed})")
        fields = None  # the conventional names: inferred
        if self.proposals is not None:
            fields = {**infer_fields(splits["train"]), **PROPOSAL_FIELDS}  # the scenes' own, and these
            cut = 0
            for split in splits.values():
                split["proposals"], split["proposal_valid"], n = self.proposals(split["image"])
                cut += n
            mean = sum(v["proposal_valid"].sum() for v in splits.values()) / sum(self.counts.values())
            described += (f"; selective-search proposals ({mean:.1f} per scene on average, {cut} scenes "
                          f"cut to {self.proposals.max_proposals})")
        files = {**data.files, "mnist_scenes": {"sha256": digest(splits), "official": False}}
        return dataclasses.replace(data, splits=splits, source=described, files=files, fields=fields)
