"""SHA-256 verification of mirrored data files.

The official sums built into the readers are always checked; a mirror's own sums file can add
checks (for files whose content is not the official one, e.g. a subset), never remove one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from repro.errors import DataError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sums(path: Path) -> dict[str, str]:
    """Parse a `sha256sum`-style file into {relative name: digest}; {} if there is none."""
    if not path.exists():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def verify(name: str, data: bytes, official: str | None, mirror: str | None,
           how_to_fix: str) -> dict:
    """{"sha256": the file's, "official": True if it is the official file, False if it is other
    content the mirror vouches for (its sums file lists it, matching) or that nothing vouches
    for, None if no official sum is known}. A DataError for content that matches no sum it
    should: a corrupt file."""
    got = sha256_bytes(data)
    known = None if official is None else got == official
    if known or (mirror is not None and got == mirror):  # a subset loads, marked not official
        return {"sha256": got, "official": known}
    expected = " or ".join(f"{s[:16]}... ({who})" for s, who in ((official, "official"),
                                                                 (mirror, "mirror's SHA256SUMS")) if s)
    if expected:
        raise DataError(f"checksum mismatch for {name}: expected sha256 {expected}, got {got[:16]}...; "
                        f"the file is corrupt or not the official one. {how_to_fix}")
    return {"sha256": got, "official": None}
