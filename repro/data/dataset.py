"""The in-memory data set every experiment trains on, and the one place that picks its source."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np


class DataError(RuntimeError):
    """A data set is missing, incomplete or corrupt; the message says how to fix it."""


@dataclasses.dataclass
class Dataset:
    """Whole splits as numpy arrays: images uint8 (N, H, W, C), labels int32 (N,)."""

    name: str
    splits: dict[str, dict[str, np.ndarray]]
    num_classes: int
    source: str

    def split(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.splits:
            raise DataError(f"{self.name} has no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]


def _carve_validation(splits: dict, size: int) -> dict:
    """Hold out the last `size` training examples as 'validation' (He et al.: 45k/5k)."""
    if size <= 0:
        return splits
    train = splits["train"]
    n = len(train["label"])
    if size >= n:
        raise DataError(f"validation_size={size} leaves no training data (train has {n})")
    splits = dict(splits)
    splits["train"] = {k: v[: n - size] for k, v in train.items()}
    splits["validation"] = {k: v[n - size :] for k, v in train.items()}
    return splits


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """The mirror folder: the config value, else $REPRO_DATA_DIR, else None (use TFDS)."""
    data_dir = data_dir or os.environ.get("REPRO_DATA_DIR") or None
    return Path(data_dir).expanduser().resolve() if data_dir else None


def load_dataset(
    name: str,
    data_dir: str | None = None,
    validation_size: int = 0,
    limit_train: int | None = None,
) -> Dataset:
    """Load `name` ('mnist' or 'cifar10') from a local mirror if one is given, else from TFDS."""
    from repro.data import cifar10, mnist, tfds_source

    readers = {"mnist": mnist.read_mirror, "cifar10": cifar10.read_mirror}
    if name not in readers:
        raise DataError(f"unknown data set {name!r}; known: {sorted(readers)}")
    root = resolve_data_dir(data_dir)
    if root is not None:
        splits, num_classes, source = readers[name](root)
    else:
        splits, num_classes, source = tfds_source.read(name)
    if limit_train:
        splits["train"] = {k: v[:limit_train] for k, v in splits["train"].items()}
    splits = _carve_validation(splits, validation_size)
    return Dataset(name=name, splits=splits, num_classes=num_classes, source=source)
