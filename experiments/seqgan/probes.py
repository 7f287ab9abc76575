"""The paper's measure: the oracle NLL of sequences drawn from the model being trained."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from experiments.seqgan import oracle_lstm
from repro.data.dataset import resolve_data_dir


def distinct_fraction(tokens):
    """The fraction of distinct rows among token sequences [N, T] (1.0: no sequence repeats)."""
    ordered = tokens[jnp.lexsort(tokens.T[::-1])]
    changes = jnp.any(ordered[1:] != ordered[:-1], axis=1).sum()
    return (1 + changes) / tokens.shape[0]


class OracleNLL:
    """Mean per-token NLL (nats) under the oracle of `samples` sequences drawn from the model's
    generator (the model itself if it has no `generator` part), with a fixed key, and the
    fraction of those samples that are distinct: the oracle NLL measures quality only, and a
    generator collapsed onto a few likely sequences scores well on it (PG-BLEU, spec). `data_dir`
    comes from the run (build_trainer passes data.dir), not from the probe's config."""

    needs = ("data_dir",)

    def __init__(self, samples: int = 10_000, seed: int = 0, *, data_dir: str | None = None):
        root = resolve_data_dir(data_dir) or Path.home() / ".cache" / "repro"  # where read_online put it
        self.oracle = oracle_lstm.load_oracle(root)
        self.samples, self.seed = samples, seed

    def __call__(self, model, eval_data, transforms) -> dict:
        generator = getattr(model, "generator", model)
        tokens = generator.sample(jax.random.key(self.seed), self.samples)
        return {"oracle_nll": oracle_lstm.nll(self.oracle, tokens), "distinct": distinct_fraction(tokens)}
