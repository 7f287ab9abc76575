"""One process at a time per run: a lock file per run name, taken before training.

Two identical runs at once would race on the same checkpoint folder and result file (the
second crashing in orbax, or training to the end and then refusing to write). The lock holds
the owner's PID and host; a lock whose owner is gone (a killed run on this host) is stale and
taken over with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class RunLockedError(RuntimeError):
    """Another live process is running the same config and seed."""


def _holder(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _take(path: Path) -> None:
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder and holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                log.warning("taking over the stale lock %s of process %s (no longer running)",
                            path, holder.get("pid"))
                path.unlink(missing_ok=True)
                continue
            who = (f"process {holder.get('pid')} on host {holder.get('host')}" if holder
                   else "a process that is starting (or left an unreadable lock)")
            raise RunLockedError(
                f"{path.stem} is already running ({who} holds {path}). Wait for it, stop it, "
                f"or delete the lock file if no such run is going on.") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return
    raise RunLockedError(f"could not take the lock {path}: another process keeps taking it")


@contextlib.contextmanager
def run_locks(folder: str | Path, names: list[str]) -> Iterator[None]:
    """Hold `<folder>/<name>.lock` for each run name while the block runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    taken = []
    try:
        for name in names:
            _take(folder / f"{name}.lock")
            taken.append(folder / f"{name}.lock")
        yield
    finally:
        for path in taken:
            path.unlink(missing_ok=True)
