"""SHA-256 verification of mirrored data files."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sums(path: Path) -> dict[str, str]:
    """Parse a `sha256sum`-style file into {relative name: digest}."""
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def check(name: str, data: bytes, expected: str | None, how_to_fix: str) -> None:
    from repro.data.dataset import DataError

    if expected is None:
        return
    got = sha256_bytes(data)
    if got != expected:
        raise DataError(
            f"checksum mismatch for {name}: expected sha256 {expected[:16]}..., got {got[:16]}...; "
            f"the file is corrupt or not the official one. {how_to_fix}"
        )
