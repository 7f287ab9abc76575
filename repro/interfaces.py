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

Batch = dict[str, jax.Array]  # named fields (repro/data/fields.py), e.g. {"image", "label"}

# What a class may declare in its `needs` (a tuple class attribute) to be given it:
NEEDS = {
    "step": "train_loss gets step= (the traced step number, for schedules)",
    "phase": "train_loss gets phase= (the part of the model this chunk trains); the class has "
             "`phases` (parts, each with its optimizer in optim.groups) and `phase(step) -> (part, "
             "steps from `step` on that train it)`, read on the host",
    "train_split": "the constructor gets train_split= (the run's training split, host arrays)",
    "data_dir": "the constructor gets data_dir= (the run's data.dir)",
    "arrays": "a probe's __call__ gets arrays= (its `arrays` attribute, a dict of arrays it reads, "
              "e.g. a training split): passed into its jit as an argument, not compiled in as a "
              "constant",
    "key": "a probe's __call__ gets key= (a PRNG key of its run's seed, its own purpose in "
           "repro.loop.KEY_PURPOSES: each seed of a run measures with its own draws)",
}


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

    def per_example(self, model: Model, batch: Batch, *, train: bool,
                    rngs: nnx.Rngs | None = None) -> dict[str, jax.Array]:
        """Metrics of each example of the (transformed) batch, shape [batch]; must include
        'loss'. Evaluation averages them over the real examples of a split (padding masked
        out) into `<split>/<name>`."""
        ...

    def train_loss(self, model: Model, batch: Batch, *,
                   rngs: nnx.Rngs | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(scalar loss to minimize, batch-mean metrics logged as `train/<name>`).

        What else it needs it declares in `needs` (NEEDS above): "step" and "phase" add those
        keywords; "train_split" and "data_dir" are given to the constructor, outside its config
        (repro/run.py: _with_run_inputs), so neither the data nor a path enters the hash."""
        ...


@runtime_checkable
class Probe(Protocol):
    """A paper-specific measurement (entries of `probes:`), run inside jit at every evaluation, or
    only at the last one when it has `final_only = True`. Returns arrays logged as
    `probe/<name>` in the history of the result file. `eval_data[split]` holds every field
    batched [num_batches, batch, ...] and `batch_mask`; `transforms(batch, train=False)` turns
    a batch dict into the model's input dict. A probe may declare `needs` ("data_dir",
    "train_split"): given to its constructor, kept out of its config and so out of the hash; a
    probe that draws random numbers declares "key" and is called with its seed's key=."""

    def __call__(self, model: Model, eval_data: dict[str, Batch],
                 transforms: Callable[..., Batch]) -> dict[str, Any]: ...


@runtime_checkable
class Evaluator(Protocol):
    """A measurement that is not a mean over examples (entries of `evaluators:`): `predict` runs
    jitted over the batches of eval split `split` (transformed as at evaluation) and returns
    per-example arrays [batch, ...]; the loop reads them back once, drops the padding and calls
    `compute(predictions, examples)` on the host with the split's raw fields (e.g. ground-truth
    boxes), which returns floats logged as `<split>/<name>`, at every evaluation or, with
    `final_only = True`, the last. May declare `needs` like a probe."""

    split: str

    def predict(self, model: Model, batch: Batch) -> dict[str, jax.Array]: ...

    def compute(self, predictions: dict[str, Any], examples: dict[str, Any]) -> dict[str, float]: ...


def check(obj: object, protocol: type, what: str) -> None:
    """A clear error when a configured class does not provide the interface the loop calls."""
    if not isinstance(obj, protocol):
        methods = [name for name, value in vars(protocol).items()
                   if callable(value) and (name == "__call__" or not name.startswith("_"))]
        missing = [name for name in methods if not callable(getattr(obj, name, None))]
        raise TypeError(f"{what} {type(obj).__module__}.{type(obj).__qualname__} does not provide the "
                        f"repro.interfaces.{protocol.__name__} interface (missing: {', '.join(missing)})")


def check_needs(obj: object, what: str) -> tuple[str, ...]:
    """The `needs` a configured class declares, checked: known names, and the methods and
    keywords they promise present. An error names what is missing."""
    import inspect

    needs = tuple(getattr(obj, "needs", ()))
    name = f"{what} {type(obj).__module__}.{type(obj).__qualname__}"
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise TypeError(f"{name} needs {unknown}, which the loop does not give; it gives: "
                        + "; ".join(f"{k}: {v}" for k, v in NEEDS.items()))
    for keyword in ("step", "phase"):
        if keyword in needs and keyword not in inspect.signature(obj.train_loss).parameters:
            raise TypeError(f"{name} needs {keyword!r} but its train_loss takes no {keyword}= keyword")
    for keyword in ("key", "arrays"):
        if keyword in needs and what != "probe":
            raise TypeError(f"{name} needs {keyword!r}, which only probes are given (objectives get "
                            "rngs= and their data through the batch)")
        if keyword in needs and keyword not in inspect.signature(obj.__call__).parameters:
            raise TypeError(f"{name} needs {keyword!r} but its __call__ takes no {keyword}= keyword")
    if "arrays" in needs and not isinstance(obj, type) and not isinstance(getattr(obj, "arrays", None), dict):
        raise TypeError(f"{name} needs 'arrays' but has no `arrays` dict (the arrays it is to be given)")
    if "phase" in needs and not (getattr(obj, "phases", None) and callable(getattr(obj, "phase", None))):
        raise TypeError(f"{name} needs 'phase' but lacks `phases` (its parts) or `phase(step)`")
    return needs
