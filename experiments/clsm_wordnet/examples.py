"""`python -m experiments.clsm_wordnet.examples` (make examples-clsm-wordnet): held-out queries where
CLSM and BM25 disagree most, from the kept weights of seed 0 of the CLSM runs (the Disagreements
evaluator through repro/derived.py: checked to be the run's weights), written with their texts to
results/clsm_wordnet/figures/disagreements.json for the report.

    python -m experiments.clsm_wordnet.examples [--results results] [--data-dir DIR]
"""

from __future__ import annotations

from experiments.clsm_wordnet import data
from repro import derived

EXPERIMENT = "clsm_wordnet"
EXAMPLES_FILE = "disagreements.json"


def _ranking(result: dict) -> dict | None:
    return derived.configured_evaluator(result, ".Ranking")


def evaluator_for(result: dict) -> dict | None:
    """Disagreements on the run's ranked split, for seed 0 of a CLSM run only."""
    ranking = _ranking(result)
    is_clsm = str(result["config"]["model"]["_target_"]).endswith(".CLSM")
    if ranking is None or result.get("seed") != 0 or not is_clsm:
        return None
    return {"_target_": "experiments.clsm_wordnet.ranking.Disagreements", "split": ranking["split"]}


def keep(record: dict, result: dict, data_dir: str | None = None) -> dict:
    """The chosen queries as texts: the query, its own document, and the top 3 of each system
    (with their grades)."""
    split = _ranking(result)["split"]
    c = data.collection(data.locate(data_dir))
    out = []
    for i, synset in enumerate(record[f"{split}/query_synset"]):
        grade = dict(zip(c.candidates[synset].tolist(), c.grades[synset].tolist(), strict=True))
        out.append({"query": c.text(c.queries[synset]), "document": c.text(c.documents[synset]),
                    "ndcg3_clsm_minus_bm25": record[f"{split}/ndcg3_gap"][i],
                    **{f"{name}_top3": [{"document": c.text(c.documents[j]), "grade": grade[j]} for j in ids]
                       for name, ids in (("clsm", record[f"{split}/model_top"][i]),
                                         ("bm25", record[f"{split}/bm25_top"][i]))}})
    return {"examples": out}


EXAMPLES = derived.Derivation(EXPERIMENT, EXAMPLES_FILE, evaluator_for, keep, __doc__, keep_reads_data=True)
examples_path, update, main = EXAMPLES.path, EXAMPLES.update, EXAMPLES.main

if __name__ == "__main__":
    raise SystemExit(main())
