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
        c = data.collection(data.locate(self.data_dir))
        synsets = np.asarray(examples["synset"])
        scores = bm25_scores(c, synsets)
        return {f"bm25_{k}": v for k, v in ndcg(scores, c.grades[synsets]).items()}


def bm25_scores(c: data.Collection, synsets: np.ndarray) -> np.ndarray:
    """[len(synsets), CANDIDATES] BM25 scores of each query's judged documents, the statistics
    (document frequencies, lengths) taken over every document of the collection."""
    from rank_bm25 import BM25Okapi

    corpus = [[c.vocabulary[w] for w in doc if w] for doc in c.documents]
    bm25 = BM25Okapi([doc or [""] for doc in corpus])
    return np.asarray([bm25.get_batch_scores([c.vocabulary[w] for w in c.queries[s] if w],
                                             [int(i) for i in c.candidates[s]]) for s in synsets])
