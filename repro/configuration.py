"""Config helpers shared by the CLI, tests and the report: resolvers, hashing, run names."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Keys that change how a run is logged, stored or chunked, not what it computes.
NOT_HASHED = ("seed", "tag", "logger", "paths", "results", "progress", "hydra", "data.dir", "distributed",
              "train.checkpoint_every", "train.resume", "train.keep_checkpoints",
              "train.chunk_steps", "train.data_parallel", "train.unroll")

if not OmegaConf.has_resolver("prod"):
    OmegaConf.register_new_resolver("prod", lambda xs: math.prod(int(x) for x in xs))


def to_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def config_hash(cfg: DictConfig) -> str:
    """8 hex digits identifying what a run computes (seed excluded: seeds of one config group)."""
    tree = to_dict(cfg)
    for dotted in NOT_HASHED:
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return hashlib.sha1(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:8]


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.tag}-{config_hash(cfg)}-seed{cfg.seed}"


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config `python -m repro <overrides>` would run, without starting Hydra's app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []))
