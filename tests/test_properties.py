"""Properties that must hold for every input, drawn by hypothesis (the same examples every run):
the training order (repro.data.pipeline.batch_indices), evaluation padding
(repro.evaluation.pad_for_eval) and the perturbation balls of the attacks (repro.attacks.project)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from repro.attacks import project
from repro.data.pipeline import batch_indices, epoch_permutation
from repro.evaluation import pad_for_eval

FAST = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def schedules(draw):
    """n examples, a batch that fits, and a chunk [start, start + length) of a 0..total run."""
    n = draw(st.integers(2, 23))
    batch = draw(st.integers(1, n))
    total = draw(st.integers(1, 3 * n // batch + 2))  # runs of 1 to ~3 epochs
    start = draw(st.integers(0, total - 1))
    return n, batch, total, start, draw(st.integers(1, total - start))


@settings(max_examples=15, deadline=None, derandomize=True)  # each shape compiles once
@given(schedules())
@example((5, 1, 9, 4, 3))  # batch 1, a chunk starting on an epoch's last step: its first two steps
@example((7, 3, 6, 1, 2))  # straddle epochs; a batch that leaves examples out of every epoch;
@example((5, 1, 6, 0, 6))  # a chunk whose last step alone opens a new epoch
def test_any_chunk_of_the_training_order_is_the_same_slice_of_one_order_of_drop_last_epochs(schedule):
    n, batch, total, start, length = schedule
    key = jax.random.key(7)
    whole = np.asarray(batch_indices(key, 0, total, batch, n))
    assert whole.shape == (total, batch) and whole.min() >= 0 and whole.max() < n
    # a chunk that starts anywhere (a resume, another chunk length) continues the same order
    np.testing.assert_array_equal(np.asarray(batch_indices(key, start, length, batch, n)),
                                  whole[start:start + length])
    per_epoch = n // batch  # steps per epoch: drop-last, so n % batch examples sit out each epoch
    for step in range(total):  # the definition: step s takes its epoch's permutation, batch by batch
        epoch, within = divmod(step, per_epoch)
        perm = np.asarray(epoch_permutation(key, epoch, n))
        np.testing.assert_array_equal(whole[step], perm[within * batch:(within + 1) * batch])


def test_a_batch_larger_than_the_data_is_refused_and_a_single_example_is_its_own_epoch():
    with pytest.raises(ValueError, match="batch_size=4 exceeds the 3 training examples"):
        batch_indices(jax.random.key(0), 0, 1, 4, 3)
    assert np.asarray(batch_indices(jax.random.key(0), 2, 3, 1, 1)).tolist() == [[0], [0], [0]]
    assert np.asarray(batch_indices(jax.random.key(0), 0, 2, 3, 3)).ravel().tolist().count(0) == 2


@FAST
@given(st.integers(1, 40), st.integers(1, 50), st.sampled_from([(), (3,), (2, 5)]))
def test_evaluation_padding_keeps_every_example_once_in_order_and_masks_only_the_padding(n, batch, tail):
    split = {"image": np.arange(n * int(np.prod(tail)), dtype=np.float32).reshape(n, *tail) + 1,
             "label": np.arange(n, dtype=np.int32) + 1}
    padded = pad_for_eval(split, batch)
    used = min(batch, n)
    batches = -(-n // used)
    mask = padded["batch_mask"].reshape(-1)
    assert padded["batch_mask"].shape == (batches, used) and mask.sum() == n
    np.testing.assert_array_equal(mask, np.arange(batches * used) < n)  # real first, padding last
    for name, field in split.items():
        flat = padded[name].reshape(batches * used, *field.shape[1:])
        np.testing.assert_array_equal(flat[:n], field)
        assert not flat[n:].any()  # padding is zeros


# No subnormals: XLA on the CPU flushes them to zero in any computed value (a 1e-45 change comes out
# of the L0 projection as 0, and of an L-inf clip too), and no attack's change is ever that small.
deltas = st.lists(st.floats(-3, 3, allow_nan=False, allow_subnormal=False, width=32),
                  min_size=12, max_size=12)


@FAST
@given(st.lists(deltas, min_size=1, max_size=3), st.floats(0.05, 4.0), st.sampled_from(["l2", "linf"]))
def test_a_projection_leaves_points_in_the_ball_alone_and_moves_the_others_onto_its_edge(rows, eps, norm):
    delta = jnp.asarray(rows, jnp.float32).reshape(len(rows), 3, 4, 1)  # per example: 3 x 4 x 1
    out = np.asarray(project(delta, eps, norm))
    flat_in, flat_out = np.asarray(delta).reshape(len(rows), -1), out.reshape(len(rows), -1)
    for before, after in zip(flat_in, flat_out, strict=True):
        size = np.linalg.norm(before) if norm == "l2" else np.abs(before).max()
        if size <= eps:
            np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)  # inside: untouched
            continue
        if norm == "l2":  # outside: scaled along itself onto the sphere
            np.testing.assert_allclose(np.linalg.norm(after), eps, rtol=1e-5)
            np.testing.assert_allclose(after * np.linalg.norm(before), before * eps, rtol=1e-4, atol=1e-5)
        else:  # each coordinate clipped on its own
            np.testing.assert_array_equal(after, np.clip(before, -eps, eps))


@FAST
@given(st.lists(deltas, min_size=1, max_size=3), st.integers(0, 12))
def test_an_l0_projection_keeps_exactly_the_k_largest_changes(rows, k):
    """Of each example of a batch (1 to 3), on its own."""
    delta = jnp.asarray(rows, jnp.float32).reshape(len(rows), 12)
    out = np.asarray(project(delta, k, "l0"))
    for before, after in zip(np.asarray(delta), out, strict=True):
        _assert_keeps_the_k_largest(before, after, k)


def _assert_keeps_the_k_largest(before, out, k):
    kept = np.flatnonzero(out)
    # exactly k changes stay (fewer only where fewer than k were made), each at its original value
    assert len(kept) == min(k, np.count_nonzero(before)) and np.all(out[kept] == before[kept])
    dropped = np.setdiff1d(np.arange(12), kept)
    if len(kept):  # nothing dropped is larger than anything kept
        assert np.abs(before[dropped]).max(initial=0) <= np.abs(before[kept]).min()