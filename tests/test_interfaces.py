"""The model/objective/probe contract (repro/interfaces.py) holds for every configured class,
and a class that breaks it is refused with the missing method named."""

import pytest
from flax import nnx
from hydra.utils import instantiate

from repro import interfaces
from repro.configuration import compose, experiment_configs


@pytest.mark.parametrize("experiment", sorted(experiment_configs()))
def test_every_experiments_objective_and_probes_satisfy_the_interfaces(experiment):
    cfg = compose([f"experiment={experiment}"])
    interfaces.check(instantiate(cfg.objective), interfaces.Objective, "objective")
    for probe in cfg.probes:
        interfaces.check(instantiate(probe), interfaces.Probe, "probe")


def test_models_satisfy_the_model_interface_and_the_penalty_is_optional():
    cfg = compose(["experiment=vardrop_mnist", "model.hidden=8"])
    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    interfaces.check(model, interfaces.Model, "model")
    assert isinstance(model, interfaces.Penalized)
    plain = instantiate(compose(["experiment=debug"]).model, rngs=nnx.Rngs(0))
    assert isinstance(plain, interfaces.Model) and not isinstance(plain, interfaces.Penalized)


class LossOnly:  # per_example without train_loss
    def per_example(self, model, inputs, labels, *, train, rngs=None):
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
