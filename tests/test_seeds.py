"""Vmapped seeds through run(): `seeds=[...]` trains them in one jit and writes, per seed, the
result a separate run of that seed writes; checkpoints, if_exists, wandb and errors per seed."""

import json
import sys
import types

import jax
import numpy as np
import pytest
from conftest import interrupted_run

from repro.configuration import compose, config_name
from repro.loop import NonFiniteLossError
from repro.results import ResultExistsError
from repro.run import run
from repro.tracking import sweep_group

TINY = ["experiment=debug", "model.hidden=[32]", "model.batchnorm=true", "train.chunk_steps=20",
        "train.eval_every=40", "train.eval_batch_size=100"]
PROBE = ("probes=[{_target_:experiments.bn_mnist.probes.SigmoidInputPercentiles,"
         "units:[0,1],split:test},{_target_:tests.test_seeds.Draws,name:a},{_target_:tests.test_seeds.Draws,name:b}]")


class Draws:
    """A probe that declares "key": what it draws names the key it was given."""
    needs = ("key",)
    final_only = True

    def __init__(self, name: str):
        self.name = name

    def __call__(self, model, eval_data, transforms, key):
        return {f"draw_{self.name}": jax.random.uniform(key)}


class FakeWandb(types.ModuleType):
    """Records wandb.init arguments and logged values; stands in for the wandb module."""

    def __init__(self):
        super().__init__("wandb")
        self.runs = []

    def init(self, **kwargs):
        run = types.SimpleNamespace(kwargs=kwargs, logged=[], finished=False)
        run.log = lambda values, step: run.logged.append((step, values))
        run.finish = lambda exit_code=0: run.__dict__.update(finished=True, exit_code=exit_code)
        self.runs.append(run)
        return run


@pytest.fixture
def fake_wandb(monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake


def test_vmapped_seeds_write_the_results_of_separate_runs(run_overrides, tmp_path, fake_wandb):
    common = [*TINY, *run_overrides, "train.steps=80", "logger.mode=offline", "logger.group=sweep1",
              PROBE]
    separate = [run(compose([*common, f"seed={s}", f"paths.results={tmp_path}/separate"]))
                for s in (0, 1)]
    fake_wandb.runs.clear()
    cfg = compose([*common, "seeds=[0,1]", f"paths.results={tmp_path}/together"])
    together = run(cfg)

    names = sorted(p.name for p in (tmp_path / "separate" / "debug").glob("*.json"))
    assert names == sorted(p.name for p in (tmp_path / "together" / "debug").glob("*.json"))
    assert len(names) == 2
    for seed, alone, vmapped in zip((0, 1), separate, together, strict=True):
        stored = json.loads((tmp_path / "together" / "debug" / f"{vmapped['name']}.json").read_text())
        assert stored["seed"] == seed and stored["name"] == alone["name"]
        assert stored["config_hash"] == alone["config_hash"]
        for config in (stored["config"], alone["config"]):
            config.pop("paths")
        assert stored["config"] == alone["config"]  # incl. seed=<seed>, seeds=None
        assert stored["timing"]["vmapped_seeds"] == [0, 1] and alone["timing"]["vmapped_seeds"] is None
        assert [r["step"] for r in stored["history"]] == [r["step"] for r in alone["history"]]
        for a, b in zip(alone["history"], stored["history"], strict=True):
            assert set(a) == set(b)
            for key in a:
                np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-5, err_msg=key)
        assert stored["final"].keys() == alone["final"].keys()
        assert np.shape(stored["final"]["probe/sigmoid_input_p50"]) == (2,)  # per unit, sliced
        draws = sorted(k for k in stored["final"] if k.startswith("probe/draw_"))
        assert len(draws) == 2 and stored["final"][draws[0]] != stored["final"][draws[1]]
        # A probe's key is its seed's, whether the seed ran alone or vmapped beside others.
        assert [stored["final"][k] for k in draws] == [alone["final"][k] for k in draws]
    draws = [sorted(v for k, v in r["final"].items() if k.startswith("probe/draw_")) for r in together]
    assert not set(draws[0]) & set(draws[1])  # each seed draws its own
    assert together[0]["final"]["test/loss"] != together[1]["final"]["test/loss"]

    # One wandb run per seed, as a separate run would have, in the sweep's group.
    assert [r.kwargs["name"] for r in fake_wandb.runs] == [r["name"] for r in together]
    for wandb_run, result in zip(fake_wandb.runs, together, strict=True):
        assert wandb_run.kwargs["group"] == "sweep1"
        assert wandb_run.kwargs["job_type"] == config_name(cfg)
        assert wandb_run.kwargs["config"]["seed"] == result["seed"] and wandb_run.finished
        assert wandb_run.exit_code == 0
        last_step, last = wandb_run.logged[-1]
        assert last_step == 80 and last["train/loss"] == result["history"][-1]["train/loss"]


