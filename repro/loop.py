"""The one training loop every reproduction runs on.

A functional step over `nnx.split(model)` state, `lax.scan`-ned over a chunk of steps inside
one jit call with the state donated; batches are gathered on the device from the whole
training split; metrics stay on the device and are read back once per chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from repro.data.fields import split_size
from repro.data.pipeline import batch_indices
from repro.data.samplers import EpochSampler
from repro.evaluation import HostEvaluators, Probes, SplitMeans, pad_for_eval
from repro.interfaces import Constrained
from repro.parallel import check_batch, replicate, shard_batch

KEY_PURPOSES = ("init", "data", "dropout", "augment", "probe")  # append only: keys are by index


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss."""


def seed_keys(seed: int) -> dict[str, jax.Array]:
    """One independent key per purpose, so e.g. changing the data order leaves the init alone."""
    root = jax.random.key(seed)
    return {name: jax.random.fold_in(root, i) for i, name in enumerate(KEY_PURPOSES)}


FEEDS = ("device", "host")
LOOP_INPUTS = ("step", "phase")  # what train_loss may declare in `needs` (the rest: repro/run.py)


class Trainer:
    """Owns the jitted chunk and eval functions for one model/optimizer/data combination.

    Given a list of models (same architecture, different inits) and a list of key dicts, it
    trains them all at once, vmapped over a leading seed axis: small models fill the device.
    Every state leaf, metric and eval value then has that leading axis (`seed_record` slices
    one seed's record); `seeds` only names them in errors.

    Feeding: by default the training split lives on the device and each chunk draws its batch
    indices there (uniform epochs). With a `sampler` (repro/data/samplers.py) the host gives each
    chunk's indices; with `feed="host"` the split stays on the host too and each chunk's batches
    are gathered there and sent over (data that cannot sit on the device). The host prepares the
    next chunk's feed while the device runs the current one; a feed is a pure function of (seed,
    step), so a resumed run gets exactly the batches it would have got.

    Evaluation (repro/evaluation.py) runs the objective's split means, the probes and the host
    evaluators; a probe or evaluator with `final_only = True` (e.g. sampling from a generative
    model) runs only at the evaluation after the last step of `fit`, not at every evaluation.
    """

    def __init__(
        self,
        model: nnx.Module | Sequence[nnx.Module],
        optimizer: optax.GradientTransformation,
        objective,
        transforms: Callable,
        train_split: dict[str, np.ndarray],
        eval_splits: dict[str, dict[str, np.ndarray]],
        *,
        batch_size: int,
        keys: dict[str, jax.Array] | Sequence[dict[str, jax.Array]],
        eval_batch_size: int = 1000,
        probes: Sequence[Callable] = (),
        evaluators: Sequence = (),
        mesh=None,
        seeds: Sequence[int] | None = None,
        sampler=None,
        feed: str = "device",
    ):
        if feed not in FEEDS:
            raise ValueError(f"feed={feed!r}: one of {FEEDS} (data.feed)")
        check_batch(batch_size, mesh)
        check_batch(eval_batch_size, mesh)
        self.mesh = mesh
        self.optimizer, self.objective, self.transforms = optimizer, objective, transforms
        self.batch_size = batch_size
        self.stacked = not isinstance(model, nnx.Module)
        models, key_dicts = (list(model), list(keys)) if self.stacked else ([model], [keys])
        self.constrained = isinstance(models[0], Constrained)
        # Objectives may read the step (schedules) and alternate between parts of the model.
        self.loss_inputs = [n for n in getattr(objective, "needs", ()) if n in LOOP_INPUTS]
        self.phases = tuple(getattr(objective, "phases", ())) if "phase" in self.loss_inputs else ()
        states = []
        for m in models:
            self.graphdef, params, rest = nnx.split(m, nnx.Param, ...)
            states.append({"params": params, "rest": rest, "opt_state": optimizer.init(params),
                           "step": jnp.zeros((), jnp.int32)})
        if self.stacked:
            states = [jax.tree.map(lambda *xs: jnp.stack(xs), *states)]
            key_dicts = [{k: jnp.stack([d[k] for d in key_dicts]) for k in key_dicts[0]}]
        self.keys = key_dicts[0]
        self.seeds = list(seeds) if seeds is not None else list(range(len(models)))  # for errors
        self.initial_state = replicate(states[0], mesh)
        self.num_train = split_size(train_split)
        self.feed, self.host_split = feed, dict(train_split)
        self.sampler = sampler if sampler is not None or feed == "device" else EpochSampler()
        # Device feed: the data go to the device(s) once; batches are gathered there in the step.
        self.train_data = replicate(dict(train_split), mesh) if feed == "device" else {}
        self.eval_data = {
            name: replicate(pad_for_eval(split, eval_batch_size), mesh)
            for name, split in eval_splits.items()
        }
        self.evaluation = [
            SplitMeans(self.graphdef, objective, transforms, self.eval_data, mesh, self.stacked),
            Probes(self.graphdef, probes, transforms, self.eval_data, self.stacked, self.keys["probe"]),
            HostEvaluators(self.graphdef, evaluators, transforms, self.eval_data, eval_splits, mesh,
                           self.stacked),
        ]
        chunk = self._train_chunk
        if self.stacked:  # one seed per leading index of state, keys and feed; data shared
            chunk = lambda state, data, keys, given, n, phase: jax.vmap(  # noqa: E731
                lambda s, k, g: self._train_chunk(s, data, k, g, n, phase))(state, keys, given)
        self._chunk = jax.jit(chunk, static_argnums=(4, 5), donate_argnums=0)
        self._compiled: dict[tuple, Callable] = {}
        self.compile_seconds = 0.0

    # ----- device functions -------------------------------------------------------------
    def gather_batch(self, data, idx):
        """The batch (every field) at these indices, split over the data-parallel devices (if any)."""
        return {name: shard_batch(field[idx], self.mesh) for name, field in data.items()}

    def _train_step(self, state, given, data, keys, phase: str | None = None):
        """One step on `given`: the batch's indices into the device data, or the batch itself."""
        step = state["step"]
        raw = ({k: shard_batch(v, self.mesh) for k, v in given.items()} if self.feed == "host"
               else self.gather_batch(data, given))
        batch = self.transforms(raw, key=jax.random.fold_in(keys["augment"], step), train=True)
        dropout_key = jax.random.fold_in(keys["dropout"], step)
        loss_args = {name: {"step": step, "phase": phase}[name] for name in self.loss_inputs}

        def loss_fn(params):
            # Rngs made inside the differentiated trace: drawing a key mutates its counter.
            dropout = nnx.Rngs(dropout=dropout_key)
            # Fresh Variables for the non-param state, so BN can update them in this trace.
            model = nnx.merge(self.graphdef, params, jax.tree.map(lambda a: a, state["rest"]))
            loss, metrics = self.objective.train_loss(model, batch, rngs=dropout, **loss_args)
            return loss, (metrics, nnx.split(model, nnx.Param, ...)[2])

        (loss, (metrics, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        extra = {"active": {p: p == phase for p in self.phases}} if phase is not None else {}
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"], **extra)
        params = optax.apply_updates(state["params"], updates)
        if self.constrained:
            params = self._project(params, rest)
        metrics["finite"] = jnp.isfinite(loss)
        new_state = {"params": params, "rest": rest, "opt_state": opt_state, "step": step + 1}
        return new_state, metrics

    def _project(self, params, rest):
        """The model's parameters after its own `project()` (interfaces.Constrained)."""
        model = nnx.merge(self.graphdef, params, rest)
        model.project()
        return nnx.split(model, nnx.Param, ...)[1]

    def _train_chunk(self, state, data, keys, given, num_steps: int, phase: str | None = None):
        start = state["step"]
        if given is None:  # the fast path: indices drawn here, on the device
            given = batch_indices(keys["data"], start, num_steps, self.batch_size, self.num_train)
        state, metrics = jax.lax.scan(lambda s, g: self._train_step(s, g, data, keys, phase), state, given)
        finite = metrics.pop("finite")
        summary = {f"train/{k}": v.mean() for k, v in metrics.items()}
        # First step whose loss was NaN/inf (or -1): lets the host name the step without syncing per step.
        summary["first_nonfinite_step"] = jnp.where(
            finite.all(), -1, start + jnp.argmin(finite.astype(jnp.int32))
        )
        return state, summary

    # ----- host side --------------------------------------------------------------------
    def chunk_fn(self, state, num_steps: int, phase: str | None = None):
        """The compiled chunk for this length (and phase), called as (state, data, keys[, feed]);
        compile time is measured here, apart from run time."""
        if (num_steps, phase) not in self._compiled:
            t0 = time.perf_counter()
            given = self.feed_for(0, num_steps)
            compiled = self._chunk.lower(state, self.train_data, self.keys, given, num_steps, phase).compile()
            self._compiled[num_steps, phase] = (
                lambda state, data, keys, given=None: compiled(state, data, keys, given))
            self.compile_seconds += time.perf_counter() - t0
        return self._compiled[num_steps, phase]

    def feed_for(self, step: int, num_steps: int):
        """What the host gives the chunk of steps [step, step + num_steps): None (the device draws
        its indices), the sampler's indices, or the gathered batches (feed="host"); with a
        leading seed axis for vmapped seeds. Sent to the device asynchronously."""
        if self.sampler is None:
            return None
        keys = list(self.keys["data"]) if self.stacked else [self.keys["data"]]
        idx = np.stack([self.sampler.indices(k, step, num_steps, self.batch_size, self.host_split)
                        for k in keys])
        given = idx if self.feed == "device" else {k: v[idx] for k, v in self.host_split.items()}
        given = jax.tree.map(lambda a: a if self.stacked else a[0], given)
        return replicate(given, self.mesh)

    def _plan(self, step: int, total_steps: int, chunk_steps: int) -> tuple[int, str | None]:
        """(steps, phase) of the chunk that starts at `step`: up to the next chunk boundary, the
        end, or (for an objective with phases) the end of the phase, whichever comes first."""
        num_steps = min(chunk_steps - step % chunk_steps, total_steps - step)
        if not self.phases:
            return num_steps, None
        phase, phase_steps = self.objective.phase(step)  # a chunk never spans two phases
        return min(num_steps, phase_steps), phase

    def evaluate(self, state, final: bool = False) -> dict[str, float]:
        """Every evaluator's values; final=True adds the final-only probes and evaluators."""
        record = {}
        for evaluator in self.evaluation:
            record.update(evaluator(state["params"], state["rest"], final))
        return jax.device_get(record)

    def fit(
        self,
        state,
        total_steps: int,
        *,
        chunk_steps: int,
        eval_every: int,
        history: list | None = None,
        callbacks: Sequence[Callable] = (),
        timing: dict | None = None,
    ):
        """Train from state['step'] to total_steps. Calls each callback(step, state, record)
        at every chunk boundary; record holds train metrics and, at eval points, eval metrics.
        Records are appended to `history` in place, so callbacks (checkpoints) see them; so
        is `timing` (train/eval seconds and steps of this call so far) updated in place."""
        if eval_every % chunk_steps:
            raise ValueError(f"train.eval_every={eval_every} must be a multiple of "
                             f"train.chunk_steps={chunk_steps}")
        history = [] if history is None else history
        step = int(np.max(state["step"]))
        timing = {} if timing is None else timing
        timing.update(train_seconds=0.0, eval_seconds=0.0, steps=0)
        if step == 0 and not history:
            t0 = time.perf_counter()
            record = {"step": 0, **_to_python(self.evaluate(state))}
            timing["eval_seconds"] += time.perf_counter() - t0
            history.append(record)
            for callback in callbacks:
                callback(0, state, record)
        plan = self._plan(step, total_steps, chunk_steps) if step < total_steps else None
        given = self.feed_for(step, plan[0]) if plan else None
        while step < total_steps:
            num_steps, phase = plan
            chunk = self.chunk_fn(state, num_steps, phase)
            t0 = time.perf_counter()
            state, summary = chunk(state, self.train_data, self.keys, given)  # dispatched, not waited for
            if step + num_steps < total_steps:  # the host prepares the next feed meanwhile
                plan = self._plan(step + num_steps, total_steps, chunk_steps)
                given = self.feed_for(step + num_steps, plan[0])
            summary = jax.device_get(summary)  # the one host sync per chunk
            timing["train_seconds"] += time.perf_counter() - t0
            step += num_steps
            timing["steps"] += num_steps
            bad = np.asarray(summary.pop("first_nonfinite_step")).reshape(-1)
            if (bad >= 0).any():
                which = ""
                if self.stacked:
                    nonfinite = [self.seeds[i] for i in np.flatnonzero(bad >= 0)]
                    which = (f" for seed(s) {nonfinite} of the seeds {self.seeds} trained together "
                             "(vmapped; the run stops for all of them)")
                raise NonFiniteLossError(
                    f"training loss became NaN/inf at step {int(bad[bad >= 0].min())}{which}. Lower "
                    "the learning rate (optim.lr), check the data normalization, or try another seed."
                )
            record = {"step": step, **_to_python(summary)}
            if step % eval_every == 0 or step == total_steps:
                t0 = time.perf_counter()
                record.update(_to_python(self.evaluate(state, final=step == total_steps)))
                timing["eval_seconds"] += time.perf_counter() - t0
            history.append(record)
            for callback in callbacks:
                callback(step, state, record)
        return state, history, timing


def seed_record(record: dict, index: int) -> dict:
    """One seed's slice of a history record of vmapped seeds (every value but the step has a
    leading seed axis): the record a separate run of that seed would have."""
    return {k: v if k == "step" else v[index] for k, v in record.items()}


def _to_python(tree):
    """Device scalars/arrays -> floats/lists, for JSON results and loggers."""
    return {k: (np.asarray(v).tolist()) for k, v in tree.items()}
