"""Fail early, and say what to do, when a folder the suite writes to is not writable (a read-only
checkout, a mount, a path through a file): before any training, not with an OSError after it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def check_writable(folder: str | Path, what: str, fix: str) -> None:
    """Create `folder` (and remove again what this check created) and a temporary file in it;
    on failure an OSError that names the folder, `what` was to be written there and the `fix`."""
    folder = Path(folder).absolute()
    top = folder  # the first folder this check creates: removed again, nothing is left behind
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    created = not top.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        if created:
            shutil.rmtree(top)
    except OSError as err:
        raise OSError(err.errno, f"cannot write {what} to {folder} ({err.strerror or err}): "
                      f"{fix}; nothing was trained") from err


def check_hydra_folder(args: list[str], cwd: str | Path) -> None:
    """Hydra writes each run's config and log under the working folder (`outputs/`, `multirun/`
    with -m) before the run starts; in a read-only checkout its raw OSError would say nothing of
    the fix. A folder given on the command line is the user's choice and is not checked."""
    multirun = "-m" in args or "--multirun" in args
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if any(a.startswith(f"{key}=") for a in args):
        return
    check_writable(Path(cwd) / ("multirun" if multirun else "outputs"), "Hydra's run folder (config, log)",
                   f"run from a writable folder or give {key}=<a writable folder>")
