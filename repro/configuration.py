"""Config helpers shared by the CLI, tests and the report: resolvers, hashing, run names."""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from repro import schema

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
# One folder per paper: experiments/<name>/config.yaml is the Hydra choice `experiment=<name>`.
EXPERIMENTS_DIR = ROOT / "experiments"
# Keys that change how a run is logged, stored or chunked, not what it computes.
NOT_HASHED = ("seed", "seeds", "tag", "logger", "paths", "results", "progress", "hydra", "data.dir",
              "distributed", "distributed_timeout_s", "train.checkpoint_every", "train.resume",
              "train.keep_checkpoints", "train.chunk_steps", "train.data_parallel")
# Keys older result files hold that the schema no longer has (train.unroll: convs are fast in a
# scan since repro/models/conv.py); none changed what a run computes.
REMOVED_KEYS = ("train.unroll",)
# Optional keys whose "not used" value changed: a stored former value stands for the current
# default (optim.groups was None before it became a list).
FORMER_DEFAULTS = {"optim.groups": None}
# Arguments added to a configured class after results were hashed, with the value that computes
# what those runs computed: at that value they stay out of the hash, so the runs keep their names
# (tests/test_configs.py fails when a committed run loses its variant to a key added like this).
ADDED_ARGUMENTS = {
    "experiments.seqgan.objectives.PolicyGradientBLEU": {"reference_fraction": 1.0, "reference_seed": 0},
}
# Classes that moved into their paper's folder after results were hashed under their old path:
# a stored config's old `_target_` loads as the new one, and the hash is taken under the old
# one, so those results keep their hash (and name) and nothing is rewritten.
MOVED_TARGETS = {
    "repro.models.sequence.LSTMGenerator": "experiments.seqgan.sequence.LSTMGenerator",
    "repro.models.sequence.SeqGAN": "experiments.seqgan.sequence.SeqGAN",
    "repro.objectives.SequenceNLL": "experiments.seqgan.objectives.SequenceNLL",
    "repro.objectives.AdversarialSequence": "experiments.seqgan.objectives.AdversarialSequence",
    "repro.objectives.PolicyGradientBLEU": "experiments.seqgan.objectives.PolicyGradientBLEU",
    "repro.models.vae.MixtureVAE": "experiments.mixture_backprop.vae.MixtureVAE",
    "repro.objectives.MixtureELBO": "experiments.mixture_backprop.objective.MixtureELBO",
    "repro.models.pixelcnn.PixelCNN": "experiments.pixelcnn_mnist.pixelcnn.PixelCNN",
}

if not OmegaConf.has_resolver("prod"):
    OmegaConf.register_new_resolver("prod", lambda xs: math.prod(int(x) for x in xs))
if not OmegaConf.has_resolver("class_name"):  # a tag from a _target_: a.b.CLSM -> clsm
    OmegaConf.register_new_resolver("class_name", lambda target: str(target).rsplit(".", 1)[-1].lower())


def experiment_configs(experiments_dir: Path = EXPERIMENTS_DIR) -> dict[str, Path]:
    """{experiment name: its config file}; the name is the folder's."""
    return {p.parent.name: p for p in sorted(experiments_dir.glob("*/config.yaml"))}


