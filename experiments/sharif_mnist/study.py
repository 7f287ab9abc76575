"""The measurable half of Sharif, Bauer & Reiter 2018 ("On the Suitability of Lp-norms for Creating
and Preventing Adversarial Examples", CVPR workshops): two final-only host evaluators
(repro.interfaces.Evaluator) on a trained ConvNetEnsemble (ensemble.py).

- NaturalChanges: "Lp-closeness is not necessary". Each configured small change (changes.py) of
  every image of the split: its L0, L2, L-inf distance and SSIM to the original, the fraction of
  images it takes beyond each attack budget, and whether the models keep their decision.
- BudgetAttacks: "Lp-closeness is not sufficient", as far as models can say. Untargeted PGD
  (repro/attacks.py) on the reference model (member 0) inside each budget; how often it changes
  the reference's decision and the decisions of the models that were not attacked (a model's
  judgment is not a person's: these rates say what independently trained classifiers see, no
  more); the pairs' distances and SSIM; and, paired image by image with one natural change, how
  often SSIM and the attack's own norm order the two pairs oppositely.

Images reach `predict` normalized by the run's transforms; `mean` and `std` (the data config's,
0..255 units) turn them back into [0, 1], where changes, attacks and distances are defined.
Distances and decisions are computed on the device; SSIM (scikit-image) on the host. A changed
image is rendered as an 8-bit image before SSIM, as the originals are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from repro import attacks

from . import changes as changes_lib

NORMS = changes_lib.NORMS


class _Unit:
    """[0, 1] images from the run's normalized ones and back (per channel mean/std, 0..255)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    def to_unit(self, x):
        return (x * self.std + self.mean) / 255.0

    def from_unit(self, x):
        return (x * 255.0 - self.mean) / self.std


def _decisions(model, unit: _Unit, x01):
    """Every member's class for images in [0, 1]: [B, members]."""
    return jnp.argmax(model(unit.from_unit(x01)), -1).T


def _check_budgets(budgets: dict) -> dict:
    unknown = sorted(set(budgets) - set(NORMS))
    if unknown or not budgets:
        raise ValueError(f"budgets are given per norm in {NORMS}: got {dict(budgets)}")
    return {norm: float(eps) for norm, eps in budgets.items()}


def _median(x) -> float:
    return float(np.median(np.asarray(x)))


class NaturalChanges:
    """Per change c: `c_l0`, `c_l2`, `c_linf` (medians over the split), `c_ssim` (mean), `c_beyond_<norm>`
    (fraction of images beyond that budget), `c_beyond_all` (beyond every budget), `c_kept` (the
    reference keeps its decision) and `c_judges_kept` (the other members do, on average)."""

    final_only = True

    def __init__(self, changes: Sequence[dict], budgets: dict, mean: Sequence[float], std: Sequence[float],
                 split: str = "test"):
        changes_lib.check(changes)
        self.changes, self.budgets, self.split = [dict(c) for c in changes], _check_budgets(budgets), split
        self.unit = _Unit(mean, std)

    def predict(self, model, batch):
        x = self.unit.to_unit(batch["image"])
        out = {"clean": _decisions(model, self.unit, x)}
        for change in self.changes:
            changed = changes_lib.apply(x, change)
            for norm, value in changes_lib.distances(x, changed).items():
                out[f"{change['name']}/{norm}"] = value
            out[f"{change['name']}/decision"] = _decisions(model, self.unit, changed)
            out[f"{change['name']}/image"] = jnp.round(changed * 255.0).astype(jnp.uint8)
        return out

    def compute(self, predictions, examples) -> dict[str, float]:
        original = np.asarray(examples["image"], np.float64) / 255.0
        clean, out = predictions["clean"], {}
        for change in self.changes:
            name = change["name"]
            beyond = {norm: predictions[f"{name}/{norm}"] > eps for norm, eps in self.budgets.items()}
            kept = predictions[f"{name}/decision"] == clean
            out.update({f"{name}_{norm}": _median(predictions[f"{name}/{norm}"]) for norm in NORMS})
            ssim = changes_lib.ssim(original, predictions[f"{name}/image"] / 255.0)
            out[f"{name}_ssim"] = float(ssim.mean())
            out.update({f"{name}_beyond_{norm}": float(b.mean()) for norm, b in beyond.items()})
            out[f"{name}_beyond_all"] = float(np.logical_and.reduce(list(beyond.values())).mean())
            out[f"{name}_kept"] = float(kept[:, 0].mean())
            out[f"{name}_judges_kept"] = float(kept[:, 1:].mean())
        return out


@dataclasses.dataclass(frozen=True)
class Attack:
    """Untargeted PGD inside one budget: `eps` of `norm` (L0: whole pixels)."""

    name: str
    norm: str
    eps: float
    step_size: float
    steps: int

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"attack {self.name!r}: unknown norm {self.norm!r}; known: {NORMS}")


