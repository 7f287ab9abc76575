"""The online path: TFDS data sources (array_record files read without TensorFlow)."""

from __future__ import annotations

import numpy as np

from repro.data.dataset import DataError

TFDS_NAMES = {"mnist": "mnist", "cifar10": "cifar10"}


def read(name: str, data_dir: str | None = None):
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError("tensorflow-datasets is not installed: run `make venv`.") from err
    try:
        builder = tfds.builder(TFDS_NAMES[name], data_dir=data_dir)
        builder.download_and_prepare(file_format="array_record")
        sources = builder.as_data_source()
    except Exception as err:  # noqa: BLE001 - network/build failures all end the same way
        raise DataError(
            f"TFDS could not provide {name!r} ({type(err).__name__}: {err}). Offline? Point "
            "data.dir (or REPRO_DATA_DIR) at a local mirror, e.g. REPRO_DATA_DIR=../shared/data."
        ) from err
    splits = {}
    for split in ("train", "test"):
        source = sources[split]
        examples = [source[i] for i in range(len(source))]
        splits[split] = {
            "image": np.stack([e["image"] for e in examples]).astype(np.uint8),
            "label": np.asarray([e["label"] for e in examples], dtype=np.int32),
        }
    # TFDS checks its downloads against its own registered checksums.
    return splits, builder.info.features["label"].num_classes, f"tfds:{builder.info.full_name}", {}