def test_vmapped_seeds_resume_equals_uninterrupted(run_overrides, tmp_path):
    common = [*TINY, *run_overrides, "seeds=[3,4]", "train.steps=80", "train.checkpoint_every=40",
              "train.keep_checkpoints=true"]
    straight = run(compose([*common, f"paths.results={tmp_path}/a", f"paths.checkpoints={tmp_path}/a"]))

    cfg = compose(common)
    interrupted_run(cfg, at_step=60)
    group = tmp_path / "checkpoints" / "debug" / f"{config_name(cfg)}-seeds3_4"
    assert group.is_dir() and not list((tmp_path / "results").glob("*/*.json"))
    resumed = run(cfg)
    for a, b in zip(straight, resumed, strict=True):
        assert b["resumed"] and not a["resumed"]
        assert b["history"] == a["history"] and b["final"] == a["final"]  # bitwise on CPU


def test_vmapped_seeds_skip_or_refuse_seeds_that_have_results(run_overrides, tmp_path):
    common = [*TINY, *run_overrides, "train.steps=20", "train.eval_every=20"]
    run(compose([*common, "seed=1"]))
    with pytest.raises(ResultExistsError, match="if_exists=skip"):
        run(compose([*common, "seeds=[0,1]", "results.if_exists=error"]))
    assert len(list((tmp_path / "results" / "debug").glob("*.json"))) == 1  # refused before training
    fresh, skipped = run(compose([*common, "seeds=[0,1]", "results.if_exists=skip"]))
    assert fresh["seed"] == 0 and fresh["timing"]["vmapped_seeds"] == [0]
    assert skipped["skipped"].endswith("-seed1.json")


@pytest.mark.parametrize("seeds, message", [
    ("seeds=[]", "is empty"), ("seeds=[0,0]", "distinct integers"),
    ("seeds=3", "seeds=3: Invalid value assigned: int is not a ListConfig, list or tuple"),
    ("distributed=true", "not supported"),
])
def test_bad_seeds_are_clear_errors(run_overrides, seeds, message):
    overrides = [*TINY, *run_overrides, seeds]
    if seeds.startswith("distributed"):
        overrides.append("seeds=[0,1]")
    with pytest.raises(ValueError, match=message):
        run(compose(overrides))


def test_nan_loss_names_the_seed_and_fails_the_wandb_runs(run_overrides, fake_wandb):
    cfg = compose([*TINY, *run_overrides, "seeds=[5,6]", "optim.lr=1e30", "model.batchnorm=false",
                   "model.activation=relu", "train.steps=20", "logger.mode=offline"])
    with pytest.raises(NonFiniteLossError, match=r"seed\(s\) \[5, 6\] of the seeds \[5, 6\]"):
        run(cfg)
    assert [(r.finished, r.exit_code) for r in fake_wandb.runs] == [(True, 1), (True, 1)]


def test_sweep_group():
    assert sweep_group("bn_mnist", "multirun/bn_mnist/2026-01-20_12-00-00") == \
        "bn_mnist-2026-01-20_12-00-00"
    assert sweep_group("bn_mnist", None) == "bn_mnist"
