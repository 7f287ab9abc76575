"""`python -m repro.recompute <result.json>`: evaluate a finished run again from its kept weights
(repro/weights.py), without retraining: its eval metrics and every probe of its config, plus any
new probe given with --probe and any new host evaluator given with --evaluator. --check compares
the recomputed metrics with the result file's final ones (a test that the weights are the run's).

    python -m repro.recompute local/results/bn_mnist/bn-True-9b5e1362-seed0.json --check
    python -m repro.recompute <result.json> \\
        --probe '{_target_: experiments.bn_mnist.probes.SigmoidInputPercentiles, layer: 0}'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from repro.configuration import UntrustedTargetError, check_targets, from_stored
from repro.results import BadResultFile, read_result
from repro.weights import load_weights, weights_path


def recompute(result_file: str | Path, probes: list[dict] = (), data_dir: str | None = None,
              evaluators: list[dict] = ()) -> dict:
    """The final evaluation of the run, recomputed: {metric: value} like its history's last
    record (train metrics aside), with `probes` and `evaluators` added to its config's."""
    from repro.loop import _to_python
    from repro.run import build_trainer

    result_file = Path(result_file)
    result = read_result(result_file)  # a file that is not a result says so
    check_targets(list(probes), "a --probe file")
    check_targets(list(evaluators), "an --evaluator file")
    cfg = from_stored(result["config"])
    cfg.data.dir = data_dir  # the file holds "<data dir>": this machine's (or $REPRO_DATA_DIR)
    cfg.probes = [*cfg.probes, *probes]
    cfg.evaluators = [*cfg.evaluators, *evaluators]
    trainer = build_trainer(cfg)
    state = trainer.initial_state
    params, rest = load_weights(weights_path(result_file), state["params"], state["rest"])
    return _to_python(trainer.evaluate({**state, "params": params, "rest": rest}, final=True))


def differences(recomputed: dict, final: dict, rtol: float = 1e-5) -> list[str]:
    """Eval metrics and probes of the result file that the recomputation does not reproduce."""
    out = []
    for key, stored in final.items():
        if key == "step" or key.startswith("train/") or key not in recomputed:
            continue
        if not np.allclose(np.asarray(recomputed[key], float), np.asarray(stored, float), rtol=rtol,
                           atol=1e-7, equal_nan=True):
            out.append(f"{key}: stored {stored}, recomputed {recomputed[key]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="a result file with its .weights.npz beside it")
    parser.add_argument("--probe", action="append", default=[], help="a probe config (YAML), again")
    parser.add_argument("--evaluator", action="append", default=[],
                        help="a host evaluator config (YAML), again")
    parser.add_argument("--data-dir", default=None, help="data mirror (default $REPRO_DATA_DIR)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless the stored final metrics are recomputed")
    args = parser.parse_args(argv)
    try:  # a mistake in what was given: its message, not a traceback
        record = recompute(args.result, [yaml.safe_load(p) for p in args.probe], args.data_dir,
                           [yaml.safe_load(e) for e in args.evaluator])
    except (BadResultFile, UntrustedTargetError, FileNotFoundError, yaml.YAMLError) as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps(record, indent=1))
    if args.check:
        final = json.loads(Path(args.result).read_text())["final"]
        bad = differences(record, final)
        print("\n".join(bad) if bad else "every stored eval metric and probe recomputed", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
