"""`python -m experiments.facenet_mnist.curves`: the ROC and the 2-D projection of held-out
embeddings for every FaceNet-proxy run whose weights are kept beside its result file, recomputed
from those weights (repro/recompute.py with the HeldOutCurves evaluator) and written to
results/facenet_mnist/figures/held_out_curves.json, which the figures read (a fresh clone has
the curves without the weights, which git does not keep).

Each run is first checked to be the run its result file describes: every stored final eval
metric must be recomputed (so the curve passes through the run's own VAL at FAR 10^-3). A run
already in the file with the same result and weights SHA-256 is not recomputed.

    python -m experiments.facenet_mnist.curves [--results results] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from repro import provenance
from repro.manifest import sha256
from repro.recompute import differences, recompute
from repro.results import BadResultFile, read_result
from repro.weights import weights_path

EXPERIMENT = "facenet_mnist"
CURVES_FILE = "held_out_curves.json"
KEYS = ("roc_far", "roc_val", "projection", "projection_label")


def curves_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / EXPERIMENT / "figures" / CURVES_FILE


def read_curves(results_dir: str | Path) -> dict:
    """{run name: its curves} as written by update(), or {} when there is no file yet."""
    path = curves_path(results_dir)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["runs"]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{path} is not a curves file ({err}): delete it and rerun "
                         "`python -m experiments.facenet_mnist.curves`") from None


def held_out_curves(result_file: Path, data_dir: str | None = None) -> dict:
    """The run's curves, recomputed from its weights with its own verification pairs; refused
    when the weights do not give back the run's stored final metrics."""
    result = read_result(result_file)
    verification = next((e for e in result["config"].get("evaluators", [])
                         if str(e.get("_target_", "")).endswith(".Verification")), None)
    if verification is None:
        raise ValueError(f"{result_file.name} has no Verification evaluator: not a FaceNet-proxy run")
    evaluator = {"_target_": "experiments.facenet_mnist.verification.HeldOutCurves",
                 **{k: verification[k] for k in ("split", "different", "seed")}}
    record = recompute(result_file, data_dir=data_dir, evaluators=[evaluator])
    bad = differences(record, result["final"])
    if bad:
        raise ValueError(f"{weights_path(result_file).name} does not give back the run's final metrics "
                         f"({'; '.join(bad[:3])}): these weights are not the run's")
    split = verification["split"]
    return {key: record[f"{split}/{key}"] for key in KEYS}


def update(results_dir: str | Path = "results", data_dir: str | None = None, log=print) -> dict:
    """Add the curves of every run with kept weights that the file lacks (or holds for other
    result or weights bytes); drop runs whose result file is gone. Returns the file's runs."""
    folder = Path(results_dir) / EXPERIMENT
    runs = read_curves(results_dir)
    present = {p.stem: p for p in sorted(folder.glob("*.json"))}
    runs = {name: entry for name, entry in runs.items() if name in present}
    for name, path in present.items():
        weights = weights_path(path)
        if not weights.exists():
            if name not in runs:
                log(f"{name}: no weights beside it, no curves (rerun it here to draw them)")
            continue
        sums = {"result_sha256": sha256(path), "weights_sha256": sha256(weights)}
        if all(runs.get(name, {}).get(k) == v for k, v in sums.items()):
            continue
        start = time.perf_counter()
        try:
            curves = held_out_curves(path, data_dir)
        except BadResultFile as err:
            raise SystemExit(f"error: {err}") from None
        seconds = time.perf_counter() - start
        made = provenance.collect()
        runs[name] = {**sums, "made": {"commit": made["commit"], "dirty": made["dirty"],
                                       "time_utc": made["time_utc"], "seconds": round(seconds, 1),
                                       "hardware": made["hardware"], "versions": made["versions"]},
                      **curves}
        log(f"{name}: curves recomputed from its weights in {seconds:.0f} s")
    out = curves_path(results_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"about": __doc__.splitlines()[0], "runs": dict(sorted(runs.items()))},
                              indent=1) + "\n")
    tmp.replace(out)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--data-dir", default=None, help="data mirror (default $REPRO_DATA_DIR)")
    args = parser.parse_args(argv)
    runs = update(args.results, args.data_dir)
    print(f"{curves_path(args.results)}: {len(runs)} run(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
