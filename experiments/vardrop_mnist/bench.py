"""Step time of every dropout method vs the no-dropout net, and time per epoch of each Table-1
gradient estimator for variational B, on the shared training loop (the real run's code path).

    python -m experiments.vardrop_mnist.bench --hidden 100 1000 --steps 200
Target: every method within 2x the no-dropout step time.
"""

from __future__ import annotations

import argparse
import json

import jax

from bench.timing import time_chunk
from repro.configuration import compose
from repro.models.vardrop import ESTIMATORS, METHODS
from repro.run import build_trainer


def step_timing(overrides: list[str], steps: int, repeats: int = 3) -> dict:
    """bench.timing.time_chunk of the experiment's trainer: best ms per step, FLOPs, peak fraction."""
    cfg = compose(["experiment=vardrop_mnist", "logger.mode=disabled", *overrides])
    jax.config.update("jax_default_matmul_precision", str(cfg.precision))
    return time_chunk(build_trainer(cfg), steps, repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--skip-estimators", action="store_true")
    parser.add_argument("--skip-methods", action="store_true", help="only the base net and estimators")
    args = parser.parse_args()
    rows = []
    for hidden in args.hidden:
        base = None
        for method in METHODS[:1] if args.skip_methods else METHODS:
            timing = step_timing([f"model.hidden={hidden}", f"model.dropout={method}"], args.steps)
            t = timing["ms_per_step"] / 1e3
            base = base or t  # METHODS starts with 'none'
            rows.append({"hidden": hidden, "method": method, **timing, "ratio": round(t / base, 3)})
            print(json.dumps(rows[-1]), flush=True)
        if args.skip_estimators:
            continue
        steps_per_epoch = 50000 // 100
        for est in ESTIMATORS:
            # A weight sample per example is ~100-600x slower: time it on a few steps only.
            few = est == "per_example"
            timing = step_timing([f"model.hidden={hidden}", "model.dropout=variational_b",
                                  f"model.estimator={est}"], max(args.steps // 10, 5) if few else args.steps,
                                 repeats=1 if few else 3)
            t = timing["ms_per_step"] / 1e3
            rows.append({"hidden": hidden, "estimator": est, **timing,
                         "seconds_per_epoch": round(t * steps_per_epoch, 2), "ratio": round(t / base, 3)})
            print(json.dumps(rows[-1]), flush=True)
    if not args.skip_methods:
        ok = all(r["ratio"] <= 2.0 for r in rows if "method" in r)
        print(f"every method within 2x of no dropout: {ok}")


if __name__ == "__main__":
    main()
