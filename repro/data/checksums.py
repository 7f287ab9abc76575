"""SHA-256 verification of mirrored data files.

The official sums built into the readers are always checked; a mirror's own sums file can add
checks (for files whose content is not the official one, e.g. a subset), never remove one.
"""

from __future__ import annotations

import hashlib
import urllib.request
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


def download_checked(url: str, path: Path, sha256: str, offline: str) -> Path:
    """Fetch `url` into `path` unless it is there, keeping it only when its SHA-256 is `sha256`
    (a wrong file is never cached). `offline`: what to do without the network."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw = urllib.request.urlopen(url, timeout=60).read()
    except OSError as err:
        raise DataError(f"could not fetch {url} ({err}); {offline}") from err
    digest = sha256_bytes(raw)
    if digest != sha256:
        raise DataError(f"{url} gave a file with SHA-256 {digest}, not the expected {sha256}; nothing was "
                        f"saved. Try again later, or: {offline}")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path
