"""FaceNet proxy (experiments/facenet_mnist): the triplet loss and its negative mining against brute
force, the verification protocol against direct computations, the identity photos, and a short
real-data run."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REAL_DATA, needs_real_mnist

from experiments.facenet_mnist import triplets, verification
from experiments.facenet_mnist.identities import IdentityPhotos, identity_photos
from repro.configuration import compose


def unit_embeddings(n, dim, seed):
    e = np.random.default_rng(seed).normal(size=(n, dim))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def brute_force_negative(d, labels, a, p, mining):
    negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
    if mining == "hardest":
        return min(d[a, n] for n in negatives)
    farther = [d[a, n] for n in negatives if d[a, n] > d[a, p]]
    return min(farther) if farther else max(d[a, n] for n in negatives)


@pytest.mark.parametrize("mining", ["semihard", "hardest"])
def test_the_chosen_negative_and_the_loss_match_brute_force(mining):
    labels = np.repeat(np.arange(4), 3)  # 4 identities x 3 photos
    e = unit_embeddings(12, 3, seed=1)
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    hinge, pairs, d_ap, d_an = (np.asarray(x) for x in triplets.triplet_terms(
        jnp.asarray(e, jnp.float32), jnp.asarray(labels), 0.2, mining))
    expected_loss, count = 0.0, 0
    for a, p in itertools.permutations(range(12), 2):
        assert pairs[a, p] == (labels[a] == labels[p])
        if labels[a] != labels[p]:
            continue
        chosen = brute_force_negative(d, labels, a, p, mining)
        np.testing.assert_allclose(d_an[a, p], chosen, atol=1e-5)
        expected_loss += max(d[a, p] - chosen + 0.2, 0.0)
        count += 1
    assert count == 4 * 3 * 2  # every anchor-positive pair, both orders
    objective = triplets.TripletLoss(margin=0.2, mining=mining)
    loss, metrics = objective.train_loss(lambda x, train, rngs=None: x, {"image": jnp.asarray(e, jnp.float32),
                                                                         "label": jnp.asarray(labels)})
    np.testing.assert_allclose(float(loss), expected_loss / count, rtol=1e-5)
    assert 0.0 <= float(metrics["active_triplets"]) <= 1.0


def test_a_hand_computed_triplet_loss():
    # identity 0 at (1,0) and (0,1); identity 1 at (-1,0): d(0,1)=2, d(0,2)=4, d(1,2)=2
    e = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = jnp.array([0, 0, 1])
    loss, _ = triplets.TripletLoss(margin=0.2, mining="hardest").train_loss(
        lambda x, train, rngs=None: x, {"image": e, "label": labels})
    # pairs (0,1): d_ap 2, hardest negative of 0 is 2 at d 4 -> max(2-4+0.2, 0) = 0
    #       (1,0): d_ap 2, hardest negative of 1 is 2 at d 2 -> 0.2
    np.testing.assert_allclose(float(loss), 0.1, rtol=1e-6)
    # semi-hard for (1,0): no negative farther than d_ap = 2 (only d = 2, not >) -> the farthest, 2
    loss, _ = triplets.TripletLoss(margin=0.2, mining="semihard").train_loss(
        lambda x, train, rngs=None: x, {"image": e, "label": labels})
    np.testing.assert_allclose(float(loss), 0.1, rtol=1e-6)


def test_random_mining_draws_every_negative_and_never_a_positive():
    labels = jnp.array([0, 0, 0, 1, 1, 2])  # unequal identities: 3, 4 or 5 negatives per anchor
    d = jnp.arange(36, dtype=jnp.float32).reshape(6, 6)  # distinct values name the column
    seen = set()
    for s in range(200):
        d_an = np.asarray(triplets.chosen_negative_distance(d, labels, "random", jax.random.key(s)))
        columns = d_an.astype(int) % 6
        for a in range(6):
            assert all(labels[c] != labels[a] for c in columns[a])
            seen.update((a, c) for c in columns[a])
    assert seen == {(a, n) for a in range(6) for n in range(6) if labels[a] != labels[n]}


def test_the_logged_triplet_metrics_by_hand_and_semihard_at_its_boundary():
    """5 photos of 2 identities in 3 dimensions (batch != dimension), hardest mining, margin 2 (one
    hinge exactly 0, six of eight active):
    loss, active share, mean d_ap and d_an over the 8 anchor-positive pairs, and the spread, from
    the squared distances by hand. Then a negative exactly as far as the positive is not 'farther'
    for semi-hard mining (d_an > d_ap), so the next one is chosen."""
    e = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    labels = np.array([0, 0, 1, 1, 1])
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    pairs = [(a, p) for a in range(5) for p in range(5) if a != p and labels[a] == labels[p]]
    d_an = {a: min(d[a, n] for n in range(5) if labels[n] != labels[a]) for a in range(5)}
    hinge = [max(d[a, p] - d_an[a] + 2.0, 0.0) for a, p in pairs]
    loss, metrics = triplets.TripletLoss(margin=2.0, mining="hardest").train_loss(
        lambda x, train, rngs=None: x, {"image": jnp.asarray(e, jnp.float32), "label": jnp.asarray(labels)})
    assert len(pairs) == 8 and sum(h > 0 for h in hinge) == 6 and 0.0 in hinge
    np.testing.assert_allclose(float(loss), np.mean(hinge), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["active_triplets"]), np.mean([h > 0 for h in hinge]), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["positive_distance"]), np.mean([d[a, p] for a, p in pairs]),
                               rtol=1e-6)
    np.testing.assert_allclose(float(metrics["negative_distance"]), np.mean([d_an[a] for a, _ in pairs]),
                               rtol=1e-6)
    np.testing.assert_allclose(float(metrics["spread"]), ((e - e.mean(0)) ** 2).sum(-1).mean(), rtol=1e-6)

    # anchor (0,0), positive (1,0): d_ap 1; negatives at d 1 (equal: not farther) and d 4.
    boundary = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    sq = triplets.squared_distances(boundary)
    chosen = triplets.chosen_negative_distance(sq, jnp.array([0, 0, 1, 1]), "semihard")
    assert float(chosen[0, 1]) == 4.0


def test_the_training_loss_edges_defaults_padding_a_batch_without_pairs_and_random_mining():
    """Training mode reaches the model; the paper's margin 0.2 and semi-hard mining by default; a
    batch of distinct identities has no pair and a loss of 0, not NaN; random mining draws its key
    from rngs (the same key, the same loss); the spread of an evaluation batch counts only its
    real examples, also when there is one."""
    from flax import nnx

    e = jnp.asarray(unit_embeddings(6, 3, seed=2), jnp.float32)
    labels = jnp.array([0, 0, 1, 1, 2, 2])
    objective = triplets.TripletLoss()
    assert (objective.margin, objective.mining) == (0.2, "semihard")
    doubled, _ = objective.train_loss(lambda x, train, rngs=None: x * (2.0 if train else 1.0),
                                      {"image": e, "label": labels})
    by_hand, _ = objective.train_loss(lambda x, train, rngs=None: 2.0 * x, {"image": e, "label": labels})
    assert float(doubled) == float(by_hand)
    alone, metrics = objective.train_loss(lambda x, train, rngs=None: x, {"image": e, "label": jnp.arange(6)})
    assert float(alone) == 0.0 and float(metrics["positive_distance"]) == 0.0
    random = triplets.TripletLoss(mining="random")
    identity, batch = (lambda x, train, rngs=None: x), {"image": e, "label": labels}
    first, _ = random.train_loss(identity, batch, rngs=nnx.Rngs(3))
    again, _ = random.train_loss(identity, batch, rngs=nnx.Rngs(3))
    assert np.isfinite(float(first)) and float(first) == float(again)

    padded = jnp.concatenate([e[:3], jnp.full((2, 3), 50.0)])  # 3 real examples, 2 of padding
    mask = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0])
    out = objective.per_example(identity, {"image": padded, "batch_mask": mask}, train=False)
    real = np.asarray(e[:3])
    np.testing.assert_allclose(np.asarray(out["spread"])[:3], ((real - real.mean(0)) ** 2).sum(-1),
                               rtol=1e-5)
    one = objective.per_example(identity, {"image": padded, "batch_mask": mask.at[1:].set(0)}, train=False)
    assert float(one["spread"][0]) == 0.0  # a lone example is its own mean


def test_squared_distances_are_clamped_at_zero_where_float32_rounds_below_it():
    """||a||^2 + ||b||^2 - 2 a.b of a repeated embedding can round to -6e-8 in float32: the
    distance must still be exactly 0 (never negative), and the others as computed directly."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        e = jnp.asarray(np.repeat(rng.normal(size=(1, 3)), 2, 0), jnp.float32)
        sq = (e * e).sum(-1)
        if float((sq[:, None] + sq[None, :] - 2.0 * e @ e.T).min()) < 0:
            break
    else:
        raise AssertionError("no embedding rounded below zero")
    assert float(triplets.squared_distances(e).min()) == 0.0
    e3 = jnp.asarray([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]])  # 2 photos in 3 dimensions
    np.testing.assert_allclose(triplets.squared_distances(e3), [[0.0, 11.0], [11.0, 0.0]], atol=1e-6)


