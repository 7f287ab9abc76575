"""Data sets as whole uint8 arrays, from local mirrors of the official files or from TFDS."""

from repro.data.dataset import Dataset, load_dataset
from repro.errors import DataError

__all__ = ["Dataset", "DataError", "load_dataset"]
