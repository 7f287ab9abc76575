"""The collection's word hashing as the objective and the evaluator apply it: word ids -> the
model's unit vectors, with a trigram budget per batch that padding never spends."""

from __future__ import annotations

import math

import jax.numpy as jnp

from experiments.clsm_wordnet import data

# A batch's trigram budget: its expected count plus SPREAD standard deviations plus the longest
# text (exceeded with negligible probability; `dropped` counts what did not fit, logged).
SPREAD = 10.0


class Hashing:
    """Word hashing of the collection found through `data_dir` (data.locate), or of `collection`."""

    def __init__(self, data_dir: str | None = None, collection: data.Collection | None = None):
        c = collection if collection is not None else data.collection(data.locate(data_dir))
        self.word_trigrams = c.word_trigrams
        self.trigrams = len(c.trigrams)
        per_word = (c.word_trigrams > 0).sum(1)
        self.stats = {side: (float(n.mean()), float(n.std()), int(n.max()))
                      for side, n in (("query", per_word[c.queries].sum(1)),
                                      ("document", per_word[c.documents].sum(1)))}

    def cap(self, side: str, texts: int, words: int) -> int:
        mean, std, longest = self.stats[side]
        bound = texts * mean + SPREAD * math.sqrt(texts) * std + longest
        return int(min(texts * words * self.word_trigrams.shape[1], math.ceil(bound)))

    def encode(self, model, side: str, word_ids):
        """(unit vectors [..., semantic], trigram ids dropped) of word ids [..., L]."""
        rows = model.query.bag.table.shape[0]
        if rows < self.trigrams:
            raise ValueError(f"model.trigrams={rows}, but the collection hashes words into {self.trigrams} "
                             f"trigram ids: set model.trigrams={self.trigrams}")
        flat = word_ids.reshape(-1, word_ids.shape[-1])
        y, dropped = model.encode(side, flat, jnp.asarray(self.word_trigrams),
                                  self.cap(side, flat.shape[0], flat.shape[1]))
        return y.reshape(*word_ids.shape[:-1], y.shape[-1]), dropped

