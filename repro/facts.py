"""Static facts about a run's model, written into its result file's `facts` block so a spec row
can judge them like any curve (`metric: facts/parameters`): parameter count and the FLOPs of
evaluating one example, by XLA's own cost analysis of the compiled computation."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def parameter_count(params) -> int:
    """Elements of one model's trainable parameters (nnx.Param leaves)."""
    return int(sum(np.prod(np.shape(leaf)) for leaf in jax.tree.leaves(params)))


def flops_per_example(trainer, params, rest) -> float | None:
    """XLA's FLOP count of the objective's per-example metrics on one example of the first eval
    split (the model's forward pass and its loss), or None where the backend reports none."""
    if not trainer.eval_data:
        return None
    split = next(iter(trainer.eval_data.values()))
    one = {k: v[0, :1] for k, v in split.items()}

    def evaluate(params, rest, batch):
        model = nnx.merge(trainer.graphdef, params, rest)
        return trainer.objective.per_example(model, trainer.transforms(batch, train=False), train=False)

    try:
        cost = jax.jit(evaluate).lower(params, rest, one).compile().cost_analysis()
    except Exception:  # noqa: BLE001 - a backend without cost analysis: the fact is unknown
        return None
    cost = cost[0] if isinstance(cost, list) else cost
    flops = (cost or {}).get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


def static_facts(trainer, state, stacked: bool) -> dict:
    """{parameters, flops_per_example} of one seed's model (all seeds share the architecture)."""
    params, rest = state["params"], state["rest"]
    if stacked:
        params, rest = jax.tree.map(lambda x: x[0], (params, rest))
    return {"parameters": parameter_count(params),
            "flops_per_example": flops_per_example(trainer, params, rest)}
