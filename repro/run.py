"""One run: build data, model, optimizer and loop from the config; train; write the result."""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from hydra.utils import instantiate
from omegaconf import DictConfig

from repro import interfaces, provenance
from repro.checkpoint import Checkpointer
from repro.configuration import config_hash, config_name, run_name, seed_configs, to_dict
from repro.data import DataError, Dataset, load_dataset
from repro.data.transforms import for_data
from repro.facts import static_facts
from repro.lock import run_locks
from repro.loop import Trainer, seed_keys, seed_record
from repro.optim import make_optimizer
from repro.parallel import data_mesh
from repro.provenance import scrub
from repro.results import BadResultFile, read_result, result_path, write_result
from repro.tracking import Tracker
from repro.validation import validate
from repro.warm_start import warm_start
from repro.weights import save_weights, weights_path
from repro.writable import check_writable

log = logging.getLogger(__name__)
for _noisy in ("absl", "jax._src.xla_bridge"):  # orbax/XLA chatter at INFO level
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@functools.lru_cache(maxsize=4)
def _cached_dataset(name, data_dir, validation_size, limit_train, binarize_seed=None, test_redraws=(),
                    tfds_dir=None):
    # Multirun jobs in one process share the decoded data set.
    return load_dataset(name, data_dir, validation_size=validation_size, limit_train=limit_train,
                        binarize_seed=binarize_seed, test_redraws=test_redraws, tfds_dir=tfds_dir)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def dataset_for(cfg: DictConfig) -> Dataset:
    """The data set cfg.data names (decoded once per process and shared by multirun jobs), and
    what `data.derive` makes of it."""
    data = _cached_dataset(cfg.data.name, cfg.data.dir, cfg.data.validation_size, cfg.data.limit_train,
                           cfg.data.binarize.seed, tuple(cfg.data.binarize.test_redraws), cfg.paths.tfds)
    if cfg.data.derive is not None:
        data = instantiate(cfg.data.derive)(data, cfg)
    return data


def _with_run_inputs(node, cfg, data: Dataset, what: str):
    """Instantiate a configured objective or probe, giving its constructor what its class
    declares in `needs`: `data_dir` (the run's data.dir) or `train_split` (the run's training
    split), outside the node's config (a machine's path or the data must not enter the hash)."""
    from hydra.utils import get_class

    cls = get_class(node._target_)
    needs = interfaces.check_needs(cls, what)
    given = {"data_dir": lambda: cfg.data.dir, "train_split": lambda: data.split("train")}
    return instantiate(node, **{name: given[name]() for name in needs if name in given})


def build_trainer(cfg: DictConfig, data: Dataset | None = None,
                  seeds: list[int] | None = None) -> Trainer:
    """Everything a run needs, built from the config; shared by runs, tests and benchmarks
    (which may pass their own `data`). With `seeds`, one model per seed, trained vmapped."""
    data = data if data is not None else dataset_for(cfg)
    keys = [seed_keys(s) for s in seeds] if seeds is not None else seed_keys(cfg.seed)
    models = [instantiate(cfg.model, rngs=nnx.Rngs(k["init"]))
              for k in (keys if seeds is not None else [keys])]
    warm = [warm_start(m, cfg, s) for m, s in zip(models, seeds or [cfg.seed], strict=True)
            ] if cfg.init_from is not None else None
    transforms = for_data(cfg.data, data.fields)
    objective = _with_run_inputs(cfg.objective, cfg, data, "objective")
    probes = [_with_run_inputs(p, cfg, data, "probe") for p in cfg.probes]
    evaluators = [_with_run_inputs(e, cfg, data, "evaluator") for e in cfg.evaluators]
    interfaces.check(models[0], interfaces.Model, "model")
    interfaces.check(objective, interfaces.Objective, "objective")
    for probe in probes:
        interfaces.check(probe, interfaces.Probe, "probe")
    for evaluator in evaluators:
        interfaces.check(evaluator, interfaces.Evaluator, "evaluator")
    phases = list(getattr(objective, "phases", ())) if "phase" in interfaces.check_needs(
        objective, "objective") else []
    if phases and sorted(g.part for g in cfg.optim.groups) != sorted(phases):
        raise ValueError(f"objective {type(objective).__name__} trains the parts {phases} of the model "
                         "in turn: give each its optimizer with optim.groups, e.g. "
                         f"optim.groups=[{','.join('{part:' + p + '}' for p in phases)}]")
    trainer = Trainer(
        models if seeds is not None else models[0],
        make_optimizer(cfg.optim),
        objective,
        transforms,
        data.split("train"),
        {name: data.split(name) for name in cfg.data.eval_splits},
        batch_size=cfg.train.batch_size,
        keys=keys,
        eval_batch_size=cfg.train.eval_batch_size,
        probes=probes,
        evaluators=evaluators,
        sampler=instantiate(cfg.data.sampler) if cfg.data.sampler is not None else None,
        feed=cfg.data.feed or "device",
        mesh=data_mesh(cfg.train.data_parallel),
        seeds=seeds,
    )
    trainer.init_from = warm  # per seed: the run each started from (None: a fresh init)
    return trainer