def register_experiments(experiments_dir: Path = EXPERIMENTS_DIR) -> None:
    """Put every paper folder's config in Hydra's `experiment` group. Hydra's search path can
    only add whole group folders (configs/experiment/<name>.yaml), so each paper's config is
    stored in the ConfigStore instead, at the top level as a `# @package _global_` file would be."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, path in experiment_configs(experiments_dir).items():
        node = OmegaConf.load(path)
        if node.get("experiment_name") != name:
            raise ValueError(f"{path}: experiment_name must be {name!r}, the folder's name (results "
                             f"go to results/<experiment_name>/), not {node.get('experiment_name')!r}")
        store.store(group="experiment", name=name, node=node, package="_global_")


register_experiments()
schema.register()


def to_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True, enum_to_str=True)


_ANY = object()


def _drop(tree: dict, dotted: str, if_equal=_ANY) -> None:
    """Remove a dotted key from a nested dict (only when it holds `if_equal`, if given)."""
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node.get(p) or {}
    if leaf in node and (if_equal is _ANY or node[leaf] == if_equal):
        node.pop(leaf)


def without_unhashed(tree: dict) -> dict:
    """A copy of a config tree less the NOT_HASHED keys: the part of it that names a run."""
    tree = copy.deepcopy(tree)
    for dotted in NOT_HASHED:
        _drop(tree, dotted)
    return tree


def _drop_added_arguments(tree):
    """The tree without ADDED_ARGUMENTS that hold the value the runs before them computed with."""
    if isinstance(tree, dict):
        added = ADDED_ARGUMENTS.get(tree.get("_target_"), {})
        return {k: _drop_added_arguments(v) for k, v in tree.items() if k not in added or v != added[k]}
    if isinstance(tree, list):
        return [_drop_added_arguments(v) for v in tree]
    return tree


def _retarget(tree, moves: dict[str, str]):
    """The tree with every `_target_` found in `moves` replaced by its mapping."""
    if isinstance(tree, dict):
        return {k: (moves.get(v, v) if k == "_target_" and isinstance(v, str) else _retarget(v, moves))
                for k, v in tree.items()}
    if isinstance(tree, list):
        return [_retarget(v, moves) for v in tree]
    return tree


# What a config read from a data file (a result, a spec, a probe file) may instantiate: the
# project's own classes. Checked before anything is built, so a crafted file cannot make the
# suite construct an arbitrary class (e.g. one that opens a file for writing).
TRUSTED_TARGETS = ("repro.", "experiments.")


class UntrustedTargetError(ValueError):
    """A `_target_` outside the project's own modules, read from a file."""


def check_targets(tree, where: str) -> None:
    """Raise UntrustedTargetError for any `_target_` in `tree` outside TRUSTED_TARGETS."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "_target_" and not (isinstance(value, str) and value.startswith(TRUSTED_TARGETS)):
                trusted = ", ".join(p + "*" for p in TRUSTED_TARGETS)
                raise UntrustedTargetError(f"{where} names _target_ {value!r}: only the project's own "
                                           f"classes ({trusted}) are built from a file; nothing was built")
            check_targets(value, where)
    elif isinstance(tree, list):
        for value in tree:
            check_targets(value, where)


def with_current_targets(config: dict) -> dict:
    """A stored config with moved classes named where they are now (MOVED_TARGETS)."""
    return _retarget(config, MOVED_TARGETS)


def from_stored(config: dict) -> DictConfig:
    """A result file's config as the schema-merged config it stands for: keys added to the
    schema since the run take their defaults (the hash leaves those out), removed keys go,
    moved classes load from where they are now (MOVED_TARGETS)."""
    tree = with_current_targets(json.loads(json.dumps(config)))
    check_targets(tree, "a stored config")
    for dotted in REMOVED_KEYS:
        _drop(tree, dotted)
    for dotted, former in FORMER_DEFAULTS.items():
        _drop(tree, dotted, if_equal=former)
    return OmegaConf.merge(OmegaConf.structured(schema.Config), tree)


def config_hash(cfg: DictConfig) -> str:
    """8 hex digits identifying what a run computes (seed excluded: seeds of one config group).
    Taken over the schema-merged config, less NOT_HASHED and the keys added since results were
    first hashed (schema.OPTIONAL, ADDED_ARGUMENTS) while they hold their default, so such keys
    orphan nothing; moved classes are hashed under their former path (MOVED_TARGETS)."""
    tree = _drop_added_arguments(to_dict(cfg))  # under the current class paths, which it names
    tree = without_unhashed(_retarget(tree, {new: old for old, new in MOVED_TARGETS.items()}))
    for dotted, default in schema.OPTIONAL.items():
        _drop(tree, dotted, if_equal=default)
    return hashlib.sha1(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:8]


def config_name(cfg: DictConfig) -> str:
    """<tag>-<hash>: names a config apart from its seed (the wandb job type of its runs)."""
    return f"{cfg.tag}-{config_hash(cfg)}"


def run_name(cfg: DictConfig) -> str:
    return f"{config_name(cfg)}-seed{cfg.seed}"


def seed_list(cfg: DictConfig) -> list[int] | None:
    """cfg.seeds checked: distinct ints, or None when the run trains cfg.seed alone."""
    seeds = cfg.seeds
    if seeds is None:
        return None
    if not OmegaConf.is_list(seeds):
        raise ValueError(f"seeds={seeds!r} must be a list, e.g. seeds=[0,1,2] (or seed={seeds} "
                         "for one seed)")
    if not seeds:
        raise ValueError("seeds=[] is empty: list the seeds to train together, e.g. seeds=[0,1,2], "
                         "or leave seeds=null to train `seed` alone")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds) or len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds={list(seeds)} must be distinct integers")
    return list(seeds)


def seed_configs(cfg: DictConfig) -> list[DictConfig]:
    """The config of every seed a run trains: [cfg] or, for seeds=[...], one copy per seed with
    `seed` set and `seeds` cleared, i.e. the config a separate run of that seed has (same run
    name, hash and stored config), so the two ways of running are interchangeable."""
    seeds = seed_list(cfg)
    if seeds is None:
        return [cfg]
    members = []
    for seed in seeds:
        member = cfg.copy()
        member.seed, member.seeds = seed, None
        members.append(member)
    return members


def _is_group_choice(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return "=" in override and ("/" in key or key == "experiment" or (CONFIG_DIR / key).is_dir())


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config `python -m repro <overrides>` would run, without starting Hydra's app. A
    misspelt key or a `+key` no code reads is a ConfigError listing the valid keys. A copy of
    what the first call with the same overrides composed (Hydra takes ~0.2 s a composition, and
    the report, the checks and the tests compose each variant again and again)."""
    from repro.validation import check_override_keys

    overrides = tuple(overrides or ())
    values = [o for o in overrides if not _is_group_choice(o)]
    cfg, error = _composed(overrides)
    base = _composed(tuple(o for o in overrides if _is_group_choice(o)))[0] if values else None
    if base is not None:  # each key checked against the config before the values: is it there?
        check_override_keys(base, values)
    if error is not None:
        raise schema_error(error) or error from error
    return copy.deepcopy(cfg)


