"""Sentence BLEU of token sequences against a fixed reference set, on the device (jit, vmap).

Used as a reward (SeqGAN's PG-BLEU baseline scores every Monte Carlo rollout against the 10,000
training sequences), so it must be exact and cheap for thousands of candidates per step. The
references' n-grams are indexed once on the host; a candidate's n-grams are then found by binary
search. An n-gram's key is (index of its (n-1)-prefix among the references' (n-1)-grams) * vocab
+ its last token: exact, int32, and a prefix the references lack means the n-gram is absent too.

BLEU (Papineni et al. 2002), per candidate: exp(mean over n = 1..max_n of log p_n) * BP, where
p_n is the clipped n-gram precision (each n-gram counted at most as often as it occurs in any one
reference). A p_n with no match at all is taken as smoothing / (number of n-grams) (NLTK's
SmoothingFunction().method1, epsilon 0.1), so one missing order does not zero the score.
Candidates and references here all have one length, so the brevity penalty BP is 1."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

INT32_LIMIT = 2**31 - 1


def ngram_table(references: np.ndarray, vocab: int, max_n: int = 4) -> list[dict[str, np.ndarray]]:
    """Per order n = 1..max_n: the references' distinct n-gram keys, sorted, and each key's
    largest count within a single reference (BLEU's clip). references: int [N, T]."""
    references = np.asarray(references, np.int64)
    if references.ndim != 2 or references.shape[1] < max_n:
        raise ValueError(f"references must be [N, T] token sequences with T >= max_n={max_n}, "
                         f"got shape {references.shape}")
    if references.min() < 0 or references.max() >= vocab:
        raise ValueError(f"reference tokens must lie in [0, {vocab}), got {references.min()}.."
                         f"{references.max()}")
    table, index = [], None  # index: each position's (n-1)-gram as an index into the last keys
    rows = np.arange(len(references))[:, None]
    for n in range(1, max_n + 1):
        last = references[:, n - 1:]
        keys = last if n == 1 else index[:, :-1] * vocab + last
        distinct = np.unique(keys)
        if len(distinct) * vocab > INT32_LIMIT:
            raise ValueError(f"{len(distinct)} distinct {n}-grams x vocab {vocab} overflows int32 "
                             "keys: use fewer references or a smaller max_n")
        index = np.searchsorted(distinct, keys)
        # count of each (reference, n-gram) pair, then the largest count per n-gram
        pairs, counts = np.unique(rows * len(distinct) + index, return_counts=True)
        max_count = np.zeros(len(distinct), np.int32)
        np.maximum.at(max_count, pairs % len(distinct), counts.astype(np.int32))
        table.append({"keys": distinct.astype(np.int32), "max_count": max_count})
    return table


def _lookup(keys, queries, known):
    """Index of each query in the sorted `keys`, -1 where absent (or where `known` is False)."""
    keys = jnp.asarray(keys)
    position = jnp.clip(jnp.searchsorted(keys, queries), 0, keys.shape[0] - 1)
    return jnp.where(known & (keys[position] == queries), position, -1)


def clipped_matches(table, candidates, vocab: int):
    """Per order n: the clipped n-gram match count of each candidate [B], as float32."""
    candidates = jnp.asarray(candidates, jnp.int32)
    matches, index = [], None
    for n, order in enumerate(table, start=1):
        last = candidates[:, n - 1:]
        if n == 1:
            index = _lookup(order["keys"], last, jnp.ones(last.shape, bool))
        else:
            prefix = index[:, :-1]
            index = _lookup(order["keys"], jnp.maximum(prefix, 0) * vocab + last, prefix >= 0)
        found = index >= 0
        # How often each n-gram occurs in its own candidate: sum over its positions of
        # min(count, clip) / count is the clipped count of the distinct n-gram, once.
        same = (index[:, :, None] == index[:, None, :]) & found[:, None, :]
        count = same.sum(-1).astype(jnp.float32)
        clip = jnp.take(jnp.asarray(order["max_count"]), jnp.maximum(index, 0)).astype(jnp.float32)
        share = jnp.where(found, jnp.minimum(count, clip) / jnp.maximum(count, 1.0), 0.0)
        matches.append(share.sum(-1))
    return matches


def sentence_bleu(table, candidates, vocab: int, smoothing: float = 0.1):
    """BLEU-len(table) of each candidate [B, T] against the references of `table`: [B] in [0, 1]."""
    length = candidates.shape[1]
    log_precisions = []
    for n, matched in enumerate(clipped_matches(table, candidates, vocab), start=1):
        total = length - n + 1
        log_precisions.append(jnp.log(jnp.where(matched > 0, matched, smoothing) / total))
    return jnp.exp(jnp.mean(jnp.stack(log_precisions), axis=0))
