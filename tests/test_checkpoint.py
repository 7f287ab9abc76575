"""Checkpoints: what an asynchronous save writes is the state and bookkeeping at the step of the
call, whatever the caller does to its objects afterwards (the race behind a flaky resume test)."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from repro import checkpoint
from repro.checkpoint import Checkpointer, CheckpointError


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
    assert [h["bookkeeping"] for h in handed] == [{"history": [{"step": 0, "loss": 1.0}]}]


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


def _two_checkpoints(folder):
    ckpt = Checkpointer(folder)
    for step in (1, 2):
        ckpt.save(step, _state(float(step)), {"history": [{"step": step}], "elapsed": {}})
    ckpt.close()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize("damage", ["array file", "extra metadata"])
def test_unreadable_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog, damage):
    folder = tmp_path / "ckpt"
    _two_checkpoints(folder)
    if damage == "array file":
        for f in (folder / "2" / "state").rglob("*"):
            if f.is_file() and f.parent.name == "d":
                _truncate(f)
    else:
        _truncate(folder / "2" / "extra" / "metadata")
    with caplog.at_level(logging.WARNING, logger="repro.checkpoint"):
        restored, extra = Checkpointer(folder).restore(_state(0.0))
    assert extra["history"] == [{"step": 1}]
    np.testing.assert_array_equal(restored["params"]["w"], np.full((3, 4), 1.0))
    assert f"{folder / '2'} is unreadable" in caplog.text
    assert Checkpointer(folder).latest_step() == 1  # deleted, so the run can save step 2 again


def test_no_readable_checkpoint_says_what_to_do(tmp_path):
    folder = tmp_path / "ckpt"
    _two_checkpoints(folder)
    for step in ("1", "2"):
        _truncate(folder / step / "extra" / "metadata")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint in .*ckpt.*train.resume=false"):
        Checkpointer(folder).restore(_state(0.0))


def test_a_checkpoint_of_another_state_is_refused_not_restored_into_the_wrong_leaves(tmp_path):
    """Same shapes, other names (a renamed layer): a checkpoint saved as a list of leaves would
    restore silently into whatever leaf comes first. It is refused, named, and kept."""
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, {"encoder": jnp.ones(3), "decoder": jnp.zeros(3)}, {"history": []})
    ckpt.close()
    renamed = {"decoder": jnp.zeros(3), "head": jnp.zeros(3)}
    with pytest.raises(CheckpointError, match=r"another state .*missing: \['head'\].*unexpected: "
                                              r"\['encoder'\].*train.resume=false"):
        Checkpointer(tmp_path / "ckpt").restore(renamed)
    assert Checkpointer(tmp_path / "ckpt").latest_step() == 1  # not deleted
    restored, _ = Checkpointer(tmp_path / "ckpt").restore({"decoder": jnp.ones(3), "encoder": jnp.ones(3)})
    np.testing.assert_array_equal(restored["encoder"], np.ones(3))
    np.testing.assert_array_equal(restored["decoder"], np.zeros(3))


def test_a_run_does_not_resume_across_a_code_change(run_overrides, monkeypatch):
    """Stopped, the code changed (a fingerprint of repro/, experiments/ and the configs), rerun:
    refused with what to do, instead of one result from two programs under one hash."""
    from conftest import compose, interrupted_run

    from repro import provenance
    from repro.run import CodeChangedError, run

    overrides = ["experiment=debug", *run_overrides, "train.steps=40", "train.chunk_steps=10",
                 "train.eval_every=20", "train.checkpoint_every=10", "model.hidden=[8]"]
    interrupted_run(compose(overrides), at_step=20)
    real = provenance.code_fingerprint()
    monkeypatch.setattr(provenance, "code_fingerprint", lambda root=None: "0" * 64)
    with pytest.raises(CodeChangedError, match="written by other code .*train.resume=false"):
        run(compose(overrides))
    assert run(compose([*overrides, "train.resume=false"]))["provenance"]["code_sha256"] == "0" * 64
    monkeypatch.undo()
    assert provenance.code_fingerprint() == real  # a pure function of the files


def test_the_code_fingerprint_changes_with_any_code_file(tmp_path):
    from repro.provenance import code_fingerprint

    for rel in ("repro/loop.py", "experiments/p/objectives.py", "configs/data/x.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a = 1\n")
    before = code_fingerprint(tmp_path)
    for rel in ("repro/loop.py", "experiments/p/objectives.py", "configs/data/x.yaml"):
        (tmp_path / rel).write_text("a = 2\n")
        assert code_fingerprint(tmp_path) != before
        (tmp_path / rel).write_text("a = 1\n")
        assert code_fingerprint(tmp_path) == before


@pytest.mark.parametrize("raised", [
    ValueError("RESOURCE_EXHAUSTED: Error writing local file: No space left on device [OS error: 28]"),
    OSError(28, "No space left on device"),
])
def test_a_full_disk_while_checkpointing_says_so_and_leaves_no_temporary_folder(tmp_path, raised):
    ckpt = Checkpointer(tmp_path / "ckpt")
    state = {"w": jnp.ones(3)}
    ckpt.save(10, state, {"history": []})
    ckpt.manager.wait_until_finished()
    (tmp_path / "ckpt" / "20.orbax-checkpoint-tmp-1234").mkdir()  # what a failed write leaves

    def fail(*args, **kwargs):
        raise raised

    ckpt.manager.save = fail
    with pytest.raises(OSError, match="disk full while checkpointing to .*then rerun"):
        ckpt.save(20, state, {"history": []})
    assert not list((tmp_path / "ckpt").glob("*orbax-checkpoint-tmp*"))
    assert ckpt.latest_step() == 10  # the last complete checkpoint is still there
    ckpt.manager.wait_until_finished = fail  # the writer thread's error surfaces at close
    with pytest.raises(OSError, match="disk full while checkpointing"):
        ckpt.close()


def test_other_checkpoint_errors_are_not_called_a_full_disk(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")

    def fail(*args, **kwargs):
        raise ValueError("something else")

    ckpt.manager.save = fail
    with pytest.raises(ValueError, match="something else"):
        ckpt.save(1, {"w": jnp.ones(1)}, {})


@pytest.mark.parametrize("raised", [
    ValueError("RESOURCE_EXHAUSTED: Error writing local file"),   # orbax's writer, no OS text
    RuntimeError("write failed: No space left on device"),       # the OS text alone
    OSError(28, "quota"),                                        # the errno alone
])
def test_each_sign_of_a_full_disk_alone_is_enough(tmp_path, raised):
    ckpt = Checkpointer(tmp_path / "ckpt")

    def fail(*args, **kwargs):
        raise raised

    ckpt.manager.save = fail
    with pytest.raises(OSError, match="disk full while checkpointing"):
        ckpt.save(1, {"w": jnp.ones(1)}, {})


def test_another_os_error_is_not_a_full_disk(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")

    def fail(*args, **kwargs):
        raise OSError(13, "Permission denied")

    ckpt.manager.save = fail
    with pytest.raises(PermissionError, match="Permission denied"):
        ckpt.save(1, {"w": jnp.ones(1)}, {})


def test_a_refusal_names_at_most_five_leaves_per_kind_and_says_when_there_are_more(tmp_path):
    saved = {f"a{i}": jnp.ones(2) for i in range(5)} | {f"b{i}": jnp.ones(2) for i in range(6)}
    saved["w"] = jnp.ones(3)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, saved, {})
    ckpt.close()
    wanted = {"w": jnp.ones(4)}  # all a* and b* unexpected, w reshaped
    with pytest.raises(CheckpointError) as err:
        Checkpointer(tmp_path / "ckpt").restore(wanted)
    text = str(err.value)
    assert "unexpected: ['a0', 'a1', 'a2', 'a3', 'a4'] ..." in text  # 11 names: the first 5, then ...
    assert "other shape or dtype: ['w'])" in text  # 1 name: no ...
    exactly_five = {f"a{i}": jnp.ones(2) for i in range(5)}
    ckpt = Checkpointer(tmp_path / "five")
    ckpt.save(1, exactly_five, {})
    ckpt.close()
    with pytest.raises(CheckpointError, match=r"unexpected: \['a0', 'a1', 'a2', 'a3', 'a4'\]\): "):
        Checkpointer(tmp_path / "five").restore({})
    ckpt = Checkpointer(tmp_path / "six")
    ckpt.save(1, exactly_five | {"a5": jnp.ones(2)}, {})
    ckpt.close()
    with pytest.raises(CheckpointError, match=r"unexpected: \['a0', 'a1', 'a2', 'a3', 'a4'\] \.\.\.\): "):
        Checkpointer(tmp_path / "six").restore({})


def test_two_checkpoints_are_kept_by_default(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    for step in (1, 2, 3):
        ckpt.save(step, {"w": jnp.full(2, step)}, {})
    ckpt.close()
    assert sorted(Checkpointer(tmp_path / "ckpt").manager.all_steps()) == [2, 3]
