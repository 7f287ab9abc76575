"""`python -m repro experiment=<paper> [key=value ...]`: one run, or a sweep with -m."""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import repro.configuration  # noqa: F401 - registers config resolvers


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from repro.run import run
    from repro.tracking import sweep_group

    hydra_cfg = HydraConfig.get()
    if cfg.logger.group is None:  # a sweep's jobs share a wandb group (stored in their results)
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        cfg.logger.group = sweep_group(cfg.experiment_name, hydra_cfg.sweep.dir if multirun else None)
    run(cfg, run_dir=hydra_cfg.runtime.output_dir)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    from repro.configuration import check_command_line
    from repro.validation import ConfigError
    from repro.writable import check_hydra_folder

    try:  # before Hydra: its error for a misspelt key does not list the valid ones
        check_command_line(sys.argv[1:])
        check_hydra_folder(sys.argv[1:], Path.cwd())
    except (ConfigError, OSError) as err:
        sys.exit(f"error: {err}")
    main()
