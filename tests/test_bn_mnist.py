"""Short real-MNIST runs of the Figure-1 experiment (the full run is `make repro-bn-mnist`)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, needs_real_mnist

from repro.configuration import compose
from repro.run import run


def short_bn_run(tmp_path, batchnorm: bool, steps=600, extra=()):
    return run(compose([
        "experiment=bn_mnist", f"data.dir={REAL_DATA}", f"model.batchnorm={batchnorm}",
        f"train.steps={steps}", "train.chunk_steps=100", "train.eval_every=300",
        "train.checkpoint_every=0", "progress=false", "logger.mode=disabled",
        f"paths.results={tmp_path}", *extra]))


@needs_real_mnist()
def test_short_real_run_learns_and_bn_is_ahead_early(tmp_path):
    # 600 steps of batch 60 (0.6 epochs). Measured at the commit that added this test:
    # with BN 0.905, without BN 0.301 (still on the sigmoid net's initial plateau).
    with_bn = short_bn_run(tmp_path, True)
    without_bn = short_bn_run(tmp_path, False)
    assert with_bn["final"]["test/accuracy"] > 0.88
    assert with_bn["final"]["test/accuracy"] > without_bn["final"]["test/accuracy"] + 0.1
    p15, p50, p85 = (np.asarray(with_bn["final"][f"probe/sigmoid_input_p{p}"]) for p in (15, 50, 85))
    assert p15.shape == (5,) and np.all(p15 < p50) and np.all(p50 < p85)
    assert with_bn["data_source"].startswith("mirror:")


@needs_real_mnist()
def test_wandb_offline_run_writes_a_local_run(tmp_path):
    result = run(compose([
        "experiment=debug", f"data.dir={REAL_DATA}", "logger.mode=offline", "train.steps=50",
        "train.chunk_steps=50", "train.eval_every=50", f"paths.results={tmp_path}/r"]),
        run_dir=str(tmp_path / "run"))
    assert result["final"]["test/accuracy"] > 0
    assert list(Path(tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
@needs_real_mnist()
def test_full_length_bn_run_matches_the_paper_end_point(tmp_path):
    result = short_bn_run(tmp_path, True, steps=50_000, extra=["train.eval_every=5000"])
    assert result["final"]["test/accuracy"] > 0.975  # paper: 0.9816 at 49k steps (Figure 1a)
