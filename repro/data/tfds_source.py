"""The online path: TFDS data sources (array_record files read without TensorFlow)."""

from __future__ import annotations

import numpy as np

from repro.errors import DataError


def read(tfds_name: str, data_dir: str | None = None):
    """(splits, source, files) like a mirror reader; `data_dir` is TFDS's (None: its default,
    ~/tensorflow_datasets or $TFDS_DATA_DIR). TFDS checks its downloads against its own
    registered checksums, so no file sums are returned."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError("tensorflow-datasets is not installed: run `make venv`.") from err
    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
        builder.download_and_prepare(file_format="array_record")
        sources = {split: builder.as_data_source(split=split) for split in ("train", "test")}
    except Exception as err:  # noqa: BLE001 - network/build failures all end the same way
        raise DataError(
            f"TFDS could not provide {tfds_name!r} ({type(err).__name__}: {err}). Offline? Point "
            "data.dir (or REPRO_DATA_DIR) at a local mirror, e.g. REPRO_DATA_DIR=../shared/data."
        ) from err
    splits = {split: whole_split(source) for split, source in sources.items()}
    return splits, f"tfds:{builder.info.full_name}", {}


def whole_split(source, chunk: int = 10_000) -> dict[str, np.ndarray]:
    """Every example of a TFDS data source as two arrays, read `chunk` records per call (the
    array_record reader fetches and decodes a list of keys at once, in parallel)."""
    images, labels = [], []
    for start in range(0, len(source), chunk):
        keys = list(range(start, min(start + chunk, len(source))))
        try:
            examples = source.__getitems__(keys)
        except TypeError:  # a source without batched reads (TFDS's mock data): one at a time
            examples = [source[k] for k in keys]
        images.append(np.stack([e["image"] for e in examples]))
        labels.append(np.asarray([e["label"] for e in examples]))
    if not images:
        raise DataError(f"the TFDS split {source} is empty")
    return {"image": np.concatenate(images).astype(np.uint8),
            "label": np.concatenate(labels).astype(np.int32)}
