"""Experiment tracking: wandb (offline unless asked) plus a terminal progress bar."""

from __future__ import annotations

from tqdm.auto import tqdm


class Tracker:
    """Logs each chunk's record to wandb and advances a progress bar showing steps/s."""

    def __init__(self, logger_cfg, config: dict, name: str, total_steps: int, start_step: int,
                 run_dir: str, show_progress: bool = True):
        self.run = None
        if logger_cfg["mode"] != "disabled":
            import wandb

            self.run = wandb.init(
                project=logger_cfg["project"],
                entity=logger_cfg.get("entity"),
                group=logger_cfg.get("group"),
                name=name,
                mode=logger_cfg["mode"],
                dir=run_dir,
                config=config,
                tags=list(logger_cfg.get("tags") or []),
                reinit="finish_previous",
            )
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not show_progress, desc=name)
        self.last_step = start_step

    def __call__(self, step: int, state, record: dict) -> None:
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self.run is not None:
            self.run.log(scalars, step=step)
        self.bar.update(step - self.last_step)
        self.last_step = step
        shown = {k.split("/", 1)[-1] if k.startswith("train/") else k: f"{v:.4g}"
                 for k, v in scalars.items() if k.endswith(("loss", "accuracy"))}
        self.bar.set_postfix(shown, refresh=False)

    def finish(self, summary: dict | None = None) -> None:
        self.bar.close()
        if self.run is not None:
            if summary:
                self.run.summary.update(summary)
            self.run.finish()  # needed per job, or multirun jobs merge into one wandb run
            self.run = None
