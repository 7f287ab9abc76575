"""Result files: one JSON per finished run, never silently overwritten."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path


class ResultExistsError(FileExistsError):
    """A finished run with this config and seed already has a result file."""


def result_path(results_dir: str | Path, experiment: str, run_name: str) -> Path:
    return Path(results_dir) / experiment / f"{run_name}.json"


def write_result(path: Path, payload: dict, if_exists: str = "error") -> Path:
    """Write atomically (temp file + rename). if_exists: error | overwrite."""
    path = Path(path)
    if path.exists() and if_exists != "overwrite":
        raise ResultExistsError(
            f"{path} already holds a finished run of this config and seed. Pass "
            "results.if_exists=overwrite to replace it, results.if_exists=skip to keep it, "
            "or choose another seed."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise OSError(err.errno, f"disk full while writing {path}: free space and rerun "
                          "(the run resumes from its last checkpoint)") from err
        raise
    return path


def load_results(results_dir: str | Path, experiment: str) -> list[dict]:
    folder = Path(results_dir) / experiment
    out = []
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        result["_path"] = str(path)
        out.append(result)
    return out
