import re
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
    assert compose(["experiment=debug", "data.allow_partial=true"]).data.allow_partial
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
    ("train.steps=abc", "train.steps=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("optim.lr=abc", "optim.lr=abc: Value 'abc' of type 'str' could not be converted to Float"),
    ("results.if_exists=bogus", "Invalid value 'bogus', expected one of [error, skip, overwrite]"),
    ("logger.mode=loud", "Invalid value 'loud', expected one of [online, offline, disabled]"),
    ("precision=fast", "Invalid value 'fast', expected one of [default, high, highest]"),
    ("optim.name=lamb", "Invalid value 'lamb', expected one of [sgd, adam, rmsprop]"),
    ("optim.schedule=linear",
     "Invalid value 'linear', expected one of [constant, piecewise, cosine, exponential]"),
    ("optim.weight_decay_mask=some", "Invalid value 'some', expected one of [kernels, all]"),
    ("data.allow_partial=maybe", "data.allow_partial=maybe: Value 'maybe' is not a valid bool"),
    ("+data.allow_partial=true", "data.allow_partial exists already, so set it without '+'"),
])
def test_the_schema_refuses_wrong_types_and_values_when_the_config_is_composed(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose(["experiment=debug", override])


def test_optional_keys_at_their_default_leave_the_hash_alone():
    """Keys added after results were first hashed (schema.OPTIONAL) enter the hash only when set
    away from their default: adding such a key orphans no result."""
    from repro import schema

    assert {"data.allow_partial", "data.pad", "optim.momentum", "optim.decay_steps"} <= set(schema.OPTIONAL)
    base = compose(["experiment=bn_mnist"])
    assert base.optim.b1 is None and base.data.allow_partial is False  # present, at the default
    at_defaults = ["experiment=bn_mnist", "optim.b1=null", "data.binarize.test_redraws=[]"]
    assert config_hash(compose(at_defaults)) == config_hash(base)
    assert config_hash(compose(["experiment=bn_mnist", "optim.b1=0.8"])) != config_hash(base)
    assert config_hash(compose(["experiment=bn_mnist", "data.allow_partial=true"])) != config_hash(base)


@pytest.mark.parametrize("override, message", [
    ("train.steps=-5", "train.steps=-5 is not allowed"),
    ("train.batch_size=0", "train.batch_size=0 is not allowed"),
    ("train.batch_size=-1", "train.batch_size=-1 is not allowed"),
    ("train.chunk_steps=0", "train.chunk_steps=0 is not allowed"),
    ("optim.lr=-1", "optim.lr=-1.0 is not allowed: it must be a number > 0"),
    ("train.checkpoint_every=70", r"train.checkpoint_every=70 must be a multiple of train.chunk_steps=50"),
    ("train.eval_every=75", r"train.eval_every=75 must be a multiple of train.chunk_steps=50"),
    ("optim.schedule=cosine", "optim.schedule=cosine needs optim.decay_steps"),
    ("data.augment=crop_flip", "data.augment=crop_flip crops a padded image: set data.pad"),
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


def _candidates(value):
    """Other values for a leaf, the first the schema accepts is used (enums take only members)."""
    from repro import schema

    members = [m.value for e in (schema.OptimizerName, schema.Schedule, schema.DecayMask,
                                 schema.IfExists, schema.Precision, schema.LoggerMode) for m in e]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int | float):
        return [value + 1]
    if isinstance(value, str):
        return [value + "x", *(m for m in members if m != value)]
    if isinstance(value, list):
        return [[*value, value[-1] if value else 1]]
    return [1, 0.5, [1], True, "x", *members, {"seed": 1, "test_redraws": []}] if value is None else [None]


def _perturb(cfg, key, value):
    for candidate in _candidates(value):
        changed = cfg.copy()
        try:
            OmegaConf.update(changed, key, candidate, merge=False, force_add=True)
        except Exception:  # noqa: BLE001 - OmegaConf refuses a wrong type in several ways
            continue
        return changed
    raise AssertionError(f"no other value of {key} is accepted by the schema")


@pytest.mark.parametrize("experiment", ["bn_mnist", "vardrop_mnist", "pixelcnn_mnist", "resnet_cifar10"])
def test_every_result_changing_key_changes_the_hash(experiment):
    """Change each leaf of the resolved config in turn: the hash must move unless the key is one
    of NOT_HASHED (logging, paths, chunking), which must leave it alone."""
    cfg = compose([f"experiment={experiment}"])
    base = config_hash(cfg)
    for key, value in _leaves(to_dict(cfg)).items():
        moved = config_hash(_perturb(cfg, key, value)) != base
        assert moved != _not_hashed(key), f"{key}: hash {'moved' if moved else 'did not move'}"


def test_classes_moved_into_their_papers_folder_keep_the_hash_of_their_results():
    """SeqGAN's and the mixture paper's classes moved out of repro/ after their results were
    hashed: a config naming the new path hashes as the committed results were, a stored config
    naming the old path loads the new class, and every new path imports."""
    import json

    from hydra.utils import get_class

    from repro.configuration import MOVED_TARGETS, ROOT, config_hash, from_stored, to_dict

    for new in MOVED_TARGETS.values():
        get_class(new)
    stored = json.loads((ROOT / "results" / "seqgan" / "mle-8d179b8b-seed0.json").read_text())
    assert stored["config"]["objective"]["_target_"] == "repro.objectives.SequenceNLL"
    cfg = compose(["experiment=seqgan"])
    assert cfg.objective._target_ == "experiments.seqgan.objectives.SequenceNLL"
    assert config_hash(cfg) == stored["config_hash"] == "8d179b8b"
    loaded = from_stored(stored["config"])
    assert loaded.objective._target_ == cfg.objective._target_ and config_hash(loaded) == "8d179b8b"
    assert to_dict(loaded)["model"]["_target_"] == "experiments.seqgan.sequence.LSTMGenerator"


def test_arguments_added_to_a_class_leave_the_hash_alone_at_the_value_earlier_runs_used():
    from repro.configuration import ADDED_ARGUMENTS

    target = "experiments.seqgan.objectives.PolicyGradientBLEU"
    assert ADDED_ARGUMENTS[target] == {"reference_fraction": 1.0, "reference_seed": 0}
    pg = ["experiment=seqgan", "objective=pg_bleu", "tag=pg_bleu"]
    assert config_hash(compose(pg)) == config_hash(compose([*pg, "objective.reference_seed=0"]))
    assert config_hash(compose([*pg, "objective.reference_seed=1"])) != config_hash(compose(pg))
    assert config_hash(compose([*pg, "objective.reference_fraction=0.4"])) != config_hash(compose(pg))
    # Only that class's arguments: the same name elsewhere is hashed as it is.
    mle = compose(["experiment=seqgan"])
    assert config_hash(mle) == "8d179b8b"


def test_no_committed_run_is_orphaned_by_a_key_added_to_its_variant_since():
    """A committed run whose stored config, with the keys added since filled in at their current
    values, is its variant's config must carry that variant's hash: else the report silently
    moves it to "other result files" and its rows read "not run" (as PG-BLEU's did when its
    objective gained reference_fraction). Fix such a key in configuration.ADDED_ARGUMENTS or
    schema.OPTIONAL."""
    from repro.configuration import from_stored, without_unhashed
    from repro.report import ROOT, load_specs, variant_config
    from repro.results import load_results

    orphans = []
    for spec in load_specs():
        results = load_results(ROOT / "results", spec["experiment"])
        stored = {}
        for variant in spec["variants"]:
            cfg = variant_config(spec, variant)
            wanted, current = without_unhashed(to_dict(cfg)), config_hash(cfg)
            for r in results:
                if r.get("tag") != cfg.tag or r["config_hash"] == current:
                    continue
                if r["name"] not in stored:
                    stored[r["name"]] = OmegaConf.create(to_dict(from_stored(r["config"])))
                filled = OmegaConf.merge(cfg, stored[r["name"]])
                if without_unhashed(to_dict(filled)) == wanted:
                    orphans.append(f"{spec['experiment']}/{variant}: {r['name']}")
    assert not orphans, orphans
