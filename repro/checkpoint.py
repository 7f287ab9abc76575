"""Periodic, atomic checkpoints with orbax: the whole train state plus run bookkeeping.

The state is saved as a flat dict of its leaves keyed by their paths ("params/out/kernel/value")
and rebuilt on the structure of a freshly built state, so any pytree (nnx State, optax state)
round-trips without registration, and a checkpoint whose leaves are not the template's (a renamed
layer, a changed optimizer: same shapes in another order would otherwise restore silently) is
refused, with the names that differ.

Saves are asynchronous: orbax returns once the arrays are copied to the host and writes the
files in a background thread while training goes on. So `save` hands it only snapshots taken at
the call (the arrays' host copies, a deep copy of `extra`), never an object the caller keeps
changing (the run's history list grows every chunk; the state is donated to the next chunk).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be read; the message says what to do."""


def named_leaves(tree) -> dict:
    """{path: leaf} of a pytree, paths joined with '/' (dict keys, sequence indices, attributes)."""
    def name(path):
        return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)

    return {name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _manifest(named: dict) -> dict:
    return {k: [list(v.shape), str(v.dtype)] for k, v in named.items()}


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).resolve()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, extra: dict) -> None:
        """Save `state` and the JSON-able `extra` as they are now (see the module docstring)."""
        named = named_leaves(state)
        # A snapshot, not the caller's live objects; with the state's leaf names and shapes.
        extra = json.loads(json.dumps({"bookkeeping": extra, "leaves": _manifest(named)}))
        with self._disk_full_said():
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(named),
                    extra=ocp.args.JsonSave(extra),
                ),
                force=True,
            )

    @contextlib.contextmanager
    def _disk_full_said(self):
        """A full disk, however it surfaces (OSError ENOSPC here, or orbax's writer thread's
        `ValueError: RESOURCE_EXHAUSTED` at the next save or at close), becomes one message that
        says what to do, and the half-written temporary checkpoint folder is removed."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - re-raised unless it is a full disk
            text = str(err)
            full = (isinstance(err, OSError) and err.errno == errno.ENOSPC) or \
                "RESOURCE_EXHAUSTED" in text or "No space left on device" in text
            if not full:
                raise
            for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)
            raise OSError(errno.ENOSPC, f"disk full while checkpointing to {self.directory}: free "
                          "space or point paths.checkpoints elsewhere, then rerun (it resumes from "
                          "the last complete checkpoint)") from err

    def restore(self, template_state):
        """(state, extra) of the newest readable checkpoint, shaped like template_state.

        A checkpoint that cannot be read (e.g. a file truncated by a full disk or a killed
        copy) is deleted with a warning naming it, and the next newest is tried, so a rerun
        goes on from there instead of failing on every attempt."""
        named = named_leaves(template_state)
        treedef = jax.tree.structure(template_state)
        abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in named.items()}
        bad = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                extra = self.manager.restore(step, args=ocp.args.Composite(
                    extra=ocp.args.JsonRestore())).extra
                if not isinstance(extra, dict):
                    raise ValueError(f"its bookkeeping (extra) is {extra!r}, not a JSON object")
            except Exception as err:  # noqa: BLE001 - any read failure means this one is unusable
                extra = err
            if isinstance(extra, dict):
                self._check_leaves(step, extra.get("leaves"), _manifest(named))
            try:
                if isinstance(extra, Exception):
                    raise extra
                state = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract))).state
            except Exception as err:  # noqa: BLE001 - any read failure means this one is unusable
                log.warning("checkpoint %s is unreadable (%s: %s); deleting it and trying the one "
                            "before", self.directory / str(step), type(err).__name__, str(err)[:200])
                bad.append(step)
                continue
            for b in bad:  # so the resumed run can save these steps again
                self.manager.delete(b)
            return jax.tree.unflatten(treedef, [state[k] for k in named]), extra["bookkeeping"]
        raise CheckpointError(
            f"no readable checkpoint in {self.directory} (tried steps {bad}). Rerun with "
            f"train.resume=false to start over, or delete that folder.")

    def _check_leaves(self, step: int, saved: dict | None, wanted: dict) -> None:
        """Refuse (without deleting) a checkpoint of another state: a changed model or optimizer."""
        if saved == wanted:
            return
        where = self.directory / str(step)
        if saved is None:
            detail = "it was written by an older version of this code (no leaf names)"
        else:
            missing = sorted(wanted.keys() - saved.keys())
            unexpected = sorted(saved.keys() - wanted.keys())
            reshaped = sorted(k for k in wanted.keys() & saved.keys() if wanted[k] != saved[k])
            detail = "; ".join(f"{what}: {names[:5]}{' ...' if len(names) > 5 else ''}"
                               for what, names in (("missing", missing), ("unexpected", unexpected),
                                                   ("other shape or dtype", reshaped)) if names)
        raise CheckpointError(
            f"checkpoint {where} holds another state than this run builds ({detail}): the model or "
            f"optimizer changed since it was written. Rerun with train.resume=false to start over, "
            f"or delete {self.directory}.")

    def close(self) -> None:
        with self._disk_full_said():
            self.manager.wait_until_finished()
            self.manager.close()
