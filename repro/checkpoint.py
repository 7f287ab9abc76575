"""Periodic, atomic checkpoints with orbax: the whole train state plus run bookkeeping.

The state is saved as its list of leaves and rebuilt on the structure of a freshly built
state, so any pytree (nnx State, optax state) round-trips without registration.

Saves are asynchronous: orbax returns once the arrays are copied to the host and writes the
files in a background thread while training goes on. So `save` hands it only snapshots taken at
the call (the arrays' host copies, a deep copy of `extra`), never an object the caller keeps
changing (the run's history list grows every chunk; the state is donated to the next chunk).
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be read; the message says what to do."""


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
        extra = json.loads(json.dumps(extra))  # a snapshot, not the caller's live objects
        try:
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(jax.tree.leaves(state)),
                    extra=ocp.args.JsonSave(extra),
                ),
                force=True,
            )
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise OSError(err.errno, f"disk full while checkpointing to {self.directory}: "
                              "free space or point paths.checkpoints elsewhere") from err
            raise

    def restore(self, template_state):
        """(state, extra) of the newest readable checkpoint, shaped like template_state.

        A checkpoint that cannot be read (e.g. a file truncated by a full disk or a killed
        copy) is deleted with a warning naming it, and the next newest is tried, so a rerun
        goes on from there instead of failing on every attempt."""
        leaves, treedef = jax.tree.flatten(template_state)
        abstract = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
        bad = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), extra=ocp.args.JsonRestore()))
                if not isinstance(restored.extra, dict):
                    raise ValueError(f"its bookkeeping (extra) is {restored.extra!r}, not a JSON object")
            except Exception as err:  # noqa: BLE001 - any read failure means this one is unusable
                log.warning("checkpoint %s is unreadable (%s: %s); deleting it and trying the one "
                            "before", self.directory / str(step), type(err).__name__, str(err)[:200])
                bad.append(step)
                continue
            for b in bad:  # so the resumed run can save these steps again
                self.manager.delete(b)
            return jax.tree.unflatten(treedef, restored.state), restored.extra
        raise CheckpointError(
            f"no readable checkpoint in {self.directory} (tried steps {bad}). Rerun with "
            f"train.resume=false to start over, or delete that folder.")

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
