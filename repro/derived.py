"""Measurements derived from finished runs by an evaluator their config did not have: each run is
recomputed from its kept weights (repro/weights.py, repro/recompute.py) with the evaluator added,
and what is kept is written to one JSON file beside the results (e.g. results/<experiment>/figures/
<name>.json), which figures read: a fresh clone has the measurements without the weights (git
does not keep weights).

A run is first checked to be the run its result file describes: every stored final eval metric
must be recomputed, else nothing of it is kept. A run already in the file with the same result
and weights SHA-256 is not recomputed; a run whose result file is gone is dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

from repro import provenance
from repro.manifest import sha256
from repro.recompute import differences, recompute
from repro.results import BadResultFile, read_result
from repro.weights import weights_path


def read(path: Path) -> dict:
    """{run name: what was kept of it}, or {} when there is no file yet."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["runs"]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{path} is not a file of derived measurements ({err}): delete it and derive "
                         "them again") from None


def configured_evaluator(result: dict, suffix: str) -> dict | None:
    """The run's configured evaluator whose class path ends with `suffix` (e.g. ".Ranking"), or None."""
    return next((e for e in result["config"].get("evaluators") or []
                 if str(e.get("_target_", "")).endswith(suffix)), None)


def checked_recompute(result_file: Path, evaluator: dict, data_dir: str | None = None) -> dict:
    """The run's final evaluation with `evaluator` added, refused when the weights do not give
    back the run's stored final metrics."""
    result = read_result(result_file)
    record = recompute(result_file, data_dir=data_dir, evaluators=[evaluator])
    bad = differences(record, result["final"])
    if bad:
        raise ValueError(f"{weights_path(result_file).name} does not give back the run's final metrics "
                         f"({'; '.join(bad[:3])}): these weights are not the run's")
    return record


def update(folder: Path, out: Path, evaluator_for: Callable[[dict], dict | None],
           keep: Callable[[dict, dict], dict], about: str, data_dir: str | None = None,
           log: Callable[[str], None] = print) -> dict:
    """Derive for every result file of `folder` with kept weights that `evaluator_for(result)`
    gives an evaluator config (None: not this run), keeping `keep(record, result)` of each.
    Returns the file's runs."""
    runs = read(out)
    present = {p.stem: p for p in sorted(folder.glob("*.json"))}
    runs = {name: entry for name, entry in runs.items() if name in present}
    for name, path in present.items():
        try:
            result = read_result(path)
        except BadResultFile as err:
            raise SystemExit(f"error: {err}") from None
        evaluator = evaluator_for(result)
        if evaluator is None:
            continue
        weights = weights_path(path)
        if not weights.exists():
            if name not in runs:
                log(f"{name}: no weights beside it, nothing derived (rerun it here)")
            continue
        sums = {"result_sha256": sha256(path), "weights_sha256": sha256(weights)}
        if all(runs.get(name, {}).get(k) == v for k, v in sums.items()):
            continue
        start = time.perf_counter()
        kept = keep(checked_recompute(path, evaluator, data_dir), result)
        seconds = round(time.perf_counter() - start, 1)  # one value: the log says what is recorded
        made = provenance.collect()
        runs[name] = {**sums, "made": {"commit": made["commit"], "dirty": made["dirty"],
                                       "time_utc": made["time_utc"], "seconds": seconds,
                                       "hardware": made["hardware"], "versions": made["versions"]},
                      **kept}
        log(f"{name}: derived from its weights in {seconds:.0f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"about": about, "runs": dict(sorted(runs.items()))}, indent=1) + "\n")
    tmp.replace(out)
    return runs


def main(doc: str, update: Callable[[str, str | None], dict], out_path: Callable[[str], Path],
         argv: list[str] | None = None) -> int:
    """The command line of a derivation: --results (default results), --data-dir."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--data-dir", default=None, help="data mirror (default $REPRO_DATA_DIR)")
    args = parser.parse_args(argv)
    runs = update(args.results, args.data_dir)
    print(f"{out_path(args.results)}: {len(runs)} run(s)")
    return 0


@dataclasses.dataclass(frozen=True)
class Derivation:
    """One experiment's derived measurement: which runs (`evaluator_for`), what is kept of each
    (`keep(record, result)`, or `keep(record, result, data_dir)` with `keep_reads_data`), and
    its file, results/<experiment>/figures/<file_name>; `doc` is the module's docstring (its
    first line describes the file, the whole is the command's help)."""

    experiment: str
    file_name: str
    evaluator_for: Callable[[dict], dict | None]
    keep: Callable[..., dict]
    doc: str
    keep_reads_data: bool = False

    def path(self, results_dir: str | Path = "results") -> Path:
        return Path(results_dir) / self.experiment / "figures" / self.file_name

    def read(self, results_dir: str | Path = "results") -> dict:
        """{run name: what was kept of it}, or {} when nothing is derived yet."""
        return read(self.path(results_dir))

    def update(self, results_dir: str | Path = "results", data_dir: str | None = None, log=print) -> dict:
        keep = functools.partial(self.keep, data_dir=data_dir) if self.keep_reads_data else self.keep
        return update(Path(results_dir) / self.experiment, self.path(results_dir), self.evaluator_for, keep,
                      self.doc.splitlines()[0], data_dir, log)

    def main(self, argv: list[str] | None = None) -> int:
        return main(self.doc, self.update, self.path, argv)
