"""Sentence BLEU on the device (experiments/seqgan/bleu.py), the PG-BLEU reward: exact against a direct
count of n-grams, clipped like BLEU, refused where its int32 keys would overflow."""

import collections
import math

import jax
import numpy as np
import pytest

from experiments.seqgan import bleu
from experiments.seqgan.objectives import PolicyGradientBLEU


def direct_bleu(candidate, references, max_n=4, smoothing=0.1):
    """BLEU from its definition, one n-gram dictionary at a time (the test's reference)."""
    def grams(tokens, n):
        return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))

    log_precisions = []
    for n in range(1, max_n + 1):
        clip = collections.Counter()
        for reference in references:
            for gram, count in grams(reference, n).items():
                clip[gram] = max(clip[gram], count)
        matched = sum(min(count, clip[gram]) for gram, count in grams(candidate, n).items())
        log_precisions.append(math.log((matched or smoothing) / (len(candidate) - n + 1)))
    return math.exp(sum(log_precisions) / max_n)


@pytest.mark.parametrize("vocab,max_n", [(3, 4), (6, 3), (50, 2)])
def test_bleu_matches_its_definition(vocab, max_n):
    rng = np.random.default_rng(vocab)
    references = rng.integers(0, vocab, (40, 9))
    candidates = np.concatenate([rng.integers(0, vocab, (60, 9)), references[:4]])
    table = bleu.ngram_table(references, vocab, max_n)
    got = jax.jit(lambda c: bleu.sentence_bleu(table, c, vocab))(candidates)
    want = [direct_bleu(list(c), [list(r) for r in references], max_n) for c in candidates]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got[-4:]), 1.0, rtol=1e-6)  # a reference scores 1


def test_matches_are_clipped_by_the_largest_count_in_one_reference():
    references = np.array([[1, 2, 1, 3], [2, 2, 4, 4]])  # token 2: twice in one reference, 3 in all
    table = bleu.ngram_table(references, 5, 2)
    unigrams, bigrams = bleu.clipped_matches(table, np.array([[2, 2, 2, 2], [0, 0, 0, 0]]), 5)
    assert np.asarray(unigrams).tolist() == [2.0, 0.0]
    assert np.asarray(bigrams).tolist() == [1.0, 0.0]  # (2, 2) occurs once in the second reference


def test_bad_references_are_refused():
    with pytest.raises(ValueError, match="overflows int32"):
        bleu.ngram_table(np.arange(40).reshape(4, 10), 10**8, 2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        bleu.ngram_table(np.array([[0, 1, 5]]), 5, 2)
    with pytest.raises(ValueError, match="T >= max_n"):
        bleu.ngram_table(np.array([[0, 1]]), 5, 4)


def test_pg_bleu_rewards_sequences_like_the_training_data():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 20, (200, 8)).astype(np.int32)
    objective = PolicyGradientBLEU(vocab=20, train_split={"tokens": train})
    seen, unseen = objective.reward(train[:50]), objective.reward(rng.integers(0, 20, (50, 8)))
    assert float(seen.min()) == pytest.approx(1.0) and float(unseen.max()) < 1.0
    with pytest.raises(ValueError, match="train_split"):
        PolicyGradientBLEU(vocab=20)
