"""Config checks that run before anything is loaded or trained, each error saying what is allowed.

Types and enums are the schema's (repro/schema.py; Hydra checks them while composing); this
module adds the rules a type cannot say (key -> check: positive steps, intervals that are
multiples of the chunk), and the checks of the command line's overrides: a misspelt key lists
the valid keys of its group, and `+key=value` may add only an argument of the model or objective
class (any other key exists in the schema already; adding one no code reads would only change
the run's config hash).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import numbers
import re

from omegaconf import DictConfig, OmegaConf

from repro import schema


class ConfigError(ValueError):
    """A config value or key that cannot run; the message says what is allowed."""


def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0, "an integer > 0"


def _non_negative_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0 (0 = off)"


def _positive_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0, "a number > 0"


def _file_name(v):
    """A name that becomes one path component (results, weights, locks): no separator, no '..'."""
    ok = (isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*", v) is not None
          and ".." not in v)
    return ok, "a plain name (letters, digits, _ . = + -; no '/', no '..'): it names files"


def _one_of(*allowed):
    names = ", ".join("null" if a is None else str(a) for a in allowed)
    return lambda v: (v in allowed, f"one of {names}")


def _choice(enum, optional=False):
    return _one_of(*([None] if optional else []), *(e.value for e in enum))


RULES = {
    "train.steps": _positive_int,
    "train.batch_size": _positive_int,
    "train.eval_batch_size": _positive_int,
    "train.chunk_steps": _positive_int,
    "train.eval_every": _positive_int,
    "train.checkpoint_every": _non_negative_int,
    "optim.lr": _positive_number,
    # The schema's enums, for configs built without Hydra (e.g. from a result file).
    "optim.name": _choice(schema.OptimizerName),
    "optim.schedule": _choice(schema.Schedule),
    "results.if_exists": _choice(schema.IfExists),
    "logger.mode": _choice(schema.LoggerMode, optional=True),  # None: $WANDB_MODE or offline
    "precision": _choice(schema.Precision),
    "tag": _file_name,
    "experiment_name": _file_name,
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
    if cfg.optim.schedule == "cosine" and not cfg.optim.decay_steps:
        raise ConfigError("optim.schedule=cosine needs optim.decay_steps (steps to decay to 0), "
                          "e.g. optim.decay_steps=${train.steps}")
    if cfg.data.augment is not None and cfg.data.pad is None:
        raise ConfigError(f"data.augment={cfg.data.augment} crops a padded image: set data.pad (e.g. 4)")


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
            if isinstance(node, DictConfig) and leaf in node:
                raise ConfigError(f"+{key}: {key} exists already, so set it without '+': "
                                  f"{override.lstrip('+')}")
            if group in INSTANTIATED and parent == group and _target_takes(cfg, group, leaf):
                continue
            raise ConfigError(
                f"+{key} adds a key that no code reads (it would only change the config hash). "
                f"Only an argument of the {'/'.join(INSTANTIATED)} class may be added; every other "
                f"key is in the schema (repro/schema.py) and is set without '+'.")
        if isinstance(node, DictConfig) and leaf in node.keys():  # `in node` is False for ??? values
            continue
        valid = _keys(node)
        close = difflib.get_close_matches(leaf, valid, n=1)
        hint = f" Did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
        where = f"of {parent}" if parent else "at the top level"
        raise ConfigError(f"unknown config key {key!r}.{hint} Valid keys {where}: {', '.join(valid)}")
