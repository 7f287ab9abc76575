"""One record per data set: everything the loader needs to know about it. A new data set is a
reader module (mirror files -> uint8 arrays, checksums checked) plus one record here."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path

from repro.data import cifar10, mnist
from repro.errors import DataError

# (splits {"train"/"test": {"image": uint8 NHWC, "label": int32}}, source, {file: checks})
MirrorReader = Callable[[Path], tuple[dict, str, dict]]


@dataclasses.dataclass(frozen=True)
class DataSetRecord:
    name: str                      # the config's data.name
    read_mirror: MirrorReader      # the official files in a local folder, checksums checked
    tfds_name: str | None          # the same data through TFDS (online); None: `read_online`
    # Examples per split of the official release: a source with fewer holds only part of the
    # data (e.g. the 10% CIFAR-10 subset kept for tests), and numbers from it are not a
    # reproduction.
    official_sizes: dict[str, int]
    read_online: Callable[[str | None], tuple[dict, str, dict]] | None = None  # (cache dir)
    # Fields whose names are not the conventional ones (repro/data/fields.py) declared here
    fields: dict | None = None


RECORDS = {r.name: r for r in (
    DataSetRecord("mnist", mnist.read_mirror, "mnist", {"train": 60000, "test": 10000}),
    DataSetRecord("cifar10", cifar10.read_mirror, "cifar10", {"train": 50000, "test": 10000}),
)}


def paper_records() -> dict[str, DataSetRecord]:
    """Data sets a paper brings in its own folder: the RECORDS list of experiments/<paper>/data.py
    (e.g. SeqGAN's oracle samples), found the way experiment configs are (by folder)."""
    from repro.configuration import EXPERIMENTS_DIR

    found = {}
    for path in sorted(EXPERIMENTS_DIR.glob("*/data.py")):
        module = importlib.import_module(f"experiments.{path.parent.name}.data")
        found.update({r.name: r for r in getattr(module, "RECORDS", ())})
    return found


def record(name: str) -> DataSetRecord:
    known = RECORDS if name in RECORDS else {**RECORDS, **paper_records()}
    if name not in known:
        raise DataError(f"unknown data set {name!r}; known: {sorted(known)} (a new one needs a reader "
                        "and a record: in repro/data/records.py, or a paper's own in the RECORDS list "
                        "of experiments/<paper>/data.py)")
    return known[name]
