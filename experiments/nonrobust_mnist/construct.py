"""The data sets of Ilyas et al. 2019 ("Adversarial Examples Are Not Bugs, They Are Features",
sec. 3.2): every training image x of label y perturbed by targeted PGD (repro/attacks.py) towards a
target t under a standard model, and stored with the label t. D_det: t = (y + 1) mod C; D_rand: t
uniform. A model trained on them alone is tested on the original test set with the true labels.
Used as `data.derive` (repro/run.py: dataset_for); the standard model is another run of the same
experiment (`source` overrides, seed 0), read from its result file's weights."""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from hydra.utils import instantiate

from repro import attacks, warm_start
from repro.data import DataError
from repro.data.transforms import Normalize, Transforms

log = logging.getLogger(__name__)
TARGETS = ("det", "rand")


def source_model(cfg, source: list[str]):
    """(model, its run name, its weights' SHA-256): the standard model of this experiment that
    `source` names (seed 0), trained earlier into cfg.paths.results."""
    try:
        source_cfg, name, weights = warm_start.source_run(cfg, source, seed=0)
    except FileNotFoundError as missing:  # a data set's input: say so as a data error
        raise DataError(f"{missing} (the standard model this data set is made with)") from None
    model = instantiate(source_cfg.model, rngs=nnx.Rngs(0))
    return model, name, warm_start.load_into(model, weights)


class NonRobustFeatures:
    """data.derive: the train split replaced by its PGD-perturbed images (float32, 0..255 units)
    labelled with their targets; the other splits untouched."""

    def __init__(self, source: list[str], target: str, eps: float, step_size: float, steps: int,
                 norm: str = "l2", chunk: int = 1000, target_seed: int = 0, progress: bool = True):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; known: {TARGETS}")
        self.source, self.target, self.target_seed = list(source), target, target_seed
        self.pgd = {"eps": eps, "step_size": step_size, "steps": steps, "norm": norm}
        self.chunk, self.progress = chunk, progress

    def targets(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        if self.target == "det":
            return attacks.deterministic_targets(labels, num_classes)
        return attacks.random_targets(self.target_seed, len(labels), num_classes)

    def __call__(self, data, cfg):
        model, name, sha = source_model(cfg, self.source)
        train = data.split("train")
        targets = self.targets(train["label"], cfg.data.num_classes)
        logits = attacks.unit_range_logits(model, Transforms([Normalize(cfg.data.mean, cfg.data.std)]))
        adv = attacks.attack_split(attacks.cross_entropy(logits), train["image"].astype(np.float32) / 255.0,
                                   targets,
                                   chunk=self.chunk, desc=f"D_{self.target}", progress=self.progress,
                                   **self.pgd)
        reached = (predictions(logits, adv, self.chunk) == targets).mean()
        log.info("D_%s: %d images, %.1f%% classified as their target by %s", self.target, len(targets),
                 100 * reached, name)
        splits = {**data.splits, "train": {"image": (adv * 255.0).astype(np.float32), "label": targets}}
        described = (f"{data.source}, train split replaced by D_{self.target}: targeted PGD "
                     f"({self.pgd}) under {name}")
        files = {**data.files, f"{name}.weights.npz": {"sha256": sha, "official": False}}
        return dataclasses.replace(data, splits=splits, source=described, files=files)


def predictions(logits_fn, images, chunk: int = 1000) -> np.ndarray:
    """The classes logits_fn gives images in [0, 1], `chunk` at a time."""
    predict = jax.jit(lambda x: jnp.argmax(logits_fn(x), -1))
    return np.concatenate([np.asarray(predict(jnp.asarray(images[i:i + chunk], jnp.float32)))
                           for i in range(0, len(images), chunk)])
