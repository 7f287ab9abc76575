from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from repro.configuration import CONFIG_DIR, NOT_HASHED, compose, config_hash, run_name, to_dict

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment):
    cfg = compose([f"experiment={experiment}"])
    assert cfg.experiment_name
    assert cfg.train.eval_every % cfg.train.chunk_steps == 0
    assert not cfg.train.checkpoint_every or cfg.train.checkpoint_every % cfg.train.chunk_steps == 0
    assert config_hash(cfg)
    for probe in cfg.probes:
        assert callable(instantiate(probe))


def test_bn_mnist_matches_the_paper_setup():
    cfg = compose(["experiment=bn_mnist"])
    assert list(cfg.model.hidden) == [100, 100, 100] and cfg.model.activation == "sigmoid"
    assert cfg.train.batch_size == 60 and cfg.train.steps == 50_000
    assert cfg.model.in_features == 784


def test_unknown_key_and_unknown_experiment_are_errors():
    with pytest.raises(ConfigCompositionException, match="optim.lrr"):
        compose(["experiment=bn_mnist", "optim.lrr=0.1"])
    with pytest.raises(ConfigCompositionException, match="nosuchpaper"):
        compose(["experiment=nosuchpaper"])


def test_hash_ignores_seed_and_logging_but_not_hyperparameters():
    base = compose(["experiment=bn_mnist"])
    assert config_hash(base) == config_hash(compose(["experiment=bn_mnist", "seed=7",
                                                     "logger.mode=disabled", "data.dir=/x"]))
    assert config_hash(base) != config_hash(compose(["experiment=bn_mnist", "optim.lr=0.2"]))
    assert run_name(compose(["experiment=bn_mnist", "seed=3"])).endswith("-seed3")


def test_configs_folder_is_the_repo_one():
    assert (Path(CONFIG_DIR) / "config.yaml").exists()


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_leaves(v, key + "."))
        else:
            out[key] = v
    return out


def _not_hashed(key: str) -> bool:
    return any(key == n or key.startswith(n + ".") for n in NOT_HASHED)


def _perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, value[-1] if value else 1]
    return 1 if value is None else None


@pytest.mark.parametrize("experiment", ["bn_mnist", "vardrop_mnist", "pixelcnn_mnist", "resnet_cifar10"])
def test_every_result_changing_key_changes_the_hash(experiment):
    """Change each leaf of the resolved config in turn: the hash must move unless the key is one
    of NOT_HASHED (logging, paths, chunking), which must leave it alone."""
    cfg = compose([f"experiment={experiment}"])
    base = config_hash(cfg)
    for key, value in _leaves(to_dict(cfg)).items():
        changed = cfg.copy()
        OmegaConf.update(changed, key, _perturbed(value), force_add=True)
        moved = config_hash(changed) != base
        assert moved != _not_hashed(key), f"{key}: hash {'moved' if moved else 'did not move'}"
