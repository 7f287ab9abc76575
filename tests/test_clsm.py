"""CLSM on WordNet (experiments/clsm_wordnet): the .deb and wndb readers, the collection's judged
lists, word hashing, both models against a direct NumPy reading of the papers' equations, the
click objective and NDCG against hand computations, BM25 against its formula, and a short
real-data run."""

from __future__ import annotations

import io
import math
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.clsm_wordnet import data, model, objective, ranking, wordnet
from repro.errors import DataError

NOUN = "\n".join([
    "  1 This software and database is being provided to you, the LICENSEE, by Princeton University",
    "00001740 03 n 01 entity 0 002 ~ 00001930 n 0000 ~ 00002137 n 0000"
    ' | that which is perceived or known to exist; "an entity"',
    "00001930 03 n 02 physical_entity 0 thing 0 002 @ 00001740 n 0000 + 00002000 v 0101"
    " | an entity that has physical existence",
    "00002137 03 n 01 abstraction 0 001 @ 00001740 n 0000"
    " | a general concept formed by extracting common features",
    ""])
ADJ = "\n".join([
    "00019731 00 s 02 handy 0 ready_to_hand(p) 0 001 & 00019131 a 0000"
    ' | easy to reach; "found a handy spot"',
    "00019131 00 a 01 accessible 0 001 & 00019731 s 0000"
    ' | capable of being reached; "a town accessible by rail"',
    ""])


def ar_archive(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, body in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    return out


def fake_deb(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, text in files.items():
            raw = text.encode("latin-1")
            info = tarfile.TarInfo(f"./usr/share/wordnet/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return ar_archive({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": buffer.getvalue()})


FILES = {"data.noun": NOUN, "data.verb": "", "data.adj": ADJ, "data.adv": ""}


def test_the_deb_is_read_and_each_synset_line_parsed():
    synsets = wordnet.parse(wordnet.data_files(fake_deb(FILES)))
    assert [s.key for s in synsets] == ["n00001740", "n00001930", "n00002137", "a00019731", "a00019131"]
    entity, physical, _, handy, accessible = synsets
    assert entity.definition == "that which is perceived or known to exist"  # the example cut off
    assert entity.related == ("n00001930", "n00002137")
    assert physical.lemmas == ("physical_entity", "thing")
    assert physical.related == ("n00001740",)  # a '+' pointer is no link of the lists
    assert handy.lemmas == ("handy", "ready_to_hand(p)") and handy.related == ("a00019131",)
    assert accessible.related == ("a00019731",)  # a satellite 's' lives in data.adj
    with pytest.raises(DataError, match="not an ar archive"):
        wordnet.data_files(b"PK\x03\x04 a zip")
    with pytest.raises(DataError, match="lacks"):
        wordnet.data_files(fake_deb({"data.noun": NOUN}))
    with pytest.raises(DataError, match="data.noun line 2 is not a wndb synset line"):
        wordnet.parse({**FILES, "data.noun": "  licence\n00001740 03 n zz entity\n"})


def test_a_deb_with_other_bytes_is_refused_saying_what_to_do(tmp_path):
    path = tmp_path / wordnet.DEB_NAME
    path.write_bytes(fake_deb(FILES))
    with pytest.raises(DataError, match="not Debian's .* delete it and fetch"):
        wordnet.read_deb(path)
    with pytest.raises(DataError, match="is missing: put Debian's"):
        wordnet.read_deb(tmp_path / "absent.deb")


def test_the_fetched_deb_is_checked_before_it_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: io.BytesIO(fake_deb(FILES)))
    with pytest.raises(DataError, match="nothing was saved.*put wordnet-base_3.0-37_all.deb in <data dir>"):
        data.fetch(str(tmp_path))
    assert not data.deb_path(tmp_path).exists()

    def offline(*a, **k):
        raise OSError("no route to host")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError, match="could not fetch .*no route to host.*offline, put"):
        data.fetch(str(tmp_path))


def test_letter_trigrams_and_words():
    assert data.letter_trigrams("good") == ["#go", "goo", "ood", "od#"]
    assert data.letter_trigrams("a") == ["#a#"]
    assert data.lemma_words("ready_to_hand(p)") == ["ready", "to", "hand"]
    assert data.lemma_words("Canis_familiaris") == ["canis", "familiaris"]
    assert data.words("An entity, (living) or not; 3-D") == ["an", "entity", "living", "or", "not", "3", "d"]


