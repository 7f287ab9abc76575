"""The typed config schema: one dataclass per config group, registered in Hydra's ConfigStore as
the base every config composes onto (configs/config.yaml lists it first). Hydra then refuses a
value of the wrong type or outside an enum when the config is composed, before anything loads,
and every key the code reads exists, documented here, with its default.

Keys marked `optional(...)` were added after results were first hashed: their default (None or
False: "not used") is left out of the config hash, so adding such a key never orphans existing
results (repro/configuration.py: config_hash). A new key must be added that way.

The `model` and `objective` groups are the keyword arguments of their `_target_` class, typed by
its signature (checked when it is built); `probes` are such nodes too.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


class OptimizerName(enum.StrEnum):
    sgd = "sgd"
    adam = "adam"
    rmsprop = "rmsprop"


class Schedule(enum.StrEnum):
    constant = "constant"
    piecewise = "piecewise"    # lr * decay_factor at each of `boundaries`
    cosine = "cosine"          # cosine decay to 0 over decay_steps
    exponential = "exponential"  # lr * decay_factor ** (step // decay_steps)


class DecayMask(enum.StrEnum):
    kernels = "kernels"        # matrices and conv kernels (ndim > 1), not biases or BN scales
    all = "all"


class IfExists(enum.StrEnum):
    error = "error"
    skip = "skip"
    overwrite = "overwrite"


class Precision(enum.StrEnum):
    default = "default"
    high = "high"
    highest = "highest"


class LoggerMode(enum.StrEnum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


OPTIONAL: dict[str, Any] = {}  # "<group>.<key>": default left out of the hash (filled below)


def optional(default=None, factory=None):
    """A key added after results were first hashed: at its default it does not enter the hash."""
    if factory is not None:
        return field(default_factory=factory, metadata={"optional": True})
    return field(default=default, metadata={"optional": True})


@dataclass
class BinarizeConfig:
    seed: int | None = None  # 0/1 pixels, each drawn once with this seed (null: not binarized)
    test_redraws: list[int] = field(default_factory=list)  # extra test draws: splits test_redraw<s>


@dataclass
class DataConfig:
    name: str = MISSING               # a record of repro/data/records.py: mnist | cifar10
    dir: str | None = "${paths.data}"  # local mirror folder (null: TFDS)
    # Image data sets: shape and classes (models read them), per-channel normalization of the
    # image fields, 0..255 units: x -> (x - mean) / std (null: none, e.g. token data).
    image_shape: list[int] | None = optional()  # H, W, C
    num_classes: int | None = optional()
    mean: list[float] | None = optional()
    std: list[float] | None = optional()
    augment: str | None = None     # null | crop_flip (random crop of the padded image + flip)
    validation_size: int = 0          # examples held out of train as the 'validation' split
    eval_splits: list[str] = field(default_factory=lambda: ["test"])  # evaluated at each eval
    limit_train: int | None = None  # train on the first N examples only (tests)
    pad: int | None = optional()   # zero padding of the random crop (needed by crop_flip)
    binarize: BinarizeConfig = optional(factory=BinarizeConfig)  # binarized MNIST
    allow_partial: bool = optional(False)  # run on part of a data set (e.g. the CIFAR-10 subset)
    # A data set made from the loaded one: `_target_` names a callable (kwargs here) that returns
    # f(dataset, cfg) -> Dataset, e.g. images relabelled or perturbed by another run's model.
    derive: Any = optional()
    # Batch transforms, `_target_` nodes applied in order (repro/data/transforms.py); empty: the
    # ones augment/pad/mean/std describe.
    transforms: list[Any] = optional(factory=list)
    # Which examples each step sees: null = uniform epochs drawn on the device; else a
    # `_target_` node of repro/data/samplers.py (e.g. ClassBalanced: P classes x K examples).
    sampler: Any = optional()
    # Where the training split lives: null/device = on the device, batches gathered there;
    # host = on the host, each chunk's batches gathered there and sent over (large data).
    feed: str | None = optional()


@dataclass
class OptimConfig:
    name: OptimizerName = MISSING
    lr: float = MISSING
    schedule: Schedule = Schedule.constant
    boundaries: list[int] = field(default_factory=list)  # piecewise: steps where lr is decayed
    decay_factor: float = 0.1                            # piecewise: factor at each boundary
    weight_decay: float = 0.0        # L2 added to the gradient (before momentum)
    decay_steps: int | None = optional()      # cosine: steps to decay to 0
    momentum: float | None = optional()       # sgd (null: none)
    nesterov: bool | None = optional()        # sgd (null: false)
    b1: float | None = optional()             # adam (null: 0.9)
    b2: float | None = optional()             # adam (null: 0.999)
    decay: float | None = optional()          # rmsprop: the squared gradients' moving average (null: 0.9)
    eps: float | None = optional()            # rmsprop: inside the square root, as TensorFlow's (null: 1e-8)
    warmup_steps: int | None = optional()     # constant warmup_lr before this step (null: none)
    warmup_lr: float | None = optional()
    weight_decay_mask: DecayMask | None = optional()  # null: kernels
    grad_clip: float | None = optional()      # clip the gradient's global norm to this (null: no)
    # One optimizer per top-level part of the model: [{part: <name>, <overrides of the keys above>}],
    # e.g. a GAN's [{part: generator}, {part: discriminator, lr: 1e-4}]; an objective with `phases`
    # then says which part each step updates (repro/optim.py: grouped; repro/interfaces.py).
    groups: list[Any] = optional(factory=list)


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 128
    chunk_steps: int = 500           # steps per jit call (lax.scan); metrics read once per chunk
    eval_every: int = 500            # a multiple of chunk_steps
    eval_batch_size: int = 1000
    checkpoint_every: int = 5000     # a multiple of chunk_steps; 0 disables checkpoints
    resume: bool = True              # continue from this run's latest checkpoint if one exists
    keep_checkpoints: bool = False   # delete them once the result file is written
    data_parallel: bool = True       # split each batch over all devices (no-op on one device)


@dataclass
class LoggerConfig:
    mode: LoggerMode | None = None  # null: $WANDB_MODE, else offline
    init_timeout: int = 30             # seconds for wandb to start online before going offline
    project: str = "repro"
    entity: str | None = None
    group: str | None = None        # null: the experiment (a sweep: <experiment>-<sweep dir>)
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    data: str | None = "${oc.env:REPRO_DATA_DIR,null}"  # local mirror folder; null: TFDS
    tfds: str | None = None         # TFDS's data dir (null: ~/tensorflow_datasets)
    results: str = "results"
    checkpoints: str = "checkpoints"


@dataclass
class ResultsConfig:
    if_exists: IfExists = IfExists.error  # when this config and seed already have a result


@dataclass
class Config:
    experiment_name: str = "default"   # results go to <paths.results>/<experiment_name>/
    tag: str = "run"                   # readable part of run names
    seed: int = 0
    seeds: list[int] | None = None  # train these seeds at once, vmapped (instead of seed)
    probes: list[Any] = field(default_factory=list)  # paper-specific measurements (repro.interfaces.Probe)
    # Host-side evaluators (repro.interfaces.Evaluator): jitted predictions, computed on the host.
    evaluators: list[Any] = optional(factory=list)
    precision: Precision = Precision.highest  # matmul precision
    progress: bool = True              # terminal progress bar
    distributed: bool = False          # multi-host: jax.distributed.initialize()
    distributed_timeout_s: int = 60    # multi-host: a process silent this long fails the others
    # Start from the final weights of another run of this experiment (repro/warm_start.py): its
    # overrides ([] names the experiment's own config), taken with this run's seed; init_part: the
    # model attribute they fill (null: the whole model).
    init_from: list[str] | None = optional()
    init_part: str | None = optional()
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=dict)      # kwargs of model._target_ (a repro.interfaces.Model)
    objective: Any = field(default_factory=dict)  # kwargs of objective._target_
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)


def _collect_optional(cls, prefix: str = "") -> None:
    for f in dataclasses.fields(cls):
        if f.metadata.get("optional"):
            has_factory = f.default_factory is not dataclasses.MISSING
            default = f.default_factory() if has_factory else f.default
            is_node = dataclasses.is_dataclass(default)
            OPTIONAL[prefix + f.name] = dataclasses.asdict(default) if is_node else default
        elif isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            _collect_optional(f.default_factory, f"{prefix}{f.name}.")


_collect_optional(Config)


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="repro_schema", node=Config)
