"""MNIST from the four original IDX files (LeCun et al.), gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from repro.data import checksums
from repro.errors import DataError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the official files' uncompressed content: always checked (see checksums.verify).
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
HOW_TO_FIX = (
    "Put the four official MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in <data_dir>/mnist/, "
    "or unset data.dir / REPRO_DATA_DIR to download through TFDS."
)
_IDX_DTYPES = {0x08: np.uint8}


def parse_idx(raw: bytes) -> np.ndarray:
    """Decode one IDX file: magic (0, 0, dtype, ndim), big-endian int32 dims, then the data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError("not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(int)
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"IDX file truncated: header says {expected} values, found {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _read_file(folder: Path, stem: str) -> bytes:
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.exists():
            try:
                return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            except (OSError, EOFError) as err:
                raise DataError(f"{path} cannot be decompressed ({err}). {HOW_TO_FIX}") from err
    raise DataError(f"MNIST file {stem}(.gz) not found in {folder}. {HOW_TO_FIX}")


def read_mirror(root: Path):
    """Read <root>/mnist (or <root> itself if it holds the files); verify checksums."""
    folder = root / "mnist" if (root / "mnist").is_dir() else root
    mirror_sums = checksums.read_sums(folder / "SHA256SUMS.uncompressed")
    splits, files = {}, {}
    for split, (images_stem, labels_stem) in FILES.items():
        arrays = {}
        for key, stem in (("image", images_stem), ("label", labels_stem)):
            raw = _read_file(folder, stem)
            files[stem] = checksums.verify(stem, raw, OFFICIAL_SHA256[stem], mirror_sums.get(stem),
                                           HOW_TO_FIX)
            arrays[key] = parse_idx(raw)
        if len(arrays["image"]) != len(arrays["label"]):
            raise DataError(f"MNIST {split}: {len(arrays['image'])} images but {len(arrays['label'])} labels")
        splits[split] = {"image": arrays["image"][..., None], "label": arrays["label"].astype(np.int32)}
    return splits, f"mirror:{folder}", files