def _readable(path: Path) -> bool:
    try:
        read_result(path)
        return True
    except BadResultFile:
        return False


class CodeChangedError(RuntimeError):
    """A run would resume from a checkpoint written by other code."""


class DistributedRunError(RuntimeError):
    """A multi-process run lost one of its processes."""


def run(cfg: DictConfig, callbacks: Sequence[Callable] = (), run_dir: str = "outputs"):
    """Train one config to the end (resuming if it was interrupted) and write its result file.

    With seeds=[a, b, ...] the seeds train together, vmapped over a leading seed axis in one jit,
    and each seed's result file is the one a separate run of it writes (name, config, hash).
    Returns the result dict, or for seeds=[...] the list of them, in seed order, with a
    {"skipped": path} entry for each seed that results.if_exists=skip left out."""
    t_start = time.perf_counter()
    validate(cfg)  # before any data is loaded
    members = seed_configs(cfg)  # checks seeds
    stacked = cfg.seeds is not None
    if cfg.distributed and stacked:
        raise ValueError("seeds=[...] (vmapped seeds) with distributed=true is not supported: sweep "
                         "seeds as separate jobs instead, e.g. -m seed=0,1,2")
    if cfg.distributed and not jax.distributed.is_initialized():
        # Reads the cluster (e.g. SLURM) environment. A process that dies stops the others: their
        # next collective fails at once, and they exit after the heartbeat timeout at the latest.
        jax.distributed.initialize(heartbeat_timeout_seconds=cfg.distributed_timeout_s,
                                   shutdown_timeout_seconds=cfg.distributed_timeout_s)
    jax.config.update("jax_default_matmul_precision", str(cfg.precision))
    origin = provenance.collect()  # at the start: the code that runs, not what is there later
    lead = jax.process_index() == 0  # one process locks, logs and writes results
    # One process per run name at a time; the result check below runs under the lock, so a run
    # that finished meanwhile is seen (not trained again and then refused).
    if lead:  # the lock files live beside the checkpoints
        check_writable(Path(cfg.paths.checkpoints) / cfg.experiment_name, "checkpoints",
                       "fix its permissions or point paths.checkpoints elsewhere")
    locks = (run_locks(Path(cfg.paths.checkpoints) / cfg.experiment_name, [run_name(m) for m in members])
             if lead else contextlib.nullcontext())
    with locks:
        outcome, todo = {}, []
        for member in members:  # before any training: skip or refuse seeds that have a result
            path = result_path(cfg.paths.results, cfg.experiment_name, run_name(member))
            if path.exists() and cfg.results.if_exists == "skip" and not _readable(path):
                aside = path.with_name(f"{path.name}.unreadable-{_utc_now().replace(':', '')}")
                path.rename(aside)  # kept for inspection, never silently overwritten
                log.warning("%s is not a readable result file: moved to %s; training seed %d again",
                            path, aside.name, member.seed)
            if path.exists() and cfg.results.if_exists == "skip":
                log.warning("%s exists: skipping seed %d (results.if_exists=skip)", path, member.seed)
                outcome[member.seed] = {"skipped": str(path)}
            elif path.exists() and cfg.results.if_exists != "overwrite":
                write_result(path, {}, if_exists="error")  # raises with the how-to-fix message
            else:
                todo.append(member)
        if todo:
            if lead:
                check_writable(Path(cfg.paths.results) / cfg.experiment_name, "result files",
                               "fix its permissions or point paths.results elsewhere")
            try:
                results = _train(cfg, todo, stacked, origin, callbacks, run_dir, t_start)
            except jax.errors.JaxRuntimeError as err:
                if jax.process_count() == 1:
                    raise
                raise DistributedRunError(
                    f"process {jax.process_index()} of {jax.process_count()}: a collective failed "
                    f"({str(err).splitlines()[0][:200]}): another process of this run has most likely "
                    "died. Start all the processes again: the run resumes from its last checkpoint."
                ) from err
            outcome.update({m.seed: r for m, r in zip(todo, results, strict=True)})
    ordered = [outcome[m.seed] for m in members]
    return ordered if stacked else ordered[0]


