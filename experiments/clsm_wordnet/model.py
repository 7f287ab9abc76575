"""The two semantic models the CLSM paper compares, on letter-trigram word hashing (Shen et al.
2014, sec. 3; Huang et al. 2013, sec. 3): each maps a text (word ids) to a unit vector, and a
document's relevance to a query is the cosine of theirs.

- CLSM: word-trigram window (n = 2d + 1 words; d = 1) -> convolution (`conv` tanh units, the
  matrix shared by all windows) -> max pooling over the text's positions -> semantic layer
  (`semantic` tanh units). Windows at the ends see zero vectors beyond the text.
- DSSM: the text's bag of letter trigrams (counts) -> `hidden` tanh layers -> `semantic` tanh.

Queries and documents have towers of their own (as in both papers). A letter-trigram count
vector times a matrix is a sum of the matrix's rows, so a word's features are gathered by its
trigram ids (TrigramBag) and never built as a vocabulary-wide vector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

SIDES = ("query", "document")


def compact(word_ids: jax.Array, word_trigrams: jax.Array, cap: int):
    """The nonzero trigram ids of a batch of texts ([..., L] word ids, 0 = padding) as one list:
    (ids [cap], word [cap] = flat index of the word each belongs to, valid [cap], dropped: the
    trigram ids that did not fit in `cap`, expected 0). Padding is never gathered."""
    tri = word_trigrams[word_ids]  # [..., L, W]
    per_word = tri.shape[-1]
    flat = tri.reshape(-1)
    present = flat > 0
    count = present.sum()
    where = jnp.flatnonzero(present, size=cap, fill_value=0)
    valid = jnp.arange(cap) < count
    return flat[where], where // per_word, valid, jnp.maximum(count - cap, 0)


class TrigramBag(nnx.Module):
    """A [trigrams, features] matrix applied to letter-trigram count vectors: the rows of each
    group's trigrams summed (row 0, the padding id, is never read)."""

    def __init__(self, trigrams: int, features: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.variance_scaling(1.0, "fan_avg", "uniform")
        self.table = nnx.Param(init(rngs.params(), (trigrams, features)))

    def __call__(self, ids, group, valid, groups: int):
        rows = jnp.where(valid[:, None], self.table[...][ids], 0.0)
        return jax.ops.segment_sum(rows, group, num_segments=groups)


def _unit(v):
    return v / jnp.sqrt(jnp.maximum((v * v).sum(-1, keepdims=True), 1e-12))


class ClsmTower(nnx.Module):
    def __init__(self, trigrams: int, window: int, conv: int, semantic: int, *, rngs: nnx.Rngs):
        if window < 1 or window % 2 == 0:
            raise ValueError(f"model.window={window}: an odd number of words (n = 2d + 1)")
        self.window, self.conv = window, conv
        self.bag = TrigramBag(trigrams, window * conv, rngs=rngs)  # one block per window offset
        self.bias = nnx.Param(jnp.zeros(conv))
        self.semantic = nnx.Linear(conv, semantic, rngs=rngs)

    def __call__(self, word_ids, word_trigrams, cap: int):
        batch, length = word_ids.shape
        ids, word, valid, dropped = compact(word_ids, word_trigrams, cap)
        u = self.bag(ids, word, valid, batch * length).reshape(batch, length, self.window, self.conv)
        d = self.window // 2
        u = jnp.pad(u, ((0, 0), (d, d), (0, 0), (0, 0)))
        h = jnp.tanh(sum(u[:, k:k + length, k] for k in range(self.window)) + self.bias[...])
        present = (word_ids > 0)[..., None]
        pooled = jnp.where(present, h, -jnp.inf).max(1)
        pooled = jnp.where(present.any(1), pooled, 0.0)  # an empty text pools to 0
        return jnp.tanh(self.semantic(pooled)), dropped


class DssmTower(nnx.Module):
    def __init__(self, trigrams: int, hidden: tuple[int, ...], semantic: int, *, rngs: nnx.Rngs):
        self.bag = TrigramBag(trigrams, hidden[0], rngs=rngs)
        self.bias = nnx.Param(jnp.zeros(hidden[0]))
        sizes = [*hidden, semantic]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs)
                                for a, b in zip(sizes[:-1], sizes[1:], strict=True)])

    def __call__(self, word_ids, word_trigrams, cap: int):
        batch, length = word_ids.shape
        ids, word, valid, dropped = compact(word_ids, word_trigrams, cap)
        h = jnp.tanh(self.bag(ids, word // length, valid, batch) + self.bias[...])
        for layer in self.layers:
            h = jnp.tanh(layer(h))
        return h, dropped


class _TwoTowers(nnx.Module):
    """encode(side, word_ids [B, L], word_trigrams, cap) -> (unit vectors [B, semantic], dropped)."""

    def encode(self, side: str, word_ids, word_trigrams, cap: int):
        if side not in SIDES:
            raise ValueError(f"side={side!r}; one of {SIDES}")
        tower = self.query if side == "query" else self.document
        y, dropped = tower(word_ids, word_trigrams, cap)
        return _unit(y), dropped

    def __call__(self, x, train: bool = False, rngs=None):
        raise TypeError(f"{type(self).__name__} is called through encode(side, word ids, word_trigrams, "
                        "cap) by its objective and evaluator (experiments/clsm_wordnet)")


class CLSM(_TwoTowers):
    def __init__(self, trigrams: int, window: int = 3, conv: int = 300, semantic: int = 128, *,
                 rngs: nnx.Rngs):
        self.query = ClsmTower(trigrams, window, conv, semantic, rngs=rngs)
        self.document = ClsmTower(trigrams, window, conv, semantic, rngs=rngs)


class DSSM(_TwoTowers):
    def __init__(self, trigrams: int, hidden: tuple[int, ...] = (300, 300), semantic: int = 128, *,
                 rngs: nnx.Rngs):
        if not hidden:
            raise ValueError("model.hidden: at least one hidden layer (the trigram bag's)")
        self.query = DssmTower(trigrams, tuple(hidden), semantic, rngs=rngs)
        self.document = DssmTower(trigrams, tuple(hidden), semantic, rngs=rngs)