def synthetic_synsets(n: int = 60, seed: int = 0) -> list[wordnet.Synset]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)]
    keys = [f"n{i:08d}" for i in range(n)]
    out = []
    for i in range(n):
        related = tuple(keys[j] for j in rng.choice(n, size=int(rng.integers(0, 7)), replace=False) if j != i)
        out.append(wordnet.Synset(keys[i], (f"lemma{i}", f"{rng.choice(vocab)}_{rng.choice(vocab)}"),
                                  " ".join(rng.choice(vocab, size=6)), related))
    return out


def test_every_judged_list_holds_its_own_document_its_links_and_lexical_decoys():
    synsets = synthetic_synsets()
    c = data.build(synsets, seed=0)
    n = len(synsets)
    assert c.candidates.shape == (n, data.CANDIDATES) and c.test.sum() == round(0.1 * n)
    docs = [set(c.text(d).split()) for d in c.documents]
    for i, s in enumerate(synsets):
        row, grades = list(c.candidates[i]), c.grades[i]
        assert len(set(row)) == data.CANDIDATES  # no document twice
        assert [row[j] for j in np.flatnonzero(grades == 2)] == [i]
        linked = {c.keys.index(k) for k in s.related}
        ones = {row[j] for j in np.flatnonzero(grades == 1)}
        assert ones <= linked and len(ones) == min(data.RELATED, len(linked))
        query = set(data.words(s.definition)) - data.STOPWORDS
        shares = [j for j in row if j != i and j not in ones and docs[j] & query]
        assert len(shares) >= min(data.DECOYS, 1 if any(docs[j] & query for j in range(n) if j != i) else 0)
    again = data.build(synsets, seed=0)
    assert (again.candidates == c.candidates).all() and (again.test == c.test).all()
    assert not (data.build(synsets, seed=1).candidates == c.candidates).all()
    split = data.splits(c)
    assert split["test"]["candidates"].shape == (c.test.sum(), data.CANDIDATES, data.DOC_WORDS)
    assert (split["train"]["positive"] == c.documents[~c.test]).all()
    assert set(split["test"]["synset"]) & set(split["train"]["synset"]) == set()


def hashing_of(c: data.Collection):
    from experiments.clsm_wordnet.hashing import Hashing

    return Hashing(collection=c)


def counts(c: data.Collection, word_ids: np.ndarray) -> np.ndarray:
    """[..., L, trigrams] letter-trigram count vectors of each word (the paper's word hashing)."""
    out = np.zeros((*word_ids.shape, len(c.trigrams)))
    for index in np.ndindex(word_ids.shape):
        for t in c.word_trigrams[word_ids[index]]:
            if t:
                out[index + (t,)] += 1
    return out


def test_compact_keeps_every_trigram_once_and_counts_what_does_not_fit():
    c = data.build(synthetic_synsets(), seed=0)
    words = c.queries[:5]
    n = int((c.word_trigrams[words] > 0).sum())
    ids, word, valid, dropped = model.compact(jnp.asarray(words), jnp.asarray(c.word_trigrams), n + 7)
    assert int(valid.sum()) == n and int(dropped) == 0
    got = np.zeros((words.size, len(c.trigrams)))
    np.add.at(got, (np.asarray(word)[np.asarray(valid)], np.asarray(ids)[np.asarray(valid)]), 1)
    np.testing.assert_array_equal(got, counts(c, words).reshape(words.size, -1))
    assert int(model.compact(jnp.asarray(words), jnp.asarray(c.word_trigrams), n - 3)[3]) == 3


def test_clsm_is_the_papers_convolution_max_pooling_and_semantic_layer():
    c = data.build(synthetic_synsets(), seed=0)
    m = model.CLSM(len(c.trigrams), window=3, conv=6, semantic=4, rngs=nnx.Rngs(0))
    words = c.queries[:3].copy()
    words[1, 1:] = 0  # a one-word text: its windows see zeros on both sides
    got, dropped = hashing_of(c).encode(m, "query", jnp.asarray(words))
    tower = m.query
    table = np.asarray(tower.bag.table[...]).reshape(len(c.trigrams), 3, 6)
    f = counts(c, words)  # [B, L, T]
    expected = []
    for b in range(len(words)):
        length = int((words[b] > 0).sum())
        padded = np.concatenate([np.zeros((1, f.shape[-1])), f[b, :length], np.zeros((1, f.shape[-1]))])
        # l_t = [f_{t-1}; f_t; f_{t+1}], h_t = tanh(W_c l_t), v = max_t h_t, y = tanh(W_s v)
        bias = np.asarray(tower.bias[...])
        h = np.stack([np.tanh(sum(padded[t + k] @ table[:, k] for k in range(3)) + bias)
                      for t in range(length)])
        v = h.max(0)
        y = np.tanh(v @ np.asarray(tower.semantic.kernel[...]) + np.asarray(tower.semantic.bias[...]))
        expected.append(y / np.linalg.norm(y))
    np.testing.assert_allclose(np.asarray(got), np.stack(expected), rtol=2e-5, atol=2e-6)
    assert int(dropped) == 0