def _train(cfg, members, stacked, origin, callbacks, run_dir, t_start) -> list[dict]:
    """Train the seeds of `members` (several only when stacked) and write a result per seed."""
    seeds = [m.seed for m in members]
    names = [run_name(m) for m in members]
    # Stacked seeds share one state tree, so one checkpoint folder for the group.
    name = f"{config_name(cfg)}-seeds{'_'.join(map(str, seeds))}" if stacked else names[0]
    data = dataset_for(cfg)
    if data.partial and not cfg.data.allow_partial:  # before building anything
        raise DataError(
            f"{data.source} is not the full official {data.name} ({data.partial}), so no result from it "
            f"is written by default: numbers from part of the data are not a reproduction. Point "
            f"data.dir (or REPRO_DATA_DIR) at the full official files, or add "
            f"data.allow_partial=true to run anyway (its own config hash, so it never stands in "
            f"for a reproduction; the result file records data_partial).")
    trainer = build_trainer(cfg, data, seeds=seeds if stacked else None)
    state, history, prior = trainer.initial_state, [], {}
    checkpointer = None
    if cfg.train.checkpoint_every:
        checkpointer = Checkpointer(Path(cfg.paths.checkpoints) / cfg.experiment_name / name)
        if cfg.train.resume and checkpointer.latest_step() is not None:
            state, extra = checkpointer.restore(state)
            history, prior = extra["history"], extra["elapsed"]  # timing of the earlier parts
            written_by = extra.get("code_sha256")
            if written_by is not None and written_by != origin["code_sha256"]:
                raise CodeChangedError(
                    f"the checkpoint of {name} was written by other code (code SHA-256 "
                    f"{written_by[:12]}, now {origin['code_sha256'][:12]}): a run whose parts ran "
                    "different code would mix two programs' numbers under one config hash. Restore "
                    "the code it started with, or start over with train.resume=false.")
            log.info("resumed %s from step %d", name, int(np.max(state["step"])))
        elif checkpointer.latest_step() is not None:  # train.resume=false: this run starts over
            log.warning("train.resume=false: deleting the checkpoints of %s at %s and starting over",
                        name, checkpointer.directory)
            checkpointer.close()
            shutil.rmtree(checkpointer.directory)
            checkpointer = Checkpointer(checkpointer.directory)
    part = {"from_step": int(np.max(state["step"])), "started_utc": _utc_now()}
    fit_timing: dict = {}  # this part's, updated by fit as it goes

    def elapsed(step) -> dict:
        """Timing summed over every part of the run (each resume starts a part) up to `step`."""
        total = {k: prior.get(k, 0.0) + fit_timing.get(k, 0.0)
                 for k in ("train_seconds", "eval_seconds", "steps")}
        return {**total, "steps": int(total["steps"]),
                "compile_seconds": prior.get("compile_seconds", 0.0) + trainer.compile_seconds,
                "wall_seconds": prior.get("wall_seconds", 0.0) + time.perf_counter() - t_start,
                "parts": [*prior.get("parts", []), {**part, "to_step": step, "stopped_utc": _utc_now()}]}

    def save_checkpoint(step, state, record):
        if checkpointer and step and (step % cfg.train.checkpoint_every == 0
                                      or step == cfg.train.steps):
            checkpointer.save(step, state, {"history": history, "elapsed": elapsed(step),
                                            "code_sha256": origin["code_sha256"]})

    lead = jax.process_index() == 0  # one process logs and writes the result
    logger_cfg = {**cfg.logger, "group": cfg.logger.group or cfg.experiment_name}
    if not lead:
        logger_cfg["mode"] = "disabled"
    tracker = Tracker(logger_cfg, [to_dict(m) for m in members], names, cfg.train.steps,
                      int(np.max(state["step"])), run_dir, job_type=config_name(cfg),
                      stacked=stacked, show_progress=cfg.progress and lead, desc=name)
    failed = True  # a run that raises (NaN loss, interrupt, any error) ends non-zero in wandb
    try:
        state, history, _ = trainer.fit(
            state, cfg.train.steps, chunk_steps=cfg.train.chunk_steps,
            eval_every=cfg.train.eval_every, history=history,
            callbacks=[save_checkpoint, tracker, *callbacks], timing=fit_timing,
        )
        failed = False
    finally:
        tracker.finish(exit_code=1 if failed else 0)
        if checkpointer:
            checkpointer.close()

    # One timing for the group (the vmapped seeds ran in the same steps), over all its parts.
    timing = elapsed(cfg.train.steps)
    timing.update(steps_per_second=timing["steps"] / max(timing["train_seconds"], 1e-9),
                  vmapped_seeds=seeds if stacked else None)
    facts = static_facts(trainer, state, stacked)
    results = _result_records(cfg, members, names, history, stacked, data, trainer, timing, facts,
                              bool(prior), origin)
    if lead:
        _write_results(cfg, results, state, stacked)
    if checkpointer and not cfg.train.keep_checkpoints:
        shutil.rmtree(checkpointer.directory, ignore_errors=True)
    return results


