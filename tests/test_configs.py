from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from repro.configuration import (
    CONFIG_DIR,
    NOT_HASHED,
    compose,
    config_hash,
    experiment_configs,
    run_name,
    to_dict,
)
from repro.validation import ConfigError, validate

EXPERIMENTS = sorted(experiment_configs())


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
    with pytest.raises(ConfigError, match=r"'optim.lrr'. Did you mean optim.lr\? Valid keys of optim: .*lr, "
                                          r"momentum"):
        compose(["experiment=bn_mnist", "optim.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"'precison'. Did you mean precision\? Valid keys at the top"):
        compose(["experiment=bn_mnist", "precison=high"])
    with pytest.raises(ConfigCompositionException, match="nosuchpaper"):
        compose(["experiment=nosuchpaper"])


def test_plus_adds_only_keys_that_some_code_reads():
    with pytest.raises(ConfigError, match=r"\+train.stpes adds a key that no code reads"):
        compose(["experiment=debug", "+train.stpes=5"])
    with pytest.raises(ConfigError, match=r"\+model.bogus adds a key"):
        compose(["experiment=debug", "+model.bogus=1"])
    assert compose(["experiment=debug", "+data.allow_partial=true"]).data.allow_partial
    # A model argument its config leaves out may be added (every current config lists them all).
    from repro.validation import _target_takes

    cfg = compose(["experiment=debug"])
    assert _target_takes(cfg, "model", "init_std") and not _target_takes(cfg, "model", "bogus")


def test_the_command_line_lists_the_valid_keys_of_a_misspelt_one():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "repro", "-m", "experiment=debug", "train.stpes=5,6"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "Did you mean train.steps? Valid keys of train: batch_size" in out.stderr


@pytest.mark.parametrize("override, message", [
    ("train.steps=abc", "train.steps='abc' is not allowed: it must be an integer > 0"),
    ("train.steps=-5", "train.steps=-5 is not allowed"),
    ("train.batch_size=0", "train.batch_size=0 is not allowed"),
    ("train.batch_size=-1", "train.batch_size=-1 is not allowed"),
    ("train.chunk_steps=0", "train.chunk_steps=0 is not allowed"),
    ("optim.lr=abc", "optim.lr='abc' is not allowed: it must be a number > 0"),
    ("optim.lr=-1", "optim.lr=-1 is not allowed"),
    ("results.if_exists=bogus", "results.if_exists='bogus' is not allowed: it must be one of error, skip"),
    ("logger.mode=loud", "logger.mode='loud' is not allowed: it must be one of null, online, offline"),
    ("precision=fast", "precision='fast' is not allowed"),
    ("optim.name=rmsprop", "optim.name='rmsprop' is not allowed: it must be one of sgd, adam"),
    ("optim.schedule=linear", "optim.schedule='linear' is not allowed: it must be one of null, constant"),
    ("train.checkpoint_every=70", r"train.checkpoint_every=70 must be a multiple of train.chunk_steps=50"),
    ("train.eval_every=75", r"train.eval_every=75 must be a multiple of train.chunk_steps=50"),
])
def test_bad_values_stop_the_run_before_any_data_is_loaded(override, message):
    from repro.run import run

    cfg = compose(["experiment=debug", "data.dir=/nonexistent", override])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        run(cfg)  # a ConfigError, not the DataError loading /nonexistent would give


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_config_validates(experiment):
    validate(compose([f"experiment={experiment}"]))


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
