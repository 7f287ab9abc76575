"""What a data set's examples are made of: named fields, each of a declared kind.

A split is a dict of arrays with a common leading axis (the examples); a batch is the same dict
with the batch on that axis. The loop gathers, pads and shards every field alike; transforms
(repro/data/transforms.py) read a field's kind to know what to do with it, so a horizontal flip
moves boxes and masks together with their image.

Conventional names (what the shared objectives and transforms read by default):

    image     uint8 [H, W, C]           pixels, 0..255
    label     int32 []                  one class per example
    tokens    int32 [T]                 a token sequence (no label needed)
    boxes     float32 [K, 4]            K instances' boxes (x0, y0, x1, y1) in pixels, padded
    masks     uint8 [K, H, W]           K instances' pixel masks, padded
    classes   int32 [K]                 K instances' classes, padded
    valid     float32 / uint8 [K]       1 for a real instance, 0 for padding of the K slots

`batch_mask` is reserved: evaluation pads a split to whole batches and marks real examples
with it (1 real, 0 padding).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from repro.errors import DataError

KINDS = ("image", "label", "tokens", "boxes", "masks", "classes", "valid", "value")
GEOMETRIC = ("image", "boxes", "masks")  # moved by geometric transforms
RESERVED = ("batch_mask",)


@dataclasses.dataclass(frozen=True)
class Field:
    """One named field of every example. `kind` says how transforms treat it (GEOMETRIC kinds
    move with the image); `valid` names the 0/1 field that marks which of a padded per-instance
    field's K slots are real (boxes, masks, classes)."""

    kind: str
    valid: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}; known: {', '.join(KINDS)}")


def infer_fields(split: dict[str, np.ndarray]) -> dict[str, Field]:
    """The fields of a split whose names are the conventional ones (module docstring)."""
    unknown = [name for name in split if name not in KINDS]
    if unknown:
        raise DataError(f"fields {unknown} have no conventional name ({', '.join(KINDS)}): declare "
                        "them with Dataset(fields={name: Field(kind)})")
    valid = "valid" if "valid" in split else None
    return {name: Field(name, valid if name in ("boxes", "masks", "classes") else None) for name in split}


def split_size(split: dict[str, np.ndarray]) -> int:
    """The number of examples of a split (every field has them on its leading axis)."""
    sizes = {name: len(v) for name, v in split.items()}
    if len(set(sizes.values())) > 1:
        raise DataError(f"the fields of a split disagree on its number of examples: {sizes}")
    if not sizes:
        raise DataError("a split with no fields")
    return next(iter(sizes.values()))


def check_fields(fields: dict[str, Field], split: dict[str, np.ndarray], where: str) -> None:
    """Every field declared, every declared field present, no reserved name, valid fields exist."""
    missing, extra = sorted(set(fields) - set(split)), sorted(set(split) - set(fields))
    if missing or extra:
        raise DataError(f"{where}: fields declared but absent {missing}, present but undeclared {extra}")
    clash = [name for name in split if name in RESERVED]
    if clash:
        raise DataError(f"{where}: {clash} is reserved for the loop's padding mask; rename the field")
    for name, f in fields.items():
        if f.valid is not None and f.valid not in fields:
            raise DataError(f"{where}: field {name!r} names {f.valid!r} as its valid mask, which is absent")
    split_size(split)