def test_dssm_is_a_bag_of_trigrams_through_tanh_layers():
    c = data.build(synthetic_synsets(), seed=0)
    m = model.DSSM(len(c.trigrams), hidden=(5, 3), semantic=4, rngs=nnx.Rngs(1))
    words = c.documents[:4]
    got, _ = hashing_of(c).encode(m, "document", jnp.asarray(words))
    tower = m.document
    x = counts(c, words).sum(1)  # the text's trigram counts
    h = np.tanh(x @ np.asarray(tower.bag.table[...]) + np.asarray(tower.bias[...]))
    for layer in tower.layers:
        h = np.tanh(h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]))
    np.testing.assert_allclose(np.asarray(got), h / np.linalg.norm(h, axis=1, keepdims=True), rtol=2e-5,
                               atol=2e-6)


def test_a_model_smaller_than_the_trigram_vocabulary_is_refused():
    c = data.build(synthetic_synsets(), seed=0)
    small = model.CLSM(len(c.trigrams) - 1, conv=4, semantic=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=f"set model.trigrams={len(c.trigrams)}"):
        hashing_of(c).encode(small, "query", jnp.asarray(c.queries[:2]))


def test_the_click_loss_equals_a_hand_computation():
    q = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    d = jnp.array([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    logits = objective.click_logits(q, d, gamma=10.0, negatives=2)
    # query 0: own cos 0.8, then documents 1 (cos 0) and 2 (cos 1); query 2: own 0.6, docs 0 (0.96), 1 (0.8)
    np.testing.assert_allclose(np.asarray(logits), [[8.0, 0.0, 10.0], [10.0, 0.0, 6.0], [6.0, 9.6, 8.0]],
                               rtol=1e-6)
    loss = -jax.nn.log_softmax(logits, axis=1)[:, 0]
    by_hand = [-8 + math.log(math.exp(8) + 1 + math.exp(10)), -10 + math.log(math.exp(10) + 1 + math.exp(6)),
               -6 + math.log(math.exp(6) + math.exp(9.6) + math.exp(8))]
    np.testing.assert_allclose(np.asarray(loss), by_hand, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_size > 4"):
        objective.click_logits(q, d, gamma=10.0, negatives=4)


def test_ndcg_of_an_ideal_list_is_one_and_a_reversed_one_matches_the_formula():
    grades = np.array([[2, 1, 0, 0, 1], [0, 0, 2, 0, 0]])
    ideal = ranking.ndcg(grades.astype(float), grades, ks=(1, 3, 5))
    assert all(v == pytest.approx(1.0) for v in ideal.values())
    reversed_scores = -grades.astype(float)

    def by_hand(order, g, k):  # gain = grade, discount log2(rank + 1)
        dcg = sum(g[j] / math.log2(r + 2) for r, j in enumerate(order[:k]))
        best = sorted(g, reverse=True)
        return dcg / sum(x / math.log2(r + 2) for r, x in enumerate(best[:k]))

    got = ranking.ndcg(reversed_scores, grades, ks=(1, 3, 5))
    for k in (1, 3, 5):
        # reversed: zeros first (trec_eval breaks ties by document name, descending), then ones, twos
        per_query = [by_hand(sorted(range(5), key=lambda j: (reversed_scores[q, j], j), reverse=True),
                             grades[q], k) for q in range(2)]
        assert got[f"ndcg@{k}"] == pytest.approx(np.mean(per_query), abs=1e-4)
        np.testing.assert_allclose(ranking.per_query_ndcg(reversed_scores, grades, k), per_query, atol=1e-4)
    assert got["ndcg@1"] == 0.0


def test_the_top_documents_follow_the_scores_and_trec_evals_tie_order():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]])
    candidates = np.array([[10, 11, 12, 13], [20, 21, 22, 23]])
    # ties: the later candidate (greater document name) first, as trec_eval ranks them
    assert ranking.top(scores, candidates, 3).tolist() == [[13, 11, 12], [23, 22, 21]]


