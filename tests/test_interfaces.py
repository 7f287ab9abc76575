"""The model/objective/probe contract (repro/interfaces.py) holds for every configured class,
and a class that breaks it is refused with the missing method named."""

import numpy as np
import pytest
from conftest import REAL_DATA
from flax import nnx
from hydra.utils import get_class, instantiate

from repro import interfaces
from repro.configuration import compose, experiment_configs

RUN_INPUTS = {"data_dir": str(REAL_DATA), "train_split": {"tokens": np.zeros((4, 20), np.int32)}}


def _built(node, what):
    """The configured class, given what its `needs` declare (as build_trainer does)."""
    needs = interfaces.check_needs(get_class(node._target_), what)
    return instantiate(node, **{n: RUN_INPUTS[n] for n in needs if n in RUN_INPUTS})


@pytest.mark.parametrize("experiment", sorted(experiment_configs()))
def test_every_experiments_objective_and_probes_satisfy_the_interfaces(experiment):
    cfg = compose([f"experiment={experiment}"])
    interfaces.check(_built(cfg.objective, "objective"), interfaces.Objective, "objective")
    for probe in cfg.probes:
        interfaces.check(_built(probe, "probe"), interfaces.Probe, "probe")


class NeedsPhaseWithoutPhases:
    needs = ("phase",)

    def per_example(self, model, batch, *, train, rngs=None):
        return {}

    def train_loss(self, model, batch, *, rngs=None, phase=None):
        return 0.0, {}


class NeedsStepNotTaken(NeedsPhaseWithoutPhases):
    needs = ("step",)


class NeedsUnknown(NeedsPhaseWithoutPhases):
    needs = ("labels_of_the_test_set",)


class NeedsKeyNotTaken:
    needs = ("key",)

    def __call__(self, model, eval_data, transforms):
        return {}


class ObjectiveNeedsKey(NeedsPhaseWithoutPhases):
    needs = ("key",)


class NeedsArraysNotTaken(NeedsKeyNotTaken):
    needs = ("arrays",)


@pytest.mark.parametrize("cls, message, what", [
    (NeedsKeyNotTaken, "takes no key= keyword", "probe"),
    (ObjectiveNeedsKey, "only probes are given", "objective"),
    (NeedsArraysNotTaken, "takes no arrays= keyword", "probe"),
])
def test_a_key_is_given_to_probes_that_take_it(cls, message, what):
    with pytest.raises(TypeError, match=message):
        interfaces.check_needs(cls, what)


@pytest.mark.parametrize("cls, message", [
    (NeedsPhaseWithoutPhases, "lacks `phases`"),
    (NeedsStepNotTaken, "takes no step= keyword"),
    (NeedsUnknown, r"needs \['labels_of_the_test_set'\], which the loop does not give; it gives: step"),
])
def test_declared_needs_are_checked_naming_what_is_missing(cls, message):
    with pytest.raises(TypeError, match=message):
        interfaces.check_needs(cls, "objective")


def test_a_class_is_given_only_what_it_declares(tmp_path, tiny_data_dir):
    """PG-BLEU declares train_split; a probe that declares nothing gets no data_dir."""
    from repro.run import _with_run_inputs

    cfg = compose(["experiment=debug", f"data.dir={tiny_data_dir}"])
    seqgan = "experiments.seqgan.objectives"
    assert interfaces.check_needs(get_class(f"{seqgan}.PolicyGradientBLEU"), "o") == ("train_split",)
    assert interfaces.check_needs(get_class(f"{seqgan}.SequenceNLL"), "o") == ("step",)

    class Data:
        def split(self, name):
            raise AssertionError("the data were handed to a class that did not declare them")

    probe = _with_run_inputs(compose(["experiment=bn_mnist"]).probes[0], cfg, Data(), "probe")
    assert type(probe).__name__ == "SigmoidInputPercentiles"


def test_models_satisfy_the_model_interface_and_the_penalty_is_optional():
    cfg = compose(["experiment=vardrop_mnist", "model.hidden=8"])
    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    interfaces.check(model, interfaces.Model, "model")
    assert isinstance(model, interfaces.Penalized)
    plain = instantiate(compose(["experiment=debug"]).model, rngs=nnx.Rngs(0))
    assert isinstance(plain, interfaces.Model) and not isinstance(plain, interfaces.Penalized)


class LossOnly:  # per_example without train_loss
    def per_example(self, model, batch, *, train, rngs=None):
        return {}


def test_an_objective_without_train_loss_is_refused_naming_what_is_missing():
    with pytest.raises(TypeError, match=r"LossOnly does not provide the repro.interfaces.Objective "
                                        r"interface \(missing: train_loss\)"):
        interfaces.check(LossOnly(), interfaces.Objective, "objective")


def test_run_refuses_a_configured_objective_that_breaks_the_interface(tmp_path, tiny_data_dir):
    from repro.run import build_trainer

    cfg = compose(["experiment=debug", f"data.dir={tiny_data_dir}", "data.allow_partial=true",
                   "model.hidden=[4]", "objective._target_=tests.test_interfaces.LossOnly"])
    with pytest.raises(TypeError, match="missing: train_loss"):
        build_trainer(cfg)
