"""What the shared loop promises a paper, and what it expects back: the model, objective and
probe interfaces. A new paper's config names classes (`_target_`) that satisfy these; build_trainer
checks each against its Protocol when the run starts, before any step.

The loop's side of the contract: the model's parameters (nnx.Param) are trained by the optimizer
of `optim`, everything else in it (batch statistics, counters) is carried through the steps;
`rngs` holds a fresh key stream per step (for dropout and noise); the loss is jit-compiled and
scanned, so these methods must be traceable (no Python side effects, no host syncs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
from flax import nnx

Batch = dict[str, jax.Array]  # {"image": ..., "label": ..., "mask": ...}: one split, batched


@runtime_checkable
class Model(Protocol):
    """An nnx.Module from the `model` group. Built as `Model(**cfg.model, rngs=nnx.Rngs(key))`.
    Its output is whatever its objective reads (logits for classification)."""

    def __call__(self, x: jax.Array, train: bool = False, rngs: nnx.Rngs | None = None) -> jax.Array: ...


@runtime_checkable
class Penalized(Protocol):
    """A model may add a term to the training loss (e.g. a KL divergence): objectives add
    `model.penalty()` to the mean loss and report it as the metric `penalty`."""

    def penalty(self) -> jax.Array: ...


@runtime_checkable
class Constrained(Protocol):
    """A model whose parameters must stay in a set (e.g. bounded noise variances): the loop calls
    `model.project()` after every optimizer update, which moves them back onto the set (projected
    gradient descent), so the next gradient is taken at a feasible point and a parameter at a
    bound leaves it as soon as its gradient points inward."""

    def project(self) -> None: ...


@runtime_checkable
class Objective(Protocol):
    """From the `objective` group: what is trained and evaluated."""

    def per_example(self, model: Model, inputs: jax.Array, labels: jax.Array, *, train: bool,
                    rngs: nnx.Rngs | None = None) -> dict[str, jax.Array]:
        """Metrics of each example, shape [batch]; must include 'loss'. Evaluation averages them
        over the real examples of a split (padding masked out) into `<split>/<name>`."""
        ...

    def train_loss(self, model: Model, inputs: jax.Array, labels: jax.Array, *,
                   rngs: nnx.Rngs | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(scalar loss to minimize, batch-mean metrics logged as `train/<name>`).

        Optional keywords the loop passes when the method takes them: `step` (the traced step
        number, for schedules) and, for an objective that trains parts of the model in turn,
        `phase`. Such an objective also has `phases` (the parts: top-level attributes of the
        model, each with its optimizer in optim.groups) and `phase(step: int) -> (part, steps
        from `step` on that train it)`, read on the host: each phase runs as its own chunks.
        An objective class whose constructor takes `train_split` (or `data_dir`) is given the
        run's training split (or data.dir), outside its config (repro/run.py: _with_run_inputs)."""
        ...


@runtime_checkable
class Probe(Protocol):
    """A paper-specific measurement (entries of `probes:`), run inside jit at every evaluation, or
    only at the last one when it has `final_only = True`. Returns arrays logged as
    `probe/<name>` in the history of the result file. A probe class whose constructor takes
    `data_dir` (or `train_split`) is given the run's data.dir (or training split), kept out of
    its config and so out of the hash."""

    def __call__(self, model: Model, eval_data: dict[str, Batch],
                 preprocess: Callable[..., jax.Array]) -> dict[str, Any]: ...


def check(obj: object, protocol: type, what: str) -> None:
    """A clear error when a configured class does not provide the interface the loop calls."""
    if not isinstance(obj, protocol):
        methods = [name for name, value in vars(protocol).items()
                   if callable(value) and (name == "__call__" or not name.startswith("_"))]
        missing = [name for name in methods if not callable(getattr(obj, name, None))]
        raise TypeError(f"{what} {type(obj).__module__}.{type(obj).__qualname__} does not provide the "
                        f"repro.interfaces.{protocol.__name__} interface (missing: {', '.join(missing)})")
