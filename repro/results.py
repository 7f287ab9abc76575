"""Result files: one JSON per finished run, never silently overwritten."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
# What the report reads from every result file.
REQUIRED_KEYS = ("config_hash", "seed", "history", "config")


class BadResultFile(ValueError):
    """A result file that cannot be read or lacks what the report needs."""


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
    # A temporary name of our own (two writers never share one), renamed into place atomically.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make result files private
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(payload, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise OSError(err.errno, f"disk full while writing {path}: free space and rerun "
                          "(the run resumes from its last checkpoint)") from err
        raise
    return path


def read_result(path: Path) -> dict:
    """One result file, checked for what the report needs; BadResultFile names the file."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadResultFile(f"{path} is not a readable result file ({err})") from err
    if not isinstance(result, dict):
        raise BadResultFile(f"{path} holds a JSON {type(result).__name__}, not a result object")
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise BadResultFile(f"{path} lacks {missing}: not a result file of this suite")
    problem = _shape_problem(result)
    if problem:
        raise BadResultFile(f"{path}: {problem}: not a result file as this suite writes them")
    result["_path"] = str(path)
    return result


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_value(v) -> bool:
    """A logged value: a finite number, or a (nested) list of them (a probe's array)."""
    return _is_number(v) or (isinstance(v, list) and all(_is_value(x) for x in v))


def _shape_problem(result: dict) -> str | None:
    """What is wrong with a result's values (None: nothing): the types the writer gives them."""
    if not isinstance(result["seed"], int) or isinstance(result["seed"], bool):
        return f"seed {result['seed']!r} is not an integer"
    if not isinstance(result["config_hash"], str) or not isinstance(result["config"], dict):
        return "config_hash is not a string or config not a mapping"
    history = result["history"]
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        return "history is not a list of records"
    for record in [*history, result.get("final") or {}]:
        if not isinstance(record, dict):
            return "final is not a record"
        for key, value in record.items():
            if key == "step" and not (isinstance(value, int) and not isinstance(value, bool)):
                return f"a record's step {value!r} is not an integer"
            if not _is_value(value):
                return f"{key} = {value!r} is not a finite number or list of them"
    return None


def load_results(results_dir: str | Path, experiment: str, strict: bool = False,
                 skipped: list[str] | None = None) -> list[dict]:
    """Every result of an experiment. A bad file is skipped with a warning naming it (and its
    message appended to `skipped`), so one broken file does not hide the rest; strict raises.
    In a sealed folder (repro/manifest.py) a file that breaks the seal is a bad file too."""
    from repro import manifest

    out = []
    folder = Path(results_dir) / experiment
    sums = manifest.read(folder)
    for path in sorted(folder.glob("*.json")):
        try:
            broken = manifest.problem(path, sums)
            if broken:
                raise BadResultFile(broken)
            out.append(read_result(path))
        except BadResultFile as err:
            if strict:
                raise
            log.warning("skipping %s", err)
            if skipped is not None:
                skipped.append(str(err))
    return out
