"""One run: build data, model, optimizer and loop from the config; train; write the result."""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
from flax import nnx
from hydra.utils import instantiate
from omegaconf import DictConfig

from repro import provenance
from repro.checkpoint import Checkpointer
from repro.configuration import config_hash, run_name, to_dict
from repro.data import Dataset, load_dataset
from repro.data.pipeline import Preprocessor
from repro.loop import Trainer, seed_keys
from repro.optim import make_optimizer
from repro.parallel import data_mesh
from repro.results import result_path, write_result
from repro.tracking import Tracker

log = logging.getLogger(__name__)
for _noisy in ("absl", "jax._src.xla_bridge"):  # orbax/XLA chatter at INFO level
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@functools.lru_cache(maxsize=4)
def _cached_dataset(name, data_dir, validation_size, limit_train, binarize_seed=None, test_redraws=()):
    # Multirun jobs in one process share the decoded data set.
    return load_dataset(name, data_dir, validation_size=validation_size, limit_train=limit_train,
                        binarize_seed=binarize_seed, test_redraws=test_redraws)


def build_trainer(cfg: DictConfig, data: Dataset | None = None) -> tuple[Trainer, Dataset]:
    """Everything a run needs, built from the config; shared by runs, tests and benchmarks
    (which may pass their own `data`)."""
    keys = seed_keys(cfg.seed)
    if data is None:
        binarize = cfg.data.get("binarize") or {}  # binarized data sets only (see load_dataset)
        data = _cached_dataset(cfg.data.name, cfg.data.dir, cfg.data.validation_size,
                               cfg.data.get("limit_train"), binarize.get("seed"),
                               tuple(binarize.get("test_redraws") or ()))
    model = instantiate(cfg.model, rngs=nnx.Rngs(keys["init"]))
    preprocess = Preprocessor(cfg.data.mean, cfg.data.std, cfg.data.get("augment"),
                              cfg.data.get("pad", 4))
    trainer = Trainer(
        model,
        make_optimizer(cfg.optim),
        instantiate(cfg.objective),
        preprocess,
        data.split("train"),
        {name: data.split(name) for name in cfg.data.eval_splits},
        batch_size=cfg.train.batch_size,
        keys=keys,
        eval_batch_size=cfg.train.eval_batch_size,
        probes=[instantiate(p) for p in cfg.probes],
        mesh=data_mesh(cfg.train.data_parallel),
        unroll=cfg.train.get("unroll", False),
    )
    return trainer, data


def run(cfg: DictConfig, callbacks: Sequence[Callable] = (), run_dir: str = "outputs") -> dict:
    """Train one config/seed to the end (resuming if it was interrupted); return the result."""
    t_start = time.perf_counter()
    if cfg.distributed and not jax.distributed.is_initialized():
        jax.distributed.initialize()  # reads the cluster (e.g. SLURM) environment
    jax.config.update("jax_default_matmul_precision", cfg.precision)
    origin = provenance.collect()  # at the start: the code that runs, not what is there later
    name = run_name(cfg)
    out_path = result_path(cfg.paths.results, cfg.experiment_name, name)
    if out_path.exists() and cfg.results.if_exists == "skip":
        log.warning("%s exists: skipping this run (results.if_exists=skip)", out_path)
        return {"skipped": str(out_path)}
    if out_path.exists() and cfg.results.if_exists != "overwrite":
        write_result(out_path, {}, if_exists="error")  # raises with the how-to-fix message

    trainer, data = build_trainer(cfg)
    state, history, elapsed = trainer.initial_state, [], {}
    checkpointer = None
    if cfg.train.checkpoint_every:
        ckpt_dir = Path(cfg.paths.checkpoints) / cfg.experiment_name / name
        checkpointer = Checkpointer(ckpt_dir)
        if cfg.train.resume and checkpointer.latest_step() is not None:
            state, extra = checkpointer.restore(state)
            history, elapsed = extra["history"], extra["elapsed"]
            log.info("resumed %s from step %d", name, int(state["step"]))

    def save_checkpoint(step, state, record):
        if checkpointer and step and (step % cfg.train.checkpoint_every == 0
                                      or step == cfg.train.steps):
            wall = elapsed.get("wall_seconds", 0.0) + time.perf_counter() - t_start
            checkpointer.save(step, state, {"history": history, "elapsed": {"wall_seconds": wall}})

    lead = jax.process_index() == 0  # one process logs and writes the result
    logger_cfg = cfg.logger if lead else {**cfg.logger, "mode": "disabled"}
    tracker = Tracker(logger_cfg, to_dict(cfg), name, cfg.train.steps, int(state["step"]),
                      run_dir, show_progress=cfg.progress and lead)
    try:
        state, history, timing = trainer.fit(
            state, cfg.train.steps, chunk_steps=cfg.train.chunk_steps,
            eval_every=cfg.train.eval_every, history=history,
            callbacks=[save_checkpoint, tracker, *callbacks],
        )
    finally:
        tracker.finish()
        if checkpointer:
            checkpointer.close()

    final = next(r for r in reversed(history) if any("/" in k and not k.startswith("train/")
                                                      for k in r))
    wall = elapsed.get("wall_seconds", 0.0) + time.perf_counter() - t_start
    timing.update(compile_seconds=trainer.compile_seconds, wall_seconds=wall,
                  steps_per_second=timing["steps"] / max(timing["train_seconds"], 1e-9))
    result = {
        "experiment": cfg.experiment_name,
        "name": name,
        "tag": cfg.tag,
        "seed": cfg.seed,
        "config_hash": config_hash(cfg),
        "config": to_dict(cfg),
        "data_source": data.source,
        "final": final,
        "history": history,
        "timing": timing,
        "resumed": bool(elapsed),
        "provenance": origin,
    }
    if lead:
        write_result(out_path, result, if_exists=cfg.results.if_exists)
    if checkpointer and not cfg.train.keep_checkpoints:
        shutil.rmtree(checkpointer.directory, ignore_errors=True)
    log.info("wrote %s: %s", out_path, {k: round(v, 5) for k, v in final.items()
                                        if isinstance(v, float)})
    return result
