"""Runs that start where another run of the same experiment ended (`init_from`): e.g. SeqGAN's
adversarial training starts its generator from the MLE run's final weights. The source run is
named by its overrides, like a command line, and taken with the same seed; its weights file
(written beside its result, repro/weights.py) fills the model, or one named part of it."""

from __future__ import annotations

import hashlib

from flax import nnx

from repro.configuration import compose, run_name
from repro.results import result_path
from repro.weights import load_weights, weights_path


def source_run(cfg, overrides: list[str], seed: int):
    """(config, run name, weights file) of the run of cfg's experiment that `overrides` and `seed`
    name, trained earlier into cfg.paths.results; a missing one says how to train it."""
    data_dir = "null" if cfg.data.dir is None else cfg.data.dir
    source = compose([f"experiment={cfg.experiment_name}", *overrides, f"seed={seed}",
                      f"paths.results={cfg.paths.results}", f"data.dir={data_dir}"])
    name = run_name(source)
    path = weights_path(result_path(cfg.paths.results, cfg.experiment_name, name))
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: this run starts from the final weights of run {name}. Train that "
            f"first: python -m repro experiment={cfg.experiment_name} {' '.join(overrides)} "
            f"seed={seed} paths.results={cfg.paths.results}")
    return source, name, path


def load_into(target: nnx.Module, path) -> str:
    """Fill `target`'s parameters and state from a weights file; returns the file's SHA-256."""
    _, params, rest = nnx.split(target, nnx.Param, ...)
    params, rest = load_weights(path, params, rest)
    nnx.update(target, params, rest)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def warm_start(model: nnx.Module, cfg, seed: int) -> dict:
    """Fill `model` (or its part cfg.init_part) from the source run's weights (the run of this
    experiment with the overrides cfg.init_from and this seed); returns what was loaded (run
    name, part, the file's SHA-256) for the result file."""
    _, name, path = source_run(cfg, list(cfg.init_from), seed)
    part = cfg.init_part
    sha = load_into(getattr(model, part) if part else model, path)
    return {"run": name, "part": part, "sha256": sha}