def test_unknown_mining_and_a_bad_margin_are_refused():
    with pytest.raises(ValueError, match="objective.mining='hard'; known: semihard, hardest, random"):
        triplets.TripletLoss(mining="hard")
    with pytest.raises(ValueError, match="margin must be positive"):
        triplets.TripletLoss(margin=0.0)


def test_a_collapsed_embedding_has_zero_spread_and_a_spread_one_is_near_one():
    objective = triplets.TripletLoss()
    batch = {"image": jnp.zeros((8, 3)), "batch_mask": jnp.ones(8)}
    constant = objective.per_example(lambda x, train, rngs=None: jnp.ones((8, 3)) / jnp.sqrt(3.0), batch,
                                     train=False)
    np.testing.assert_allclose(np.asarray(constant["spread"]), 0.0, atol=1e-7)
    basis = jnp.concatenate([jnp.eye(4), -jnp.eye(4)])  # mean 0 on the unit sphere
    spread = objective.per_example(lambda x, train, rngs=None: basis, {**batch, "image": basis}, train=False)
    np.testing.assert_allclose(np.asarray(spread["spread"]), 1.0, rtol=1e-6)


def test_best_threshold_and_ten_fold_accuracy_match_a_direct_search():
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.5
    distances = np.where(same, rng.normal(1.0, 0.4, 400), rng.normal(2.0, 0.4, 400))
    fold = np.repeat(np.arange(10), 40)
    t = verification.best_threshold(distances, same)
    direct = max(((distances <= c) == same).mean() for c in np.concatenate([distances, [-1.0]]))
    assert ((distances <= t) == same).mean() == direct
    mean, se = verification.ten_fold_accuracy(distances, same, fold)
    expected = []
    for f in range(10):  # candidates: midway between neighbouring distances, below all, at the top
        train = fold != f
        ordered = np.sort(distances[train])
        candidates = np.concatenate([[ordered[0] - 1.0], (ordered[:-1] + ordered[1:]) / 2, [ordered[-1]]])
        best = max(candidates, key=lambda c: (((distances[train] <= c) == same[train]).mean(), -c))
        expected.append(((distances[~train] <= best) == same[~train]).mean())
    np.testing.assert_allclose(mean, np.mean(expected))
    np.testing.assert_allclose(se, np.std(expected, ddof=1) / np.sqrt(10))


