"""What runs at an evaluation of the loop: a list of evaluators behind one call.

Three kinds serve every paper:

- `SplitMeans`: the objective's per-example metrics averaged over the real examples of each
  eval split, inside jit (`<split>/<metric>`), at every evaluation;
- `Probes`: paper-specific measurements inside jit (`probe/<name>`; repro.interfaces.Probe),
  at every evaluation or, with `final_only`, the last;
- `HostEvaluators`: configured `evaluators:` (repro.interfaces.Evaluator): a jitted `predict`
  over the batches of one split, then `compute` on the host with the split's raw fields
  (pycocotools AP, NDCG, verification accuracy) -> `<split>/<name>`.

Each takes (params, rest, final) and returns {name: value}, with a leading seed axis when seeds
are trained vmapped (host evaluators compute each seed apart and stack the values).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from repro.data.fields import split_size
from repro.parallel import shard_batch


def pad_for_eval(split: dict[str, np.ndarray], batch_size: int):
    """Every field (N, ...) -> (num_batches, batch_size, ...), zero-padded, plus `batch_mask`:
    1 for a real example, 0 for padding."""
    n = split_size(split)
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)
    pad = num_batches * batch_size - n

    def reshape(a):
        a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)]) if pad else a
        return a.reshape(num_batches, batch_size, *a.shape[1:])

    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return {**{name: reshape(v) for name, v in split.items()},
            "batch_mask": mask.reshape(num_batches, batch_size)}


class SplitMeans:
    """The objective's per-example metrics, masked means over each eval split's real examples."""

    def __init__(self, graphdef, objective, transforms, eval_data, mesh, stacked: bool):
        self.graphdef, self.objective, self.transforms, self.mesh = graphdef, objective, transforms, mesh
        self.eval_data = eval_data
        fn = jax.vmap(self._split_means, in_axes=(0, 0, None)) if stacked else self._split_means
        self._fn = jax.jit(fn)

    def _split_means(self, params, rest, split):
        model = nnx.merge(self.graphdef, params, rest)

        def body(_, batch):
            batch = self.transforms({k: shard_batch(v, self.mesh) for k, v in batch.items()}, train=False)
            metrics = self.objective.per_example(model, batch, train=False)
            return None, {k: (v * batch["batch_mask"]).sum() for k, v in metrics.items()}

        _, sums = jax.lax.scan(body, None, split)
        count = split["batch_mask"].sum()
        return {k: v.sum() / count for k, v in sums.items()}

    def __call__(self, params, rest, final: bool) -> dict:
        return {f"{name}/{k}": v for name, split in self.eval_data.items()
                for k, v in self._fn(params, rest, split).items()}


class Probes:
    """Probes (every evaluation, or only the final one for `final_only` probes), in one jit each."""

    def __init__(self, graphdef, probes, transforms, eval_data, stacked: bool, keys):
        self.graphdef, self.transforms, self.eval_data = graphdef, transforms, eval_data
        # Per seed (a leading axis when stacked): probes that declare "key" get their seed's.
        self.keys = keys
        # Each probe keeps its index in `probes:` (its key is the seed's folded with it).
        every = [(i, p) for i, p in enumerate(probes) if not getattr(p, "final_only", False)]
        final = [(i, p) for i, p in enumerate(probes) if getattr(p, "final_only", False)]
        self._fns = [(bool(group and is_final), self._jitted(group, stacked))
                     for is_final, group in ((False, every), (True, final)) if group]

    def _jitted(self, probes, stacked):
        def run(params, rest, data, key, arrays):
            model = nnx.merge(self.graphdef, params, rest)
            out = {}
            for i, probe in probes:
                needs = getattr(probe, "needs", ())
                extra = {"key": jax.random.fold_in(key, i)} if "key" in needs else {}
                if "arrays" in needs:
                    extra["arrays"] = arrays[i]
                out.update(probe(model, data, self.transforms, **extra))
            return out

        # The probes' own arrays (needs "arrays") go in as arguments: a closed-over array would be
        # compiled into the program as a constant (a training split: tens of MB per compile).
        arrays = {i: jax.device_put(p.arrays) for i, p in probes if "arrays" in getattr(p, "needs", ())}
        fn = jax.jit(jax.vmap(run, in_axes=(0, 0, None, 0, None)) if stacked else run)
        return lambda params, rest, data, key: fn(params, rest, data, key, arrays)

    def __call__(self, params, rest, final: bool) -> dict:
        out = {}
        for final_only, fn in self._fns:
            if final or not final_only:
                out.update({f"probe/{k}": v for k, v in fn(params, rest, self.eval_data, self.keys).items()})
        return out


class HostEvaluators:
    """Configured evaluators: `predict(model, batch)` jitted and scanned over the batches of the
    evaluator's split (transformed as at evaluation), read back once, padding dropped, then
    `compute(predictions, examples)` on the host with the split's raw (untransformed) fields."""

    def __init__(self, graphdef, evaluators, transforms, eval_data, host_splits, mesh, stacked: bool):
        self.graphdef, self.transforms, self.mesh, self.stacked = graphdef, transforms, mesh, stacked
        self.eval_data, self.host_splits = eval_data, host_splits
        self.evaluators = list(evaluators)
        for ev in self.evaluators:
            if ev.split not in eval_data:
                raise ValueError(f"evaluator {type(ev).__name__} reads split {ev.split!r}, which is not "
                                 f"evaluated: add it to data.eval_splits (now {sorted(eval_data)})")
        self._fns = [jax.jit(jax.vmap(self._predictor(ev), in_axes=(0, 0, None)) if stacked
                             else self._predictor(ev)) for ev in self.evaluators]

    def _predictor(self, ev):
        def predict(params, rest, split):
            model = nnx.merge(self.graphdef, params, rest)

            def body(_, batch):
                batch = self.transforms({k: shard_batch(v, self.mesh) for k, v in batch.items()},
                                        train=False)
                return None, ev.predict(model, batch)

            return jax.lax.scan(body, None, split)[1]

        return predict

    def __call__(self, params, rest, final: bool) -> dict:
        out = {}
        for ev, fn in zip(self.evaluators, self._fns, strict=True):
            if getattr(ev, "final_only", False) and not final:
                continue
            examples = self.host_splits[ev.split]
            n = split_size(examples)
            predictions = jax.device_get(fn(params, rest, self.eval_data[ev.split]))
            lead = 1 if self.stacked else 0  # [seeds,] num_batches, batch, ... -> [seeds,] n, ...
            flat = {k: v.reshape(*v.shape[:lead], -1, *v.shape[lead + 2:])[(slice(None),) * lead + (
                slice(0, n),)] for k, v in predictions.items()}
            if self.stacked:
                seeds = next(iter(flat.values())).shape[0]
                per_seed = [ev.compute({k: v[s] for k, v in flat.items()}, examples) for s in range(seeds)]
                values = {k: np.asarray([r[k] for r in per_seed]) for k in per_seed[0]}
            else:
                values = ev.compute(flat, examples)
            out.update({f"{ev.split}/{k}": v for k, v in values.items()})
        return out
