"""How well the standard model's targeted attack works (Ilyas et al. 2019 need it to: D_det and
D_rand are only as 'mislabelled' as the attack is successful)."""

from __future__ import annotations

import jax.numpy as jnp

from repro import attacks


class TargetedAttack:
    """Final only: targeted PGD towards (y + 1) mod C on the first `num` test images. Returns
    `attack_target_rate` (classified as the target), `attack_accuracy` (still the true class) and
    `attack_mean_l2` (mean perturbation norm, in [0, 1] pixel units)."""

    final_only = True

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "l2", num: int = 1000,
                 split: str = "test", num_classes: int = 10):
        self.pgd = {"eps": eps, "step_size": step_size, "steps": steps, "norm": norm}
        self.num, self.split, self.num_classes = num, split, num_classes

    def __call__(self, model, eval_data, transforms) -> dict:
        split = eval_data[self.split]
        images = split["image"].reshape(-1, *split["image"].shape[2:])[: self.num].astype(jnp.float32)
        labels = split["label"].reshape(-1)[: self.num]
        targets = (labels + 1) % self.num_classes
        x01 = images / 255.0
        logits = attacks.unit_range_logits(model, transforms)
        adv = attacks.pgd(attacks.cross_entropy(logits), x01, targets, **self.pgd)
        predicted = jnp.argmax(logits(adv), -1)
        norms = jnp.sqrt(((adv - x01) ** 2).reshape(len(labels), -1).sum(-1))
        return {"attack_target_rate": (predicted == targets).mean(),
                "attack_accuracy": (predicted == labels).mean(), "attack_mean_l2": norms.mean()}
