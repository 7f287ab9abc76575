"""Data sets as whole uint8 arrays, from local mirrors of the official files or from TFDS."""

from repro.data.dataset import DataError, Dataset, load_dataset

__all__ = ["Dataset", "DataError", "load_dataset"]
