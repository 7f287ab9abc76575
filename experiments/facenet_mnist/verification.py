"""Face verification as the paper evaluates it (sec. 4, 5.6), on held-out identities: a pair is
called "same" when the squared L2 distance of its embeddings is at most a threshold.

- LFW-style accuracy: a fixed list of pairs in `folds` folds, each half same and half different
  pairs (LFW: 10 folds of 300 + 300); each fold is classified with the threshold that is best on
  the other folds; the mean over folds and its standard error.
- VAL at FAR: over every same pair of the split and a fixed sample of different pairs, the
  fraction of same pairs accepted at the threshold where the false accept rate is `far` (10^-3
  in the paper's ablations).

Every pair list is drawn from the split's identity labels with a fixed seed (so it is the same for
every run on the same data, whose SHA-256 the result records).
"""

from __future__ import annotations

import math

import numpy as np


def lfw_style_pairs(labels: np.ndarray, folds: int, per_fold: int, seed: int):
    """(first, second, same, fold) index arrays: per fold per_fold/2 same pairs (an identity drawn
    uniformly, two distinct photos of it) and per_fold/2 different pairs (two images of
    different identities)."""
    rng = np.random.default_rng(seed)
    by_identity = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    by_identity = [g for g in by_identity if len(g) >= 2]
    if not by_identity:
        raise ValueError("no identity has two photos: no same pair can be drawn")
    half = per_fold // 2
    first, second, same = [], [], []
    for _ in range(folds):
        for _ in range(half):
            group = by_identity[rng.integers(len(by_identity))]
            i, j = rng.choice(group, 2, replace=False)
            first.append(i), second.append(j), same.append(True)
        for _ in range(half):
            while True:
                i, j = rng.integers(len(labels), size=2)
                if labels[i] != labels[j]:
                    break
            first.append(i), second.append(j), same.append(False)
    fold = np.repeat(np.arange(folds), 2 * half)
    return np.array(first), np.array(second), np.array(same), fold


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold t (same iff d <= t) of highest accuracy on these pairs; the smallest such."""
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order].astype(np.int64)
    # accepting the first k pairs (k = 0..n): correct = same among them + different after them
    correct = np.concatenate([[0], np.cumsum(s)]) + np.concatenate([[(1 - s).sum()],
                                                                   (1 - s).sum() - np.cumsum(1 - s)])
    k = int(np.argmax(correct))
    if k == 0:
        return float(d[0]) - 1.0  # accept nothing
    # midway to the next distance
    return float(d[k - 1]) if k == len(d) else float((d[k - 1] + d[k]) / 2)


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray, fold: np.ndarray) -> tuple[float, float]:
    """Mean accuracy over folds (each judged at the threshold best on the others) and its
    standard error (std over folds / sqrt(folds))."""
    accuracies = []
    for f in np.unique(fold):
        test = fold == f
        t = best_threshold(distances[~test], same[~test])
        accuracies.append(float(((distances[test] <= t) == same[test]).mean()))
    a = np.array(accuracies)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan


def val_at_far(same_distances: np.ndarray, different_distances: np.ndarray, far: float) -> float:
    """The fraction of same pairs accepted (d < t) at the threshold t that accepts at most
    far x (number of different pairs) of the different pairs."""
    allowed = int(math.floor(far * len(different_distances)))
    ordered = np.sort(different_distances)
    if allowed >= len(ordered):
        return 1.0
    return float((same_distances < ordered[allowed]).mean())


def all_same_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first, second = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        i, j = np.triu_indices(len(members), k=1)
        first.append(members[i]), second.append(members[j])
    return np.concatenate(first), np.concatenate(second)


def different_pairs(labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first, second = rng.integers(len(labels), size=(2, 2 * count))
    keep = labels[first] != labels[second]
    return first[keep][:count], second[keep][:count]


def squared_distance(e: np.ndarray, first: np.ndarray, second: np.ndarray, chunk: int = 100_000):
    out = np.empty(len(first), np.float64)
    for s in range(0, len(first), chunk):
        diff = e[first[s:s + chunk]].astype(np.float64) - e[second[s:s + chunk]]
        out[s:s + chunk] = (diff * diff).sum(-1)
    return out


def val_distances(e: np.ndarray, labels: np.ndarray, different: int, seed: int):
    """Squared distances of every same pair and of the fixed sample of different pairs that VAL
    at FAR is measured on (the same for Verification and HeldOutCurves)."""
    return (squared_distance(e, *all_same_pairs(labels)),
            squared_distance(e, *different_pairs(labels, different, seed + 1)))


def principal_plane(e: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of e on their first two principal axes (signs fixed so that each
    axis's largest absolute coordinate is positive: the picture does not flip between runs)."""
    centered = e.astype(np.float64) - e.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = centered @ vt[:2].T
    signs = np.sign(xy[np.abs(xy).argmax(0), np.arange(xy.shape[1])])
    return xy * np.where(signs == 0, 1.0, signs)