@functools.lru_cache(maxsize=512)
def _composed(overrides: tuple[str, ...]):
    """(config, None) or (None, Hydra's composition error) for these overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException

    # Inside a running app (e.g. a data.derive that composes another run's config) Hydra is set up.
    context = (contextlib.nullcontext() if GlobalHydra.instance().is_initialized()
               else initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"))
    with context:
        try:
            return hydra_compose(config_name="config", overrides=list(overrides)), None
        except ConfigCompositionException as err:
            return None, err


def schema_error(err: Exception):
    """A ConfigError naming the schema's complaint (a wrong type, a value outside an enum) that
    Hydra keeps in the exception's cause; None for other composition errors."""
    from omegaconf.errors import ValidationError

    from repro.validation import ConfigError

    cause = err.__cause__
    if not isinstance(cause, ValidationError):
        return None
    return ConfigError(f"{err}: {str(cause).splitlines()[0]} (the schema: repro/schema.py)")


def check_command_line(args: list[str]) -> None:
    """The CLI's overrides checked as compose() checks them, before Hydra runs (it would report
    a misspelt key without the valid ones). Sweep values (a,b,c) are checked by their first."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    from repro.validation import check_override_keys

    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    choices = [o.split(",")[0] for o in overrides if _is_group_choice(o) and not o.startswith("hydra")]
    values = [o.split(",")[0] for o in overrides if not _is_group_choice(o)]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=choices)
    except HydraException:
        return  # e.g. an unknown experiment: Hydra's own error lists the options
    check_override_keys(cfg, values)
    try:  # a value the schema refuses (wrong type, not one of an enum's)
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            hydra_compose(config_name="config",
                          overrides=[*choices, *(v for v in values if not v.startswith("hydra"))])
    except HydraException as err:
        error = schema_error(err)
        if error is not None:
            raise error from err
