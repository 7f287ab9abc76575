"""Which training examples each step sees, decided on the host (`data.sampler`).

Without a sampler the loop draws uniform epochs on the device inside the jitted chunk
(repro/data/pipeline.py: batch_indices), the fast path. A sampler instead returns the indices
of a chunk of steps on the host, [num_steps, batch_size], as a pure function of (the seed's
data key, step): a resumed run gets exactly the batches it would have got. The loop then
gathers those examples on the device (data there) or on the host (`data.feed=host`).

    EpochSampler       uniform epochs, the same indices as the device path (bitwise)
    ClassBalanced      P classes x K examples of each per batch (FaceNet's batches)
"""

from __future__ import annotations

import jax
import numpy as np

from repro.data.pipeline import batch_indices
from repro.errors import DataError


def _rng(key, step: int) -> np.random.Generator:
    """A numpy generator that is a pure function of a JAX key and a step."""
    return np.random.default_rng([*np.asarray(jax.random.key_data(key)).ravel().tolist(), step])


class EpochSampler:
    """Uniform epochs (a fresh permutation each, drop-last): exactly the device path's indices."""

    def __init__(self):
        self._fn = jax.jit(batch_indices, static_argnums=(2, 3, 4))

    def indices(self, key, start_step: int, num_steps: int, batch_size: int, split: dict) -> np.ndarray:
        num_examples = len(next(iter(split.values())))
        return np.asarray(self._fn(key, start_step, num_steps, batch_size, num_examples))


class ClassBalanced:
    """Each batch: `classes_per_batch` distinct classes (P) drawn uniformly from those with at
    least `per_class` examples, and `per_class` (K) distinct examples of each, grouped by class
    (rows [p*K, (p+1)*K) share a class). batch_size must be P * K. Step s's batch depends only
    on (key, s)."""

    def __init__(self, classes_per_batch: int, per_class: int, field: str = "label"):
        self.p, self.k, self.field = classes_per_batch, per_class, field
        self._groups: dict[int, list[np.ndarray]] = {}

    def _by_class(self, split: dict) -> list[np.ndarray]:
        labels = np.asarray(split[self.field])
        cache = id(split[self.field])
        if cache not in self._groups:
            classes = np.unique(labels)
            groups = [np.flatnonzero(labels == c) for c in classes]
            groups = [g for g in groups if len(g) >= self.k]
            if len(groups) < self.p:
                raise DataError(f"ClassBalanced needs {self.p} classes with at least {self.k} examples "
                                f"each; the split has {len(groups)}")
            self._groups = {cache: groups}
        return self._groups[cache]

    def indices(self, key, start_step: int, num_steps: int, batch_size: int, split: dict) -> np.ndarray:
        if batch_size != self.p * self.k:
            raise ValueError(f"train.batch_size={batch_size} must be classes_per_batch x per_class = "
                             f"{self.p} x {self.k} = {self.p * self.k}")
        groups = self._by_class(split)
        out = np.empty((num_steps, batch_size), np.int32)
        for i in range(num_steps):
            rng = _rng(key, start_step + i)
            chosen = rng.choice(len(groups), self.p, replace=False)
            out[i] = np.concatenate([rng.choice(groups[c], self.k, replace=False) for c in chosen])
        return out