def test_best_threshold_at_its_edges_accept_nothing_midway_and_everything():
    d = np.array([1.0, 2.0, 4.0])
    # every pair different: accept nothing, below the smallest distance
    t = verification.best_threshold(d, np.array([False, False, False]))
    assert t < 1.0 and not (d <= t).any()
    # accepting one pair is strictly best (accepting nothing ties accepting all at 2 of 3)
    assert verification.best_threshold(d, np.array([True, False, True])) == 1.5
    assert verification.best_threshold(d, np.array([True, False, False])) == 1.5
    # every pair the same: accept all, the largest distance itself
    assert verification.best_threshold(d, np.array([True, True, True])) == 4.0
    # a tie between accepting nothing and accepting the first pair goes to the smaller threshold
    t = verification.best_threshold(np.array([1.0, 2.0]), np.array([False, True]))
    assert t < 1.0
    # a fold's pairs at exactly the other folds' threshold are accepted (d <= t); two folds give an se
    mean, se = verification.ten_fold_accuracy(np.array([1.0, 2.0, 2.0, 1.0]), np.array([True] * 4),
                                              np.array([0, 0, 1, 1]))
    assert (mean, se) == (1.0, 0.0)


def test_verification_settings_are_the_papers_by_default_and_refused_at_their_edges():
    v = verification.Verification()
    assert (v.split, v.folds, v.per_fold, v.far, v.different, v.seed) == ("test", 10, 600, 1e-3, 200_000, 0)
    h = verification.HeldOutCurves()
    assert (h.split, h.different, h.seed, h.show) == ("test", 200_000, 0, 10)
    assert h.final_only is True and not getattr(v, "final_only", False)  # Verification: every evaluation
    assert h.fars == verification.FAR_GRID and len(h.fars) == 26 and 1e-3 in h.fars
    assert h.fars[0] == 1e-5 and h.fars[-1] == 1.0
    verification.Verification(folds=2)  # the smallest: one fold judged at the other's threshold
    with pytest.raises(ValueError, match="folds=1"):
        verification.Verification(folds=1)
    verification.Verification(far=0.5, different=2)  # 2 x 0.5 = one false accept to measure
    for far in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=f"far={far}"):
            verification.Verification(far=far)
    with pytest.raises(ValueError, match="different=3 pairs cannot measure FAR=0.25: use at least 4"):
        verification.Verification(far=0.25, different=3)
    verification.HeldOutCurves(fars=(1e-5, 1.0), show=2)  # both ends of the rates, two identities
    for fars, show in (((0.0,), 2), ((1.5,), 2), ((0.1,), 1)):
        with pytest.raises(ValueError):
            verification.HeldOutCurves(fars=fars, show=show)


