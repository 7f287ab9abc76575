"""Checkpoints: what an asynchronous save writes is the state and bookkeeping at the step of the
call, whatever the caller does to its objects afterwards (the race behind a flaky resume test)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from repro import checkpoint
from repro.checkpoint import Checkpointer


def _state(value: float):
    return {"params": {"w": jnp.full((3, 4), value)}, "step": jnp.asarray(7, jnp.int32)}


def test_save_hands_orbax_a_snapshot_of_extra(tmp_path, monkeypatch):
    """Deterministic form of the race: the object handed to the background writer must not be
    the caller's list, which the loop keeps appending to while the write is in flight."""
    handed = []
    real_json_save = ocp.args.JsonSave

    def capture(item):
        handed.append(item)
        return real_json_save(item)

    monkeypatch.setattr(checkpoint.ocp.args, "JsonSave", capture)
    history = [{"step": 0, "loss": 1.0}]
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, _state(1.0), {"history": history})
    history.append({"step": 2, "loss": 0.5})  # the next chunk's record
    history[0]["loss"] = -1.0                   # and a change inside a record
    ckpt.close()
    assert handed == [{"history": [{"step": 0, "loss": 1.0}]}]


def test_restore_gives_the_state_and_history_of_the_save_call(tmp_path):
    """End to end: mutate the history and delete the state's buffers (as donating them to the
    next chunk does) right after save; the restored checkpoint is what save was called with."""
    history = [{"step": 0, "loss": 1.0}]
    state = _state(2.5)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(5, state, {"history": history})
    history.append({"step": 10, "loss": 0.1})
    for leaf in jax.tree.leaves(state):
        leaf.delete()
    ckpt.close()

    restored, extra = Checkpointer(tmp_path / "ckpt").restore(_state(0.0))
    assert extra == {"history": [{"step": 0, "loss": 1.0}]}
    np.testing.assert_array_equal(restored["params"]["w"], np.full((3, 4), 2.5))
    assert int(restored["step"]) == 7
