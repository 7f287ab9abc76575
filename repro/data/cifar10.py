"""CIFAR-10 from the official python-pickle files (cifar-10-batches-py/)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from repro.data import checksums
from repro.errors import DataError

TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
HOW_TO_FIX = (
    "Extract the official cifar-10-python.tar.gz into <data_dir>/cifar10/ (giving "
    "<data_dir>/cifar10/cifar-10-batches-py/), or unset data.dir / REPRO_DATA_DIR to use TFDS."
)


def _find_folder(root: Path) -> tuple[Path, Path | None]:
    """Locate cifar-10-batches-py under root; also return the folder that may hold SHA256SUMS."""
    for base in (root / "cifar10", root / "cifar10-subset", root):
        if (base / "cifar-10-batches-py").is_dir():
            return base / "cifar-10-batches-py", base
    raise DataError(f"no cifar-10-batches-py/ folder under {root}. {HOW_TO_FIX}")


def _read_batch(path: Path, expected: str | None) -> tuple[np.ndarray, np.ndarray, dict]:
    if not path.exists():
        raise DataError(f"CIFAR-10 file {path} is missing. {HOW_TO_FIX}")
    raw = path.read_bytes()
    # No official per-file sums are built in (no verified copy of the full set on these
    # machines): the mirror's sums are checked, and a short data set is caught by its size.
    checked = checksums.verify(path.name, raw, None, expected, HOW_TO_FIX)
    try:
        batch = pickle.loads(raw, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int32)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise DataError(f"{path} is not a CIFAR-10 python batch ({err}). {HOW_TO_FIX}") from err
    # Rows are 1024 R, 1024 G, 1024 B values of a 32x32 image: to NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels, checked


def read_mirror(root: Path):
    folder, base = _find_folder(root)
    sums = checksums.read_sums(base / "SHA256SUMS")
    splits, files = {}, {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        parts = [_read_batch(folder / n, sums.get(f"cifar-10-batches-py/{n}")) for n in names]
        files.update((n, p[2]) for n, p in zip(names, parts, strict=True))
        splits[split] = {
            "image": np.concatenate([p[0] for p in parts]),
            "label": np.concatenate([p[1] for p in parts]),
        }
    return splits, f"mirror:{folder}", files