def test_the_pair_lists_are_the_committed_runs_and_use_identities_of_two_photos():
    """The pairs every committed FaceNet number was measured on (numpy's seeded generator, pinned
    in requirements.lock): a change here changes every verification number."""
    labels = np.repeat(np.arange(4), 3)
    first, second = verification.different_pairs(labels, 5, seed=1)
    assert first.tolist() == [5, 6, 9, 0, 1] and second.tolist() == [10, 5, 3, 3, 4]
    i, j, same, fold = verification.lfw_style_pairs(labels, 2, 4, seed=0)
    assert i.tolist() == [11, 5, 2, 7, 7, 7, 3, 8] and j.tolist() == [10, 3, 9, 10, 8, 8, 9, 0]
    assert same.tolist() == [True, True, False, False] * 2 and fold.tolist() == [0] * 4 + [1] * 4
    # VAL's different pairs are drawn with the next seed, apart from the LFW-style list's
    e = np.random.default_rng(0).normal(size=(12, 3))
    same_d, different_d = verification.val_distances(e, labels, 5, seed=0)
    np.testing.assert_array_equal(different_d, verification.squared_distance(e, first, second))
    all_same = verification.all_same_pairs(labels)
    i, j = verification.all_same_pairs(np.array([0, 0, 0, 1, 1, 2]))  # every pair of photos once
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    np.testing.assert_array_equal(same_d, verification.squared_distance(e, *all_same))
    # an identity of two photos gives same pairs, one of a single photo none
    lone = np.array([0, 1, 1, 2, 3])
    i, j, same, _ = verification.lfw_style_pairs(lone, 2, 4, seed=0)
    assert {(a, b) for a, b, s in zip(i, j, same, strict=True) if s} <= {(1, 2), (2, 1)}
    with pytest.raises(ValueError, match="no identity has two photos"):
        verification.lfw_style_pairs(np.arange(5), 2, 4, seed=0)


def test_squared_distances_are_the_same_in_any_chunk():
    e = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    first, second = np.array([0, 1, 2, 3, 4, 5, 0]), np.array([5, 4, 3, 2, 1, 0, 0])
    direct = ((e[first].astype(np.float64) - e[second]) ** 2).sum(-1)
    for chunk in (1, 3, 7, 100):
        np.testing.assert_allclose(verification.squared_distance(e, first, second, chunk=chunk), direct)


