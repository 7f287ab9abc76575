"""Config checks that run before anything is loaded or trained, each error saying what is allowed.

One table of rules (key -> check) so a typed schema can take them over later; plus the checks of
the command line's overrides: a misspelt key lists the valid keys of its group, and `+key=value`
may add only a key some code reads (else Hydra would add it, nothing would read it, and the
run would get a new config hash for nothing).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import numbers

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value or key that cannot run; the message says what is allowed."""


def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0, "an integer > 0"


def _non_negative_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0 (0 = off)"


def _positive_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0, "a number > 0"


def _one_of(*allowed):
    names = ", ".join("null" if a is None else str(a) for a in allowed)
    return lambda v: (v in allowed, f"one of {names}")


RULES = {
    "train.steps": _positive_int,
    "train.batch_size": _positive_int,
    "train.eval_batch_size": _positive_int,
    "train.chunk_steps": _positive_int,
    "train.eval_every": _positive_int,
    "train.checkpoint_every": _non_negative_int,
    "optim.lr": _positive_number,
    "optim.name": _one_of("sgd", "adam"),
    "optim.schedule": _one_of(None, "constant", "piecewise", "cosine"),  # None: constant
    "results.if_exists": _one_of("error", "skip", "overwrite"),
    "logger.mode": _one_of(None, "online", "offline", "disabled"),  # None: $WANDB_MODE or offline
    "precision": _one_of("default", "high", "highest"),
}

# Keys the code reads with a default (cfg.<group>.get(...)), so `+key=value` may add them.
OPTIONAL_KEYS = {
    "data.allow_partial", "data.binarize", "data.binarize.seed", "data.binarize.test_redraws",
    "data.limit_train", "data.augment", "data.pad",
    "optim.warmup_steps", "optim.warmup_lr", "optim.weight_decay_mask", "optim.decay_steps",
    "optim.momentum", "optim.nesterov", "optim.b1", "optim.b2", "optim.weight_decay",
    "optim.schedule", "optim.boundaries", "optim.decay_factor",
}
# Groups built with hydra's instantiate: `+key` is fine where the target takes that argument.
INSTANTIATED = ("model", "objective")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value no run can use."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        ok, allowed = rule(value)
        if not ok:
            raise ConfigError(f"{key}={value!r} is not allowed: it must be {allowed}")
    chunk = cfg.train.chunk_steps
    for key in ("train.eval_every", "train.checkpoint_every"):
        value = OmegaConf.select(cfg, key)
        if value and value % chunk:
            raise ConfigError(
                f"{key}={value} must be a multiple of train.chunk_steps={chunk} (evaluations and "
                f"checkpoints happen at chunk ends; e.g. {key}={max(chunk, value // chunk * chunk)})")


def _keys(node) -> list[str]:
    return sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []


def _target_takes(cfg: DictConfig, group: str, arg: str) -> bool:
    target = OmegaConf.select(cfg, f"{group}._target_")
    if not target:
        return False
    module, _, name = target.rpartition(".")
    try:
        target = getattr(importlib.import_module(module), name)
        # A class's own __init__ (nnx.Module's metaclass makes the class look like **kwargs).
        params = inspect.signature(target.__init__ if inspect.isclass(target) else target).parameters
    except (ImportError, AttributeError, ValueError):
        return False
    return arg in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_override_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """Every `key=value` names a key of cfg, every `+key=value` one the code reads."""
    for override in overrides:
        if "=" not in override or override.startswith(("~", "hydra", "-")):
            continue
        key = override.split("=", 1)[0]
        added = key.startswith("+")
        key = key.lstrip("+")
        if "/" in key:  # a config group choice such as hydra/launcher=slurm
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if added:
            group = key.split(".", 1)[0]
            if key in OPTIONAL_KEYS or (group in INSTANTIATED and parent == group
                                        and _target_takes(cfg, group, leaf)):
                continue
            raise ConfigError(
                f"+{key} adds a key that no code reads (it would only change the config hash). "
                f"Keys that may be added: {', '.join(sorted(OPTIONAL_KEYS))}, or an argument of "
                f"the {'/'.join(INSTANTIATED)} class; existing keys are set without '+'.")
        if isinstance(node, DictConfig) and leaf in node:
            continue
        valid = _keys(node)
        close = difflib.get_close_matches(leaf, valid, n=1)
        hint = f" Did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
        where = f"of {parent}" if parent else "at the top level"
        raise ConfigError(f"unknown config key {key!r}.{hint} Valid keys {where}: {', '.join(valid)}")
