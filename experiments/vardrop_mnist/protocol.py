"""The authors' protocol for Figure 1(a), as a variant of our grid: their pylearn2 setup picks the
epoch on the validation images and then trains again on all 60,000 training images for that many
epochs. Here the epoch is read off the committed 50k runs of the same method and size (validation
error every 10 epochs, averaged over their seeds); the `<variant>_60k` runs of the spec train for
it on all 60,000 images (tests/test_vardrop.py checks that their step counts are these epochs).

    python -m experiments.vardrop_mnist.protocol     # the chosen epoch of every 50k variant
"""

from __future__ import annotations

import numpy as np

METRIC = "validation/error_percent"
STEPS_PER_EPOCH = 500  # the 50k runs: 50,000 images, batch 100
RETRAIN_STEPS_PER_EPOCH = 600  # 60,000 images, batch 100
RETRAIN = ["data.validation_size=0", "data.eval_splits=[test]", "model.num_train=60000"]


def chosen_epoch(runs: list[dict]) -> int:
    """The epoch whose validation error, averaged over `runs` (one per seed), is lowest among
    the evaluations every run has after step 0; the earliest of equal ones."""
    curves = [{r["step"]: r[METRIC] for r in run["history"] if METRIC in r and r["step"] > 0}
              for run in runs]
    if not curves or not all(curves):
        raise ValueError(f"no {METRIC} in these runs' histories: the epoch cannot be chosen")
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    mean = [np.mean([c[s] for c in curves]) for s in steps]
    step = steps[int(np.argmin(mean))]
    if step % STEPS_PER_EPOCH:
        raise ValueError(f"step {step} is not a whole epoch of {STEPS_PER_EPOCH} steps")
    return step // STEPS_PER_EPOCH


def retrain_overrides(base: list[str], epoch: int) -> list[str]:
    """The base variant's overrides, retrained on all 60,000 images for `epoch` epochs."""
    return [*base, *RETRAIN, f"train.steps={epoch * RETRAIN_STEPS_PER_EPOCH}"]


def main() -> None:
    from repro.report import ROOT, group_by_variant
    from repro.reproduce import find_spec
    from repro.results import load_results

    spec = find_spec("vardrop_mnist")
    trained_on_50k = [v for v in spec["variants"] if "data.validation_size=0" not in spec["variants"][v]]
    results = load_results(ROOT / "results", spec["experiment"], strict=True)
    for variant, runs in group_by_variant(spec, results, trained_on_50k).items():
        if runs and any(METRIC in r for r in runs[0]["history"]):
            print(f"{variant:24s} {len(runs)} seeds  epoch {chosen_epoch(runs)}")


if __name__ == "__main__":
    main()