def test_the_far_threshold_and_val_by_hand():
    # 2 identities x 2 photos; 2 different pairs at FAR 0.5: one false accept allowed, so the
    # threshold is the larger of the two different distances (accepting strictly below it)
    labels = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [1.0], [3.0], [7.0]])
    out = verification.Verification(folds=2, per_fold=2, far=0.5, different=2, seed=4).compute(
        {"embedding": e}, {"label": labels})
    different = verification.squared_distance(e, *verification.different_pairs(labels, 2, seed=5))
    assert different.tolist() == [4.0, 9.0]  # pairs (2, 1) and (0, 2)
    assert out["far_threshold"] == 9.0
    assert out["val_at_far"] == 0.5  # same pairs at 1 and 16: only the first is below 9


def test_val_at_far_counts_at_most_far_false_accepts():
    different = np.arange(1000, dtype=float)  # threshold at FAR 1e-2: 10 accepted -> d < 10
    assert verification.val_at_far(np.array([5.0, 9.5, 10.0, 50.0]), different, 1e-2) == 0.5


def test_a_perfect_embedding_verifies_perfectly_and_the_pairs_are_fixed():
    labels = np.repeat(np.arange(50), 4)
    e = np.eye(50)[labels]  # one axis per identity
    evaluator = verification.Verification(folds=10, per_fold=60, far=1e-3, different=5000)
    out = evaluator.compute({"embedding": e}, {"label": labels})
    assert out["verification_accuracy"] == 1.0 and out["val_at_far"] == 1.0
    first = verification.lfw_style_pairs(labels, 10, 60, 0)
    again = verification.lfw_style_pairs(labels, 10, 60, 0)
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    i, j, same, fold = first
    assert (same == (labels[i] == labels[j])).all() and (i != j).all()
    assert np.bincount(fold).tolist() == [60] * 10 and same.sum() == 300
    with pytest.raises(ValueError, match="cannot measure FAR=0.001"):
        verification.Verification(different=500)


def test_the_roc_passes_through_verification_and_a_perfect_embedding_is_perfect_everywhere():
    labels = np.repeat(np.arange(40), 5)
    rng = np.random.default_rng(3)
    e = rng.normal(size=(40, 8))[labels] + 0.1 * np.sqrt(8) * rng.normal(size=(200, 8))  # VAL ~0.9
    curves = verification.HeldOutCurves(different=5000, show=6).compute({"embedding": e}, {"label": labels})
    at = verification.FAR_GRID.index(1e-3)
    plain = verification.Verification(different=5000).compute({"embedding": e}, {"label": labels})
    assert curves["roc_val"][at] == plain["val_at_far"]  # the same pairs, the same threshold rule
    assert (np.diff(curves["roc_val"]) >= 0).all() and curves["roc_val"][-1] == 1.0
    assert 0.0 < curves["roc_val"][at] < 1.0
    assert curves["projection"].shape == (30, 2) and set(curves["projection_label"]) == set(range(6))
    perfect = np.eye(40)[labels]
    assert (verification.HeldOutCurves(different=5000).compute(
        {"embedding": perfect}, {"label": labels})["roc_val"] == 1.0).all()
    with pytest.raises(ValueError, match="false accept rates"):
        verification.HeldOutCurves(fars=(0.0, 0.1))


def test_the_verification_evaluators_embed_in_evaluation_mode():
    calls = []

    def model(image, train):
        calls.append(train)
        return image.reshape(len(image), -1)

    batch = {"image": np.ones((3, 2, 2, 1), np.float32)}
    for evaluator in (verification.Verification(), verification.HeldOutCurves()):
        assert evaluator.predict(model, batch)["embedding"].shape == (3, 4)
    assert calls == [False, False]


