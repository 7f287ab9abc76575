"""Static facts about a run's model, written into its result file's `facts` block so a spec row
can judge them like any curve (`metric: facts/parameters`): parameter count and the FLOPs of
evaluating one example, by XLA's own cost analysis of the compiled computation. Also the
multiply-adds of a function's convolutions and matrix products, the count papers quote."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from jax.extend import core as jax_core


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


def multiply_adds(fn, *args) -> int:
    """Multiply-adds of fn(*args) in its convolutions and matrix products (the count papers and
    model zoos quote: no batch norm, activations or pooling), read off the traced computation
    from the shapes alone, nothing computed. A scan's body counts once per iteration."""
    return _jaxpr_multiply_adds(jax.make_jaxpr(fn)(*args).jaxpr)


def _jaxpr_multiply_adds(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            out, kernel = eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape
            out_features = kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
            # each output element: kernel height x width x input channels of its group
            total += int(np.prod(out)) * int(np.prod(kernel)) // out_features
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in contract]))
        times = eqn.params.get("length", 1) if name == "scan" else 1
        for sub in jax_core.jaxprs_in_params(eqn.params):
            total += times * _jaxpr_multiply_adds(sub)
    return total
