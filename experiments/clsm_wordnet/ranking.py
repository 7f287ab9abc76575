"""Ranking the judged lists of held-out queries, as the paper evaluates (NDCG@1, @3, @10 over
each query's judged documents, averaged over queries):

- Ranking: the model's cosines (host evaluator: scores predicted on the device, NDCG on the
  host);
- BM25Ranking: BM25 (Okapi; rank-bm25's defaults k1 1.5, b 0.75, epsilon 0.25) over the whole
  collection's documents, the same lists (final evaluation only: it does not change).

NDCG is trec_eval's (ir-measures over pytrec_eval): gain = grade, discount log2(rank + 1),
ideal from the list's own judgments. Ties in score are broken by trec_eval (by document name,
here the candidate's position in its list, which is in a seeded random order).
"""

from __future__ import annotations

import numpy as np

from experiments.clsm_wordnet import data
from experiments.clsm_wordnet.hashing import Hashing

KS = tuple(range(1, 11))  # NDCG@1..10: the paper's 1, 3, 10 and the curve between


def ndcg(scores: np.ndarray, grades: np.ndarray, ks=KS) -> dict[str, float]:
    """{"ndcg@k": mean over queries} of scores [Q, C] against grades [Q, C]."""
    import ir_measures

    measures = [ir_measures.nDCG @ k for k in ks]
    qrels = [ir_measures.Qrel(str(q), f"d{c:02d}", int(g))
             for q, row in enumerate(grades) for c, g in enumerate(row)]
    run = [ir_measures.ScoredDoc(str(q), f"d{c:02d}", float(s))
           for q, row in enumerate(scores) for c, s in enumerate(row)]
    values = ir_measures.calc_aggregate(measures, qrels, run)
    return {f"ndcg@{k}": float(values[m]) for k, m in zip(ks, measures, strict=True)}


class Ranking:
    """NDCG of the model's ranking of each query's judged documents (`<split>/ndcg@k`)."""

    needs = ("data_dir",)

    def __init__(self, split: str = "test", data_dir: str | None = None):
        self.split = split
        self.hashing = Hashing(data_dir)

    def predict(self, model, batch):
        q, _ = self.hashing.encode(model, "query", batch["query"])
        d, _ = self.hashing.encode(model, "document", batch["candidates"])
        return {"scores": (q[:, None, :] * d).sum(-1)}

    def compute(self, predictions, examples) -> dict[str, float]:
        return ndcg(np.asarray(predictions["scores"]), np.asarray(examples["grades"]))


class BM25Ranking:
    """NDCG of BM25's ranking of the same lists (`<split>/bm25_ndcg@k`)."""

    needs = ("data_dir",)
    final_only = True

    def __init__(self, split: str = "test", data_dir: str | None = None):
        self.split, self.data_dir = split, data_dir

    def predict(self, model, batch):
        return {"synset": batch["synset"]}

    def compute(self, predictions, examples) -> dict[str, float]:
        synsets = np.asarray(examples["synset"])
        key = synsets.tobytes()
        if getattr(self, "_last", (None,))[0] != key:  # the same lists for every seed: once
            c = data.collection(data.locate(self.data_dir))
            found = ndcg(bm25_scores(c, synsets), c.grades[synsets])
            self._last = key, {f"bm25_{k}": v for k, v in found.items()}
        return dict(self._last[1])


def per_query_ndcg(scores: np.ndarray, grades: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each query (same computation as `ndcg`)."""
    import ir_measures

    qrels = [ir_measures.Qrel(str(q), f"d{c:02d}", int(g))
             for q, row in enumerate(grades) for c, g in enumerate(row)]
    run = [ir_measures.ScoredDoc(str(q), f"d{c:02d}", float(s))
           for q, row in enumerate(scores) for c, s in enumerate(row)]
    out = np.zeros(len(scores))
    for m in ir_measures.iter_calc([ir_measures.nDCG @ k], qrels, run):
        out[int(m.query_id)] = m.value
    return out


def top(scores: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """The first n candidates of each list by score (ties: as trec_eval, the later name first)."""
    order = np.lexsort((-np.arange(scores.shape[1])[None].repeat(len(scores), 0), -scores), axis=1)
    return np.take_along_axis(candidates, order[:, :n], axis=1)


class Disagreements:
    """Final-only evaluator for the report's examples: the `show` queries of the split where the
    model's NDCG@3 most exceeds BM25's, then the `show` where BM25's most exceeds the model's
    (ties: the earlier query), with each one's top 3 documents by either (synset ids). Applied to
    kept weights by `python -m experiments.clsm_wordnet.examples` (repro/derived.py)."""

    needs = ("data_dir",)
    final_only = True

    def __init__(self, split: str = "test", show: int = 5, data_dir: str | None = None):
        self.split, self.show, self.data_dir = split, show, data_dir
        self.ranking = Ranking(split, data_dir)

    def predict(self, model, batch):
        return {**self.ranking.predict(model, batch), "synset": batch["synset"]}

    def compute(self, predictions, examples) -> dict:
        c = data.collection(data.locate(self.data_dir))
        synsets = np.asarray(examples["synset"])
        model_scores, bm25 = np.asarray(predictions["scores"]), bm25_scores(c, synsets)
        grades, candidates = c.grades[synsets], c.candidates[synsets]
        gap = per_query_ndcg(model_scores, grades, 3) - per_query_ndcg(bm25, grades, 3)
        order = np.argsort(-gap, kind="stable")
        chosen = np.concatenate([order[:self.show], np.argsort(gap, kind="stable")[:self.show]])
        return {"query_synset": synsets[chosen], "ndcg3_gap": gap[chosen],
                "model_top": top(model_scores[chosen], candidates[chosen], 3),
                "bm25_top": top(bm25[chosen], candidates[chosen], 3)}


def bm25_scores(c: data.Collection, synsets: np.ndarray) -> np.ndarray:
    """[len(synsets), CANDIDATES] BM25 scores of each query's judged documents, the statistics
    (document frequencies, lengths) taken over every document of the collection."""
    bm25 = _bm25_index(c)
    return np.asarray([bm25.get_batch_scores([c.vocabulary[w] for w in c.queries[s] if w],
                                             [int(i) for i in c.candidates[s]]) for s in synsets])


_INDEX: list = [None, None]  # (the collection, its index): the collection held, so `is` is safe


def _bm25_index(c: data.Collection):
    """rank-bm25's index of every document of the collection, built once per collection."""
    from rank_bm25 import BM25Okapi

    if _INDEX[0] is not c:
        corpus = [[c.vocabulary[w] for w in doc if w] for doc in c.documents]
        _INDEX[:] = [c, BM25Okapi([doc or [""] for doc in corpus])]
    return _INDEX[1]
