"""The in-memory data set every experiment trains on, and the one place that picks its source."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from repro.data.fields import Field, check_fields, infer_fields, split_size
from repro.data.records import record
from repro.errors import DataError


@dataclasses.dataclass
class Dataset:
    """Whole splits as numpy arrays, one per named field (repro/data/fields.py), e.g. images
    uint8 (N, H, W, C) and labels int32 (N,), or tokens int32 (N, T). `fields` declares each
    field's kind; by default it is read off the conventional names."""

    name: str
    splits: dict[str, dict[str, np.ndarray]]
    source: str
    # How the source falls short of the official data set, e.g. "5085 of 50000 train images"
    # or files whose content is not the official one (a mirror's sums vouched for them).
    partial: str | None = None
    files: dict[str, dict] = dataclasses.field(default_factory=dict)  # sha256, official per file
    fields: dict[str, Field] | None = None  # None: inferred from the conventional field names

    def __post_init__(self):
        if self.fields is None:
            self.fields = infer_fields(next(iter(self.splits.values()), {}))
        for name, split in self.splits.items():
            check_fields(self.fields, split, f"{self.name} split {name!r}")

    def identity(self) -> dict:
        """What the data are, not where they lie: name, split sizes, the files' SHA-256."""
        return {"name": self.name, "splits": {s: split_size(v) for s, v in self.splits.items()},
                "sha256": {f: checked["sha256"] for f, checked in self.files.items()}}

    def split(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.splits:
            raise DataError(f"{self.name} has no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]


def _carve_validation(splits: dict, size: int) -> dict:
    """Hold out the last `size` training examples as 'validation' (He et al.: 45k/5k)."""
    if size <= 0:
        return splits
    train = splits["train"]
    n = split_size(train)
    if size >= n:
        raise DataError(f"validation_size={size} leaves no training data (train has {n})")
    splits = dict(splits)
    splits["train"] = {k: v[: n - size] for k, v in train.items()}
    splits["validation"] = {k: v[n - size :] for k, v in train.items()}
    return splits


def binarize(images: np.ndarray, seed: int, stream: str, chunk: int = 10_000) -> np.ndarray:
    """uint8 intensities -> uint8 0/1 pixels drawn once: pixel ~ Bernoulli(intensity / 255).

    The draw is a pure function of (seed, stream, image index, pixel): the stream (the split's
    name) gets its own generator, so e.g. the test set's draw does not depend on the training
    set's size. This is how Salakhutdinov & Murray (2008) binarized MNIST (stochastically, once),
    with another random draw."""
    rng = np.random.default_rng([seed, *stream.encode()])
    out = np.empty(images.shape, np.uint8)
    for start in range(0, len(images), chunk):  # float32 uniforms for 10k images at a time
        block = images[start : start + chunk]
        u = rng.random(block.shape, dtype=np.float32)
        out[start : start + chunk] = u < block.astype(np.float32) / 255.0
    return out


# Where a checkout's local mirrors sit when nothing says otherwise: shared/data beside the
# repository (as on the development machines and CI), for make targets and direct calls alike.
DEFAULT_MIRROR = Path(__file__).resolve().parents[3] / "shared" / "data"


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """The mirror folder: the config value, else $REPRO_DATA_DIR, else shared/data beside the
    repository when it exists, else None (the online path: TFDS)."""
    data_dir = data_dir or os.environ.get("REPRO_DATA_DIR") or None
    if data_dir is None and DEFAULT_MIRROR.is_dir():
        return DEFAULT_MIRROR
    return Path(data_dir).expanduser().resolve() if data_dir else None


def load_dataset(
    name: str,
    data_dir: str | None = None,
    validation_size: int = 0,
    limit_train: int | None = None,
    binarize_seed: int | None = None,
    test_redraws: Sequence[int] = (),
    tfds_dir: str | None = None,
) -> Dataset:
    """Load data set `name` (a record of repro/data/records.py) from a local mirror if one is
    given, else from TFDS (`tfds_dir`: its data dir, default TFDS's own).

    binarize_seed: replace every split's images by one fixed stochastic binarization (0/1 uint8,
    `binarize`), drawn before the validation split is carved out of train, so an image's draw
    does not depend on validation_size or limit_train. test_redraws: for each seed s, a split
    'test_redraw<s>' holding the test images binarized with seed s (how much the test number
    moves with the draw)."""
    from repro.data import tfds_source

    data_set = record(name)
    root = resolve_data_dir(data_dir)
    if root is not None:
        splits, source, files = data_set.read_mirror(root)
    elif data_set.read_online is not None:  # not in TFDS: the record fetches its own files
        splits, source, files = data_set.read_online(tfds_dir)
    else:
        splits, source, files = tfds_source.read(data_set.tfds_name, tfds_dir)
    unofficial = [f for f, checked in files.items() if checked["official"] is False]
    partial = missing_examples(data_set.official_sizes, splits)
    if unofficial and not partial:  # official sizes, other content (a short set says so already)
        partial = (f"not the official content of {', '.join(unofficial)} "
                   "(vouched for by the mirror's sums only)")
    if binarize_seed is not None:
        test = splits["test"]
        redraws = {f"test_redraw{r}": {**test, "image": binarize(test["image"], r, "test")}
                   for r in test_redraws}
        splits = {s: {**split, "image": binarize(split["image"], binarize_seed, s)}
                  for s, split in splits.items()}
        splits.update(redraws)
        source += f" (binarized, seed {binarize_seed})"
    if limit_train:
        splits["train"] = {k: v[:limit_train] for k, v in splits["train"].items()}
    splits = _carve_validation(splits, validation_size)
    return Dataset(name=name, splits=splits, source=source, partial=partial, files=files,
                   fields=data_set.fields)


def missing_examples(official_sizes: dict[str, int], splits: dict) -> str | None:
    """None if every split has its official size, else what is short ("5000 of 50000 train
    images, ..."). Checked on the source's splits, before limit_train or a validation carve."""
    short = [f"{split_size(splits[s])} of {n} {s} images"
             for s, n in official_sizes.items()
             if s in splits and split_size(splits[s]) < n]
    return ", ".join(short) or None
