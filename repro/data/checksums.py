"""SHA-256 verification of mirrored data files.

The official sums built into the readers are always checked; a mirror's own sums file can add
checks (for files whose content is not the official one, e.g. a subset), never remove one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


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


def verify(name: str, data: bytes, official: str | None, mirror: str | None, how_to_fix: str) -> bool:
    """True if `data` is the official file; False if it is other content the mirror vouches for
    (its sums file lists it, matching) or that nothing can vouch for (no sum known anywhere).
    Raises DataError for content that matches no sum it should: a corrupt file."""
    from repro.data.dataset import DataError

    got = sha256_bytes(data)
    if official is not None and got == official:
        return True
    if mirror is not None and got == mirror:
        return False  # e.g. a subset: loads, but the data set is then marked as not official
    expected = " or ".join(f"{s[:16]}... ({who})" for s, who in ((official, "official"),
                                                                 (mirror, "mirror's SHA256SUMS")) if s)
    if expected:
        raise DataError(f"checksum mismatch for {name}: expected sha256 {expected}, got {got[:16]}...; "
                        f"the file is corrupt or not the official one. {how_to_fix}")
    return False
