"""Experiment tracking: wandb (offline unless asked) plus a terminal progress bar."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from repro.loop import seed_record

log = logging.getLogger(__name__)


def sweep_group(experiment_name: str, sweep_dir: str | None) -> str:
    """The default wandb group: one per sweep (<experiment>-<sweep dir name>, e.g.
    bn_mnist-2026-01-20_12-00-00), so a sweep's runs sit together apart from other sweeps of
    that experiment; a single run goes to the experiment's group."""
    return f"{experiment_name}-{Path(sweep_dir).name}" if sweep_dir else experiment_name


WANDB_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
               "disabled": "disabled"}


def resolve_mode(configured: str | None) -> str:
    """logger.mode if set (it wins), else $WANDB_MODE, else offline: runs never need a network
    unless asked, and a user's usual WANDB_MODE applies when the config leaves it open."""
    if configured:
        return str(configured)  # a schema enum: plain text for wandb
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env and env not in WANDB_MODES:
        raise ValueError(f"WANDB_MODE={env!r} is not a wandb mode; use online, offline or disabled")
    return WANDB_MODES.get(env, "offline")


def _init_run(wandb, mode: str, timeout: float, **kwargs):
    """wandb.init; an online run that cannot reach the server goes on offline (before training,
    so no work is lost) instead of failing."""
    if mode != "online":
        return wandb.init(mode=mode, **kwargs)
    try:
        return wandb.init(mode="online", settings=wandb.Settings(init_timeout=timeout), **kwargs)
    except Exception as err:  # noqa: BLE001 - no network, bad key, server down: all the same here
        log.warning("wandb online failed (%s: %s); logging offline instead (sync later with "
                    "`wandb sync`)", type(err).__name__, str(err)[:200])
        return wandb.init(mode="offline", **kwargs)


class Tracker:
    """Logs each chunk's record to wandb and advances a progress bar showing steps/s.

    One wandb run per seed, named and configured as a separate run of that seed. For vmapped
    seeds (stacked=True: every record value has a leading seed axis) each seed's run gets its
    slice, so wandb groups and averages them like separately trained seeds; the job type is the
    config without its seed, so each config's seeds group together within the sweep's group.
    """

    def __init__(self, logger_cfg, configs: list[dict], names: list[str], total_steps: int,
                 start_step: int, run_dir: str, *, job_type: str | None = None, stacked: bool = False,
                 show_progress: bool = True, desc: str | None = None):
        self.stacked, self.runs = stacked, []
        mode = resolve_mode(logger_cfg.get("mode"))
        if mode != "disabled":
            import wandb

            for i, (name, config) in enumerate(zip(names, configs, strict=True)):
                self.runs.append(_init_run(
                    wandb, mode, logger_cfg.get("init_timeout") or 30,
                    project=logger_cfg["project"],
                    entity=logger_cfg.get("entity"),
                    group=logger_cfg.get("group"),
                    job_type=job_type,
                    name=name,
                    dir=run_dir,
                    config=config,
                    tags=list(logger_cfg.get("tags") or []),
                    # Close a run a crashed job left open, but keep this group's earlier seeds.
                    reinit="finish_previous" if i == 0 else "create_new",
                ))
        self.num_seeds = len(names)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not show_progress, desc=desc or names[0])
        self.last_step = start_step

    def __call__(self, step: int, state, record: dict) -> None:
        records = ([seed_record(record, i) for i in range(self.num_seeds)] if self.stacked
                   else [record])
        scalars = [{k: v for k, v in r.items() if isinstance(v, (int, float)) and k != "step"}
                   for r in records]
        for run, values in zip(self.runs, scalars, strict=False):
            run.log(values, step=step)
        self.bar.update(step - self.last_step)
        self.last_step = step
        # Vmapped seeds: the bar shows the mean over seeds.
        shown = {k.split("/", 1)[-1] if k.startswith("train/") else k:
                 f"{np.mean([s[k] for s in scalars]):.4g}"
                 for k in scalars[0] if k.endswith(("loss", "accuracy"))}
        self.bar.set_postfix(shown, refresh=False)

    def finish(self, exit_code: int = 0) -> None:
        """Close the bar and every wandb run; exit_code != 0 marks the runs failed in wandb."""
        self.bar.close()
        for run in self.runs:
            run.finish(exit_code=exit_code)  # needed per job, or multirun jobs merge into one wandb run
        self.runs = []