def test_bm25_scores_follow_okapis_formula_over_the_whole_collection():
    c = data.build(synthetic_synsets(), seed=0)
    docs = [[c.vocabulary[w] for w in d if w] for d in c.documents]
    n, avg = len(docs), np.mean([len(d) for d in docs])
    s = 3
    query = [c.vocabulary[w] for w in c.queries[s] if w]
    got = ranking.bm25_scores(c, np.array([s]))[0]
    assert (got > 0).sum() >= 3  # the query shares words with several of its documents
    vocabulary = {w for d in docs for w in d}

    def idf(w):
        df = sum(w in d for d in docs)
        return math.log(n - df + 0.5) - math.log(df + 0.5)

    # rank-bm25 replaces a negative idf (a word in over half the documents) by 0.25 x the mean idf
    floor = 0.25 * np.mean([idf(w) for w in vocabulary])
    for j, doc_index in enumerate(c.candidates[s]):
        d = docs[doc_index]
        expected = sum((idf(w) if idf(w) >= 0 else floor) * d.count(w) * 2.5
                       / (d.count(w) + 1.5 * (0.25 + 0.75 * len(d) / avg)) for w in query if w in vocabulary)
        assert got[j] == pytest.approx(expected, rel=1e-6)


@pytest.fixture
def synthetic_collection(monkeypatch):
    """A synthetic collection where the evaluators look for the real one."""
    c = data.build(synthetic_synsets(), seed=0)
    monkeypatch.setattr(data, "locate", lambda data_dir=None: "synthetic")
    monkeypatch.setattr(data, "collection", lambda where: c)
    return c


def test_the_model_scores_each_judged_document_by_its_cosine_with_its_own_query(synthetic_collection):
    c = synthetic_collection
    m = model.CLSM(len(c.trigrams), window=3, conv=6, semantic=4, rngs=nnx.Rngs(0))
    synsets = np.array([3, 7, 11])
    batch = {"query": jnp.asarray(c.queries[synsets]),
             "candidates": jnp.asarray(c.documents[c.candidates[synsets]])}
    scores = np.asarray(ranking.Ranking().predict(m, batch)["scores"])
    q, _ = hashing_of(c).encode(m, "query", batch["query"])            # [3, 4] unit vectors
    d, _ = hashing_of(c).encode(m, "document", batch["candidates"])    # [3, candidates, 4]
    expected = np.einsum("qs,qcs->qc", np.asarray(q), np.asarray(d))
    assert scores.shape == (3, c.candidates.shape[1])
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(scores).max() <= 1 + 1e-5  # cosines of unit vectors
    # NDCG@1..10: the paper's 1, 3 and 10 and the curve between, no more
    grades = c.grades[synsets]
    assert list(ranking.Ranking().compute({"scores": scores}, {"grades": grades})) == [
        f"ndcg@{k}" for k in range(1, 11)]


def test_disagreements_are_the_largest_ndcg3_gaps_both_ways(synthetic_collection):
    c = synthetic_collection
    synsets = np.arange(20)
    scores = np.random.default_rng(0).normal(size=c.candidates[synsets].shape)
    evaluator = ranking.Disagreements(show=2)
    assert evaluator.final_only is True
    out = evaluator.compute({"scores": scores}, {"synset": synsets})
    grades = c.grades[synsets]
    bm25 = ranking.bm25_scores(c, synsets)
    gap = ranking.per_query_ndcg(scores, grades, 3) - ranking.per_query_ndcg(bm25, grades, 3)
    assert len(set(np.round(gap, 9))) >= 5  # the order below is not decided by ties alone
    order = np.argsort(-gap, kind="stable")
    chosen = [*order[:2], *np.argsort(gap, kind="stable")[:2]]
    assert out["query_synset"].tolist() == synsets[chosen].tolist()
    np.testing.assert_allclose(out["ndcg3_gap"], gap[chosen])
    assert out["ndcg3_gap"][0] > 0 > out["ndcg3_gap"][-1]
    candidates = c.candidates[synsets][chosen]
    np.testing.assert_array_equal(out["model_top"], ranking.top(scores[chosen], candidates, 3))
    np.testing.assert_array_equal(out["bm25_top"], ranking.top(bm25[chosen], candidates, 3))
    # per-query NDCG averages to the evaluator's
    np.testing.assert_allclose(ranking.per_query_ndcg(scores, grades, 3).mean(),
                               ranking.ndcg(scores, grades, ks=(3,))["ndcg@3"])