def _result_records(cfg, members, names, history, stacked, data, trainer, timing, facts, resumed,
                    origin) -> list[dict]:
    """One result dict per seed of `members`: its config, data, history, timing and provenance."""
    results = []
    private = provenance.private_paths(cfg.data.dir)  # machine paths stay out of result files
    for i, member in enumerate(members):
        own = [seed_record(r, i) for r in history] if stacked else history
        final = next(r for r in reversed(own) if any("/" in k and not k.startswith("train/")
                                                      for k in r))
        out_path = result_path(cfg.paths.results, cfg.experiment_name, names[i])
        results.append({
            "experiment": member.experiment_name,
            "name": names[i],
            "tag": member.tag,
            "seed": member.seed,
            "config_hash": config_hash(member),
            "config": scrub(to_dict(member), private),
            "data_source": scrub(data.source, private),
            "data": data.identity(),
            "data_partial": data.partial,
            "final": final,
            "history": own,
            "timing": timing,
            "facts": facts,
            "resumed": resumed,
            "init_from": trainer.init_from[i] if trainer.init_from else None,
            "provenance": origin,
            "weights": weights_path(out_path).name,  # beside it, git-ignored (repro/weights.py)
        })
    return results


def _write_results(cfg, results: list[dict], state, stacked: bool) -> None:
    """Each seed's final weights (its slice of a vmapped state) and, after them, its result file:
    a result file stands for a finished run, so it is written last (a failed weights write
    leaves no result that would mark the run done)."""
    for i, result in enumerate(results):
        out_path = result_path(cfg.paths.results, cfg.experiment_name, result["name"])
        params, rest = state["params"], state["rest"]
        if stacked:
            params, rest = jax.tree.map(lambda x, i=i: x[i], (params, rest))
        save_weights(weights_path(out_path), params, rest)
        write_result(out_path, result, if_exists=cfg.results.if_exists)
        log.info("wrote %s: %s", out_path, {k: round(v, 5) for k, v in result["final"].items()
                                            if isinstance(v, float)})