def test_the_principal_plane_keeps_the_spread_and_does_not_flip():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(50, 2)) * [5.0, 1.0] @ np.array([[0.6, 0.8], [-0.8, 0.6]])  # rotated ellipse
    e = np.concatenate([e, np.zeros((50, 3))], 1) + 7.0
    xy = verification.principal_plane(e)
    np.testing.assert_allclose(np.sort(np.linalg.svd(xy, compute_uv=False)),
                               np.sort(np.linalg.svd(e - e.mean(0), compute_uv=False)[:2]))
    assert xy[:, 0].var() > 10 * xy[:, 1].var() and np.allclose(xy.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(verification.principal_plane(-e), xy)  # a mirrored run looks the same
    # whatever sign the SVD picks, each axis's largest absolute coordinate comes out positive
    for seed in range(6):
        cloud = np.random.default_rng(seed).normal(size=(20, 4)) * [4.0, 2.0, 1.0, 0.5]
        for points in (cloud, -cloud, cloud[:, ::-1]):
            plane = verification.principal_plane(points)
            assert (plane[np.abs(plane).argmax(0), [0, 1]] > 0).all()


def test_identity_photos_are_deterministic_varied_and_sized():
    images = (np.random.default_rng(0).random((6, 28, 28, 1)) * 255).astype(np.uint8)
    a = identity_photos(images, 4, seed=0, stream=0)
    assert a.shape == (24, 28, 28, 1) and a.dtype == np.uint8
    assert (a == identity_photos(images, 4, seed=0, stream=0, chunk=2)).all()  # chunking changes nothing
    assert not (a == identity_photos(images, 4, seed=0, stream=1)).all()  # the test stream differs
    assert len({a[i].tobytes() for i in range(24)}) == 24  # every photo its own
    with pytest.raises(ValueError, match="needs at least 2 photos"):
        IdentityPhotos(train_photos=1)


@needs_real_mnist()
def test_a_short_real_data_run_verifies_held_out_identities(run_overrides, tmp_path):
    from experiments.facenet_mnist import curves
    from experiments.facenet_mnist.figures import make_figures
    from repro.run import run
    from repro.weights import weights_path

    overrides = [o for o in run_overrides if not o.startswith(("data.dir", "data.allow_partial"))]
    cfg_overrides = ["experiment=facenet_mnist", *overrides, "data.derive.train_identities=60",
                     "data.derive.train_photos=4", "data.derive.test_identities=40",
                     "data.derive.test_photos=3",
                     "data.sampler.classes_per_batch=8", "data.sampler.per_class=4", "train.batch_size=32",
                     "train.steps=20", "train.chunk_steps=10", "train.eval_every=10",
                     "evaluators.0.per_fold=20", "evaluators.0.different=2000"]
    cfg = compose(cfg_overrides)
    result = run(cfg)
    final = result["final"]
    assert 0.5 <= final["test/verification_accuracy"] <= 1.0 and 0.0 <= final["test/val_at_far"] <= 1.0
    assert final["train/positive_distance"] >= 0 and 0 <= final["train/active_triplets"] <= 1
    assert len(result["data"]["sha256"]["identity_photos"]) == 64
    assert result["data"]["splits"] == {"train": 240, "test": 120}
    drawn = make_figures({"semihard": [result], "hardest": []}, tmp_path, tmp_path / "figures")
    assert [p.name for _, p in drawn] == ["training_curves.png", "paper_shapes.png"]  # no curves yet
    assert all(p.stat().st_size > 10_000 for _, p in drawn)

    # The ROC and projection come from the run's kept weights, checked to be the run's.
    results = tmp_path / "results"
    said = []
    runs = curves.update(results, str(REAL_DATA), log=said.append)
    entry = runs[result["name"]]
    assert entry["roc_val"][verification.FAR_GRID.index(1e-3)] == final["test/val_at_far"]
    assert len(entry["projection"]) == 10 * 3 and said == [f"{result['name']}: derived from its "
                                                            f"weights in {entry['made']['seconds']:.0f} s"]
    said.clear()
    assert curves.update(results, str(REAL_DATA), log=said.append) == runs and said == []  # kept
    drawn = make_figures({"semihard": [result]}, tmp_path, results / "facenet_mnist" / "figures")
    assert [p.name for _, p in drawn] == ["training_curves.png", "paper_shapes.png", "roc.png",
                                          "projection.png"]

    # Weights of another run are refused, and nothing is written over the kept curves.
    weights = weights_path(results / "facenet_mnist" / f"{result['name']}.json")
    other = run(compose([*cfg_overrides, "seed=1"]))
    weights_path(results / "facenet_mnist" / f"{other['name']}.json").replace(weights)
    with pytest.raises(ValueError, match="these weights are not the run's"):
        curves.update(results, str(REAL_DATA), log=said.append)
    assert curves.read_curves(results)[result["name"]] == entry