def test_bm25_ranking_is_computed_once_for_the_same_lists_and_again_for_others(
        synthetic_collection, monkeypatch):
    c, calls = synthetic_collection, []
    scores = ranking.bm25_scores
    monkeypatch.setattr(ranking, "bm25_scores", lambda c, s: calls.append(s.tolist()) or scores(c, s))
    evaluator = ranking.BM25Ranking()
    assert evaluator.final_only is True
    first = evaluator.compute({}, {"synset": np.arange(6)})
    assert first == {f"bm25_{k}": v for k, v in ranking.ndcg(scores(c, np.arange(6)), c.grades[:6]).items()}
    assert evaluator.compute({}, {"synset": np.arange(6)}) == first and len(calls) == 1  # every seed: once
    assert evaluator.compute({}, {"synset": np.arange(1, 7)}) != first and len(calls) == 2


def test_the_bm25_index_is_built_once_per_collection():
    synsets = synthetic_synsets()
    first, second = data.build(synsets, seed=0), data.build(synsets, seed=1)  # the same keys
    index = ranking._bm25_index(first)
    assert ranking._bm25_index(first) is index
    again = ranking._bm25_index(second)
    assert again is not index and ranking._bm25_index(second) is again


def wordnet_available() -> bool:
    try:
        data.locate()
        return True
    except DataError:
        return False


needs_wordnet = pytest.mark.skipif(
    not wordnet_available(), reason="no WordNet .deb (`python -m experiments.clsm_wordnet.data` fetches it)")


@needs_wordnet
def test_a_short_real_data_run_ranks_held_out_queries(run_overrides, tmp_path):
    from experiments.clsm_wordnet.figures import make_figures
    from repro.configuration import compose
    from repro.data import load_dataset
    from repro.run import run

    dataset = load_dataset("wordnet_retrieval")
    assert dataset.identity()["splits"] == data.SIZES and dataset.partial is None
    assert dataset.identity()["sha256"][wordnet.DEB_NAME] == wordnet.DEB_SHA256
    assert dataset.fields["grades"].kind == "value"
    overrides = [o for o in run_overrides if not o.startswith(("data.dir", "data.allow_partial"))]
    results = {}
    for variant in ("clsm", "dssm"):
        cfg = compose(["experiment=clsm_wordnet", *overrides, f"model={variant}",
                       "data.limit_train=2300", "data.validation_size=300", "data.eval_splits=[validation]",
                       "evaluators.0.split=validation", "evaluators.1.split=validation",
                       "train.batch_size=64", "train.steps=30", "train.chunk_steps=10",
                       "train.eval_every=30"])
        results[variant] = result = run(cfg)
        final = result["final"]
        assert result["name"].startswith(f"{variant}-")
        assert 0 < final["validation/ndcg@1"] <= final["validation/ndcg@10"] <= 1
        assert final["train/dropped_trigrams"] == 0.0
        # the first and last record: the untrained model, and BM25 only at the end
        first = result["history"][0]
        assert "validation/ndcg@1" in first and "validation/bm25_ndcg@1" not in first
    bm25 = [r["final"]["validation/bm25_ndcg@3"] for r in results.values()]
    assert bm25[0] == bm25[1] > 0
    [(_, path)] = make_figures({v: [r] for v, r in results.items()}, tmp_path, tmp_path / "figures")
    assert path.stat().st_size > 10_000

    # Disagreements with BM25, derived from seed 0's kept CLSM weights (checked to be the run's)
    from experiments.clsm_wordnet import examples

    said = []
    runs = examples.update(tmp_path / "results", log=said.append)
    assert list(runs) == [results["clsm"]["name"]] and len(said) == 1
    shown = runs[results["clsm"]["name"]]["examples"]
    gaps = [e["ndcg3_clsm_minus_bm25"] for e in shown]
    assert len(shown) == 10 and gaps[:5] == sorted(gaps[:5], reverse=True) and min(gaps[:5]) >= max(gaps[5:])
    assert all(e["query"] and len(e["clsm_top3"]) == len(e["bm25_top3"]) == 3 for e in shown)
    drawn_in = tmp_path / "results" / "clsm_wordnet" / "figures"
    figures = make_figures({v: [r] for v, r in results.items()}, tmp_path, drawn_in)
    assert [p.name for _, p in figures] == ["ndcg.png", "disagreements.png"]
