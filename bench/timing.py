"""The one timer of the benchmarks: compile time apart, best of a few calls after a warm-up, and
what the step costs in FLOPs (XLA's cost analysis of the compiled chunk) against this machine's
measured matmul peak, so a number says how far from the hardware's limit it is."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp


def best_of(fn: Callable, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls of fn(), after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def flops_of(compiled) -> float | None:
    """FLOPs of one call of a compiled function, by XLA's cost analysis (None if unknown)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


_PEAK: dict[str, float] = {}


def matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an n x n float32 matmul on the default device: the machine's practical peak."""
    key = f"{jax.default_backend()}-{n}"
    if key not in _PEAK:
        a = jnp.ones((n, n), jnp.float32)
        matmul = jax.jit(lambda x: x @ x)
        _PEAK[key] = 2 * n**3 / best_of(lambda: matmul(a), repeats)
    return _PEAK[key]


def time_chunk(trainer, steps: int, repeats: int = 2, phase: str | None = None) -> tuple[dict, dict]:
    """One compiled training chunk of `steps` steps of a Trainer (from build_trainer): compile
    seconds, best seconds per step, FLOPs per step and the fraction of the matmul peak; and the
    state it ends in (the chunks donate theirs, so trainer.initial_state is gone). `phase`: of an
    objective that trains parts of the model in turn, the part to time."""
    state = {"state": trainer.initial_state}
    compile_before = trainer.compile_seconds
    chunk = trainer.chunk_fn(state["state"], steps, phase)
    compile_s = trainer.compile_seconds - compile_before

    def call():
        state["state"], out = chunk(state["state"], trainer.train_data, trainer.keys)
        return out

    per_step = best_of(call, repeats) / steps
    # XLA's cost analysis counts a loop body once, whatever its trip count: a one-step chunk
    # (its loop simplified away) gives the FLOPs of one step.
    flops = flops_of(trainer.chunk_fn(state["state"], 1, phase))
    achieved = flops / per_step if flops else None
    timing = {"compile_seconds": round(compile_s, 2), "ms_per_step": round(1e3 * per_step, 3),
              "gflops_per_step": round(flops / 1e9, 4) if flops else None,
              "gflop_per_second": round(achieved / 1e9, 2) if achieved else None,
              "fraction_of_matmul_peak": round(achieved / matmul_peak(), 3) if achieved else None}
    return timing, state["state"]
