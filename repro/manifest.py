"""The committed results' seal: `results/<experiment>/SHA256SUMS` lists the SHA-256 of every
result file promoted into that folder (the format of `sha256sum`, so `sha256sum -c SHA256SUMS`
checks it too). Only `python -m repro.reproduce promote` adds to it; a result file whose bytes
no longer match (a number edited by hand), or one the list does not hold, is refused by the
report and by verify, so committed numbers cannot change unnoticed. A deliberate change to a
committed file is re-sealed with `python -m repro.reproduce seal <paper>`, which git records.
A folder without the file (this machine's local/ runs) is not sealed and not checked.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

NAME = "SHA256SUMS"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read(folder: Path) -> dict[str, str] | None:
    """{file name: SHA-256} of a folder's seal, or None when the folder has none."""
    path = Path(folder) / NAME
    if not path.exists():
        return None
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            sums[name.strip()] = digest.strip()
    return sums


def write(folder: Path, sums: dict[str, str]) -> None:
    """Replace a folder's seal atomically (sorted lines, sha256sum's format)."""
    folder = Path(folder)
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{NAME}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / NAME)


def seal(folder: Path, names: list[str] | None = None) -> dict[str, str]:
    """Add (or refresh) the given result files, default all *.json of the folder, to its seal."""
    folder = Path(folder)
    sums = read(folder) or {}
    for name in names if names is not None else [p.name for p in sorted(folder.glob("*.json"))]:
        sums[name] = sha256(folder / name)
    write(folder, sums)
    return sums


def problem(path: Path, sums: dict[str, str] | None) -> str | None:
    """Why a result file breaks its folder's seal (None: it does not, or there is no seal)."""
    if sums is None:
        return None
    path = Path(path)
    if path.name not in sums:
        return (f"{path} is not in {NAME}: committed results enter through `python -m "
                "repro.reproduce promote`, never by hand")
    if sha256(path) != sums[path.name]:
        return (f"{path} does not match its SHA-256 in {NAME}: it was changed after it was promoted "
                "(restore it with git checkout, or re-seal a deliberate change: python -m "
                "repro.reproduce seal <paper>)")
    return None


def missing(folder: Path) -> list[str]:
    """Files the seal lists that are gone from the folder."""
    sums = read(folder) or {}
    return sorted(name for name in sums if not (Path(folder) / name).exists())