class Verification:
    """Host evaluator (repro.interfaces.Evaluator) of an embedding model on `split`: logs
    <split>/verification_accuracy and _se (LFW-style, `folds` x `per_fold` pairs),
    <split>/val_at_far (VAL at FAR = `far` over all same pairs and `different` different pairs)
    and <split>/far_threshold (that threshold, squared L2)."""

    def __init__(self, split: str = "test", folds: int = 10, per_fold: int = 600, far: float = 1e-3,
                 different: int = 200_000, seed: int = 0):
        if folds < 2:
            raise ValueError(f"folds={folds}: the threshold is chosen on the other folds, so at least 2")
        if not 0 < far < 1:
            raise ValueError(f"far={far}: a false accept rate between 0 and 1 (the paper's is 1e-3)")
        if different * far < 1:
            raise ValueError(f"different={different} pairs cannot measure FAR={far}: use at least "
                             f"{math.ceil(1 / far)}")
        self.split, self.folds, self.per_fold, self.far = split, folds, per_fold, far
        self.different, self.seed = different, seed

    def predict(self, model, batch):
        return {"embedding": model(batch["image"], train=False)}

    def compute(self, predictions, examples) -> dict[str, float]:
        e, labels = np.asarray(predictions["embedding"]), np.asarray(examples["label"])
        first, second, same, fold = lfw_style_pairs(labels, self.folds, self.per_fold, self.seed)
        accuracy, se = ten_fold_accuracy(squared_distance(e, first, second), same, fold)
        same_d, diff_d = val_distances(e, labels, self.different, self.seed)
        allowed = int(math.floor(self.far * len(diff_d)))
        return {"verification_accuracy": accuracy, "verification_accuracy_se": se,
                "val_at_far": val_at_far(same_d, diff_d, self.far),
                "far_threshold": float(np.sort(diff_d)[min(allowed, len(diff_d) - 1)])}


# 26 rates from 10^-5 to 1, five a decade, rounded so 10^-3 is exactly the paper's 0.001
FAR_GRID = tuple(float(f"{f:.2g}") for f in np.logspace(-5, 0, 26))


class HeldOutCurves:
    """Final-only host evaluator for the figures: the ROC on held-out identities (VAL at each
    false accept rate of `fars`, on Verification's pairs for the same `different` and `seed`)
    and the embeddings of the split's first `show` identities on their own first two principal
    axes. Not in the experiment's config (its runs were made without it): it is applied to
    kept weights by `python -m experiments.facenet_mnist.curves` (repro/recompute.py)."""

    final_only = True

    def __init__(self, split: str = "test", different: int = 200_000, seed: int = 0,
                 fars: tuple[float, ...] = FAR_GRID, show: int = 10):
        if not all(0 < f <= 1 for f in fars):
            raise ValueError(f"fars={list(fars)}: false accept rates in (0, 1]")
        if show < 2:
            raise ValueError(f"show={show}: a projection of at least 2 identities")
        self.split, self.different, self.seed = split, different, seed
        self.fars, self.show = tuple(float(f) for f in fars), show

    def predict(self, model, batch):
        return {"embedding": model(batch["image"], train=False)}

    def compute(self, predictions, examples) -> dict:
        e, labels = np.asarray(predictions["embedding"]), np.asarray(examples["label"])
        same_d, diff_d = val_distances(e, labels, self.different, self.seed)
        shown = np.isin(labels, np.unique(labels)[:self.show])
        return {"roc_far": np.asarray(self.fars),
                "roc_val": np.asarray([val_at_far(same_d, diff_d, f) for f in self.fars]),
                "projection": principal_plane(e[shown]), "projection_label": labels[shown]}
