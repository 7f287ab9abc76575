"""Cost of a reparameterized mixture sample (experiments/mixture_backprop/mixture.py) against a plain Gaussian
reparameterized sample, per sample and per gradient, on this machine:

    python -m experiments.mixture_backprop.bench [--batch 10000] [--components 5] [--dims 8]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from bench.timing import best_of
from experiments.mixture_backprop import mixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, k = args.batch, args.components
    print(f"{n} samples per call, K = {k}; microseconds per sample (best of {args.repeats})")
    print("| D | gaussian sample | mixture sample | gaussian gradient | mixture gradient | gradient ratio |")
    print("|---|---|---|---|---|---|")
    for d in args.dims:
        keys = jax.random.split(jax.random.key(0), 3)
        logits = jax.random.normal(keys[0], (n, k))
        means, log_scales = jax.random.normal(keys[1], (n, k, d)), 0.1 * jax.random.normal(keys[2], (n, k, d))

        def gaussian(params, key):
            _, m, s = params
            return m[:, 0] + jnp.exp(s[:, 0]) * jax.random.normal(key, m[:, 0].shape)

        def mix(params, key):
            return mixture.sample(key, *params)

        times, params, key = [], (logits, means, log_scales), jax.random.key(1)
        for fn in (gaussian, mix):
            sample = jax.jit(fn)
            grad = jax.jit(jax.grad(lambda p, key, fn=fn: (fn(p, key) ** 2).sum()))
            times.append((best_of(lambda s=sample, p=params, k=key: s(p, k), args.repeats),
                          best_of(lambda g=grad, p=params, k=key: g(p, k), args.repeats)))
        (gs, gg), (ms, mg) = times
        us = 1e6 / n
        print(f"| {d} | {gs * us:.3f} | {ms * us:.3f} | {gg * us:.3f} | {mg * us:.3f} | {mg / gg:.1f}x |")


if __name__ == "__main__":
    main()
