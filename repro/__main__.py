"""`python -m repro experiment=<paper> [key=value ...]`: one run, or a sweep with -m."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import repro.configuration  # noqa: F401 - registers config resolvers


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from repro.run import run

    run(cfg, run_dir=HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
