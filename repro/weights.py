"""The final weights of a run, kept next to its result file (`<run name>.weights.npz`): the
model's parameters and other state (batch statistics) keyed by leaf path, so evaluations and
probes can be recomputed, or new probes run, without retraining (`python -m repro.recompute`).

The files are git-ignored (megabytes each): a clone has the committed result files without
their weights; a machine that ran or reproduced a paper has both.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

import jax
import numpy as np

from repro.checkpoint import named_leaves


def weights_path(result_file: str | Path) -> Path:
    result_file = Path(result_file)
    return result_file.with_name(f"{result_file.stem}.weights.npz")


def _is_key(leaf) -> bool:  # RNG key leaves: not weights, and not storable as plain arrays
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def save_weights(path: str | Path, params, rest) -> str:
    """Write {params/<leaf>, rest/<leaf>} atomically; returns the file's SHA-256."""
    path = Path(path)
    arrays = {f"{part}/{name}": np.asarray(leaf)
              for part, tree in (("params", params), ("rest", rest))
              for name, leaf in named_leaves(tree).items() if not _is_key(leaf)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise OSError(err.errno, f"disk full while writing {path}: free space and rerun (the run "
                          "resumes from its last checkpoint; no result file was written)") from err
        raise
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weights(path: str | Path, params, rest):
    """(params, rest) shaped like the given templates, filled from the file. Leaves must match
    by name, shape and dtype: weights of another model are refused, naming what differs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved weights at {path}: weights are kept only on the machine "
                                "that trained the run (git-ignored); rerun it to recompute them")
    with np.load(path) as stored:
        stored = dict(stored)
    filled = []
    for part, tree in (("params", params), ("rest", rest)):
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        names = list(named_leaves(tree))
        out = []
        for name, leaf in zip(names, leaves, strict=True):
            if _is_key(leaf):
                out.append(leaf)
                continue
            key = f"{part}/{name}"
            if key not in stored:
                raise ValueError(f"{path} has no {key}: saved from another model "
                                 f"(it holds {sorted(stored)[:8]}...)")
            value = stored.pop(key)
            if value.shape != np.shape(leaf) or value.dtype != np.asarray(leaf).dtype:
                raise ValueError(f"{path}: {key} is {value.dtype}{list(value.shape)}, the model "
                                 f"wants {np.asarray(leaf).dtype}{list(np.shape(leaf))}")
            out.append(value)
        filled.append(jax.tree_util.tree_unflatten(treedef, out))
    if stored:
        raise ValueError(f"{path} holds weights this model lacks: {sorted(stored)[:8]}")
    return tuple(filled)
