"""A retrieval collection with graded judgments built from WordNet 3.0 (the stand-in for the CLSM
paper's private click logs and judged web documents), fixed here before any model was run:

- One query per synset: its definition (the gloss before the examples), lowercased, cut to
  QUERY_WORDS words. One document per synset: its lemmas ("dog, domestic dog, Canis familiaris"),
  cut to DOC_WORDS words: short like the paper's document titles, and rarely sharing a word with
  their own definition, so matching them needs more than word overlap.
- Splits by query (synset), seeded: 10% test (11,766 queries; the paper judged 12,071), the rest
  train; validation is carved from train by data.validation_size. No test query is trained on;
  a test synset's document can appear among a training query's candidates (as web documents
  recur across queries).
- Training pairs: a query and its own document (the paper's clicked document); the objective
  draws the negatives.
- Judged lists (evaluation), CANDIDATES documents per query, in a seeded random order:
  grade 2: the synset's own document;
  grade 1: up to 4 synsets it points to as hypernym, hyponym (instance ones too) or similar-to,
    drawn at random among them;
  grade 0: up to 8 "lexical decoys", documents sharing a content word (not a STOPWORD) with the
    query, drawn at random (a production ranker's candidates share query words, as the paper's
    judged documents do), then random synsets to fill the list.

Text to model input (the paper's word hashing): words are [a-z0-9]+ runs; a word is its letter
trigrams with '#' marking its ends ("good" -> #go goo ood od#), at most WORD_TRIGRAMS of them;
the trigram vocabulary is every trigram of the collection's words (no labels involved), id 0 the
padding. Fields hold word ids; `word_trigrams` maps a word id to its trigram ids, so no
vocabulary-wide vector is ever stored per word.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from experiments.clsm_wordnet import wordnet
from repro.data.checksums import download_checked
from repro.data.fields import Field
from repro.data.records import DataSetRecord

NAME = "wordnet_retrieval"
SEED = 0
TEST_FRACTION = 0.1
QUERY_WORDS, DOC_WORDS, WORD_TRIGRAMS = 32, 12, 20
CANDIDATES, RELATED, DECOYS = 20, 4, 8
STOPWORDS = frozenset("""a an the of or and to in on at by for from with without as is are be been being
that which who whom whose what this these those it its into onto than then such some any all
not no one ones used especially usually often something someone somebody etc""".split())
SIZES = {"train": 105_893, "test": 11_766}
FIELDS = {"query": Field("tokens"), "positive": Field("tokens"), "candidates": Field("tokens"),
          "grades": Field("value"), "synset": Field("value")}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def lemma_words(lemma: str) -> list[str]:
    """'Canis_familiaris' -> [canis, familiaris]; 'ready_to_hand(p)' -> [ready, to, hand]."""
    return words(re.sub(r"\([a-z]+\)$", "", lemma).replace("_", " "))


def letter_trigrams(word: str) -> list[str]:
    marked = f"#{word}#"
    return [marked[i:i + 3] for i in range(len(marked) - 2)]


@dataclasses.dataclass(frozen=True)
class Collection:
    keys: list[str]                 # synset keys, index = synset id
    vocabulary: list[str]           # word id -> word ("" for 0, the padding)
    trigrams: list[str]             # trigram id -> trigram ("" for 0)
    word_trigrams: np.ndarray       # int32 [words, WORD_TRIGRAMS]
    queries: np.ndarray             # int32 [synsets, QUERY_WORDS] word ids
    documents: np.ndarray           # int32 [synsets, DOC_WORDS] word ids
    candidates: np.ndarray          # int32 [synsets, CANDIDATES] synset ids of the judged documents
    grades: np.ndarray              # int32 [synsets, CANDIDATES]
    test: np.ndarray                # bool [synsets]

    def text(self, ids) -> str:
        return " ".join(self.vocabulary[i] for i in ids if i)


def _ids(tokens: list[str], index: dict[str, int], length: int) -> list[int]:
    out = [index[t] for t in tokens[:length]]
    return out + [0] * (length - len(out))


def build(synsets: list[wordnet.Synset], seed: int = SEED) -> Collection:
    """The collection of the module docstring, a pure function of the synsets and the seed."""
    rng = np.random.default_rng(seed)
    keys = [s.key for s in synsets]
    where = {k: i for i, k in enumerate(keys)}
    query_words = [words(s.definition) for s in synsets]
    doc_words = [[w for lemma in s.lemmas for w in lemma_words(lemma)] for s in synsets]
    counts = Counter(w for ws in (*query_words, *doc_words) for w in ws)
    vocabulary = ["", *sorted(counts, key=lambda w: (-counts[w], w))]
    index = {w: i for i, w in enumerate(vocabulary)}
    trigram_counts = Counter(t for w in vocabulary[1:] for t in letter_trigrams(w))
    trigrams = ["", *sorted(trigram_counts, key=lambda t: (-trigram_counts[t], t))]
    trigram_index = {t: i for i, t in enumerate(trigrams)}
    word_trigrams = np.zeros((len(vocabulary), WORD_TRIGRAMS), np.int32)
    for i, w in enumerate(vocabulary[1:], 1):
        ids = [trigram_index[t] for t in letter_trigrams(w)][:WORD_TRIGRAMS]
        word_trigrams[i, :len(ids)] = ids

    containing = defaultdict(list)  # content word -> synsets whose document has it
    for i, ws in enumerate(doc_words):
        for w in set(ws) - STOPWORDS:
            containing[w].append(i)
    n = len(synsets)
    candidates = np.zeros((n, CANDIDATES), np.int32)
    grades = np.zeros((n, CANDIDATES), np.int32)
    for i, s in enumerate(synsets):
        related = sorted({where[k] for k in s.related if k in where} - {i})
        related = list(rng.permutation(related)[:RELATED]) if related else []
        chosen = [i, *related]
        taken = set(chosen)
        content = sorted(set(query_words[i]) - STOPWORDS)
        decoys = 0
        for w in rng.permutation(content) if content else []:
            pool = containing.get(w, [])
            if decoys == DECOYS or not pool:
                continue
            pick = int(pool[rng.integers(len(pool))])
            if pick not in taken:
                chosen.append(pick), taken.add(pick)
                decoys += 1
        while len(chosen) < CANDIDATES:
            pick = int(rng.integers(n))
            if pick not in taken:
                chosen.append(pick), taken.add(pick)
        order = rng.permutation(CANDIDATES)
        candidates[i] = np.asarray(chosen)[order]
        grades[i] = np.asarray([2] + [1] * len(related) + [0] * (CANDIDATES - 1 - len(related)))[order]
    test = np.zeros(n, bool)
    test[rng.permutation(n)[:round(TEST_FRACTION * n)]] = True
    return Collection(
        keys=keys, vocabulary=vocabulary, trigrams=trigrams, word_trigrams=word_trigrams,
        queries=np.asarray([_ids(ws, index, QUERY_WORDS) for ws in query_words], np.int32),
        documents=np.asarray([_ids(ws, index, DOC_WORDS) for ws in doc_words], np.int32),
        candidates=candidates, grades=grades, test=test)


def splits(c: Collection) -> dict[str, dict[str, np.ndarray]]:
    """Per query: its words, its own document's words (`positive`), its judged documents' words
    (`candidates` [CANDIDATES, DOC_WORDS]) and `grades`, and its `synset` id."""
    out = {}
    for name, mask in (("train", ~c.test), ("test", c.test)):
        ids = np.flatnonzero(mask).astype(np.int32)
        out[name] = {"query": c.queries[ids], "positive": c.documents[ids],
                     "candidates": c.documents[c.candidates[ids]], "grades": c.grades[ids], "synset": ids}
    return out


@functools.lru_cache(maxsize=2)
def collection(deb: Path) -> Collection:
    """The collection built from the .deb at `deb` (checked by SHA-256), once per process."""
    return build(wordnet.read_deb(deb))


def deb_path(root: Path) -> Path:
    return Path(root) / "wordnet" / wordnet.DEB_NAME


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def locate(data_dir: str | None = None) -> Path:
    """The .deb: in the data mirror (data.dir, else $REPRO_DATA_DIR, else shared/data) when it is
    there, else in the cache, fetched from Debian once (a package registry, reachable where the
    project installs)."""
    from repro.data.dataset import resolve_data_dir

    root = resolve_data_dir(data_dir)
    if root is not None and deb_path(root).exists():
        return deb_path(root).resolve()
    return fetch().resolve()


def read_mirror(root: Path):
    """(splits, source, files) from <root>/wordnet/wordnet-base_3.0-37_all.deb, or from the cache
    when the mirror has no WordNet (`locate`)."""
    deb = deb_path(root).resolve() if deb_path(root).exists() else fetch().resolve()
    c = collection(deb)
    files = {wordnet.DEB_NAME: {"sha256": wordnet.DEB_SHA256, "official": True},
             f"collection(seed {SEED})": {"sha256": _digest(c.word_trigrams, c.queries, c.documents,
                                                            c.candidates, c.grades, c.test),
                                          "official": None}}
    return splits(c), f"WordNet 3.0 retrieval collection from {deb}", files


def cache_root(cache_dir: str | None = None) -> Path:
    return Path(cache_dir or Path.home() / ".cache" / "repro")


def fetch(cache_dir: str | None = None) -> Path:
    """Debian's wordnet-base .deb in the cache (downloaded once, checked before it is kept)."""
    return download_checked(wordnet.DEB_URL, deb_path(cache_root(cache_dir)), wordnet.DEB_SHA256,
                            f"offline, put {wordnet.DEB_NAME} in <data dir>/wordnet/ and set REPRO_DATA_DIR")


def read_online(cache_dir: str | None = None):
    return read_mirror(fetch(cache_dir).parent.parent)


RECORDS = [DataSetRecord(NAME, read_mirror, None, SIZES, read_online, fields=FIELDS)]


if __name__ == "__main__":  # `python -m experiments.clsm_wordnet.data`: fetch the .deb ahead (CI does)
    print(locate())