class BudgetAttacks:
    """Untargeted PGD on the reference model inside the budget of each attack's norm. Per attack a:
    `a_changed` (the reference's decision changed), `a_judges_changed` (the other
    members', on average over them), `a_all_judges_changed` (every other member's), `a_within`
    (fraction inside its budget: 1 unless the attack is broken), `a_l0`, `a_l2`, `a_linf` (medians),
    `a_ssim` (mean), and against the natural change `pair_with` of the same image:
    `a_ssim_prefers_change` (SSIM finds the changed image closer than the attacked one),
    `a_norm_prefers_attack` (the attack's own norm finds the attacked image closer) and
    `a_disagree` (both at once: SSIM and the norm order the two pairs oppositely)."""

    final_only = True

    def __init__(self, attacks: Sequence[dict], budgets: dict, pair_with: dict, mean: Sequence[float],
                 std: Sequence[float], split: str = "study"):
        budgets = _check_budgets(budgets)
        missing = sorted({a["norm"] for a in attacks} - set(budgets))
        if missing:
            raise ValueError(f"attacks in {missing} have no budget: give one in budgets (now {budgets})")
        self.attacks = [Attack(**dict(a), eps=budgets[a["norm"]]) for a in attacks]
        if len({a.name for a in self.attacks}) != len(self.attacks):
            raise ValueError(f"attack names must differ: {[a.name for a in self.attacks]}")
        changes_lib.check([pair_with])
        self.pair_with, self.split, self.unit = dict(pair_with), split, _Unit(mean, std)

    def _attacked(self, model, x, labels, attack: Attack):
        logits = lambda images: model.reference(self.unit.from_unit(images))
        return attacks.pgd(attacks.cross_entropy(logits), x, labels, eps=attack.eps,
                           step_size=attack.step_size, steps=attack.steps, norm=attack.norm, targeted=False)

    def predict(self, model, batch):
        x, labels = self.unit.to_unit(batch["image"]), batch["label"]
        changed = changes_lib.apply(x, self.pair_with)
        out = {"clean": _decisions(model, self.unit, x), "change/image": changed,
               "change/decision": _decisions(model, self.unit, changed)}
        out.update({f"change/{n}": v for n, v in changes_lib.distances(x, changed).items()})
        for attack in self.attacks:
            adv = self._attacked(model, x, labels, attack)
            out[f"{attack.name}/image"] = adv
            out[f"{attack.name}/decision"] = _decisions(model, self.unit, adv)
            out.update({f"{attack.name}/{n}": v for n, v in changes_lib.distances(x, adv).items()})
        return out

    def compute(self, predictions, examples) -> dict[str, float]:
        original = np.asarray(examples["image"], np.float64) / 255.0
        clean, out = predictions["clean"], {}
        change_ssim = changes_lib.ssim(original, np.round(predictions["change/image"] * 255.0) / 255.0)
        for attack in self.attacks:
            name = attack.name
            changed = predictions[f"{name}/decision"] != clean
            ssim = changes_lib.ssim(original, predictions[f"{name}/image"])
            # a float32 perturbation at its bound may overshoot it by rounding: allow 1e-5 relative
            size = predictions[f"{name}/{attack.norm}"]
            out[f"{name}_within"] = float((size <= attack.eps * (1 + 1e-5)).mean())
            out[f"{name}_changed"] = float(changed[:, 0].mean())
            out[f"{name}_judges_changed"] = float(changed[:, 1:].mean())
            out[f"{name}_all_judges_changed"] = float(changed[:, 1:].all(-1).mean())
            out.update({f"{name}_{norm}": _median(predictions[f"{name}/{norm}"]) for norm in NORMS})
            out[f"{name}_ssim"] = float(ssim.mean())
            ssim_prefers = change_ssim > ssim
            norm_prefers_attack = size < predictions[f"change/{attack.norm}"]
            out[f"{name}_ssim_prefers_change"] = float(ssim_prefers.mean())
            out[f"{name}_norm_prefers_attack"] = float(norm_prefers_attack.mean())
            out[f"{name}_disagree"] = float((ssim_prefers & norm_prefers_attack).mean())
        return out


class Panel(BudgetAttacks):
    """For the figure only (experiments/sharif_mnist/panel.py): the first `show` images of the split,
    each with its natural change and its attacked versions, and their distances, SSIM and decisions."""

    def __init__(self, *args, show: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        self.show = show

    def compute(self, predictions, examples) -> dict:
        n = self.show
        original = np.asarray(examples["image"][:n], np.float64) / 255.0
        rows = [("change", np.round(np.asarray(predictions["change/image"][:n]) * 255.0) / 255.0)]
        rows += [(a.name, np.asarray(predictions[f"{a.name}/image"][:n], np.float64)) for a in self.attacks]
        out = {"original": original[..., 0].round(4).tolist(), "label": examples["label"][:n].tolist(),
               "clean": np.asarray(predictions["clean"][:n]).tolist()}
        for name, images in rows:
            d = {k: np.asarray(v).tolist() for k, v in changes_lib.distances(original, images).items()}
            out[name] = {"image": images[..., 0].round(4).tolist(), **d,
                         "ssim": changes_lib.ssim(original, images).tolist(),
                         "decision": np.asarray(predictions[f"{name}/decision"][:n]).tolist()}
        return out


class StudySplit:
    """data.derive: adds split `name`, the first `size` images of split `source` (the attacks'
    images: PGD on all 10,000 test images would take most of a run's time on 2 cores)."""

    def __init__(self, size: int, source: str = "test", name: str = "study"):
        if size < 1:
            raise ValueError(f"StudySplit size must be at least 1, got {size}")
        self.size, self.source, self.name = size, source, name

    def __call__(self, data, cfg):
        split = data.split(self.source)
        n = len(next(iter(split.values())))
        if self.size > n:
            raise ValueError(f"StudySplit: {self.size} images asked of split {self.source!r}, which has {n}")
        splits = {**data.splits, self.name: {k: v[: self.size] for k, v in split.items()}}
        return dataclasses.replace(data, splits=splits,
                                   source=f"{data.source}; {self.name} = the first {self.size} "
                                          f"{self.source} images")
