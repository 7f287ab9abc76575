"""The shared loop vs a bare lax.scan MLP loop, on the BN-MNIST workload (Ioffe & Szegedy, Fig. 1).

Both do the same work: 784-100-100-100-10 sigmoid MLP, batch 60, plain SGD, batches gathered on
the device from a per-epoch permutation of 60k device-resident uint8 images, no evaluation.
Timed in the same process, interleaved, best of `--repeats`; compile time is excluded.

    python -m bench.bn_mnist_loop [--steps 50000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from repro.configuration import compose
from repro.data import Dataset
from repro.run import build_trainer

N, BATCH, SIZES = 60_000, 60, (784, 100, 100, 100, 10)


def synthetic_mnist(seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (N, 28, 28, 1), dtype=np.uint8),
            "label": rng.integers(0, 10, N).astype(np.int32)}


def bare_loop(data, steps: int, lr=0.1, chunk=1000):
    """The reference: plain jnp MLP, hand-written SGD, one permutation per 1000-step epoch."""
    keys = jax.random.split(jax.random.key(0), len(SIZES))
    params = [(0.1 * jax.random.normal(k, (a, b)), jnp.zeros(b))
              for k, a, b in zip(keys, SIZES[:-1], SIZES[1:], strict=False)]

    def loss(params, x, y):
        h = x.reshape(x.shape[0], -1).astype(jnp.float32) / 255.0
        for w, b in params[:-1]:
            h = jax.nn.sigmoid(h @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(h @ w + b, y).mean()

    def epoch(params, images, labels, key):
        idx = jax.random.permutation(key, N)[: chunk * BATCH].reshape(chunk, BATCH)

        def step(params, i):
            value, grads = jax.value_and_grad(loss)(params, images[i], labels[i])
            return jax.tree.map(lambda p, g: p - lr * g, params, grads), value

        params, losses = jax.lax.scan(step, params, idx)
        return params, losses.mean()

    run = jax.jit(epoch, donate_argnums=0)
    images, labels = jax.device_put(data["image"]), jax.device_put(data["label"])
    compiled = run.lower(params, images, labels, keys[0]).compile()
    t0 = time.perf_counter()
    for e in range(steps // chunk):
        params, value = compiled(params, images, labels, jax.random.fold_in(keys[0], e))
        float(value)  # one host sync per chunk, like the suite
    return time.perf_counter() - t0


def suite_loop(data, steps: int, batchnorm: bool, chunk=500):
    """The bn_mnist experiment's own trainer (model, optimizer, pipeline), on the same data."""
    cfg = compose(["experiment=bn_mnist", f"model.batchnorm={batchnorm}"])
    test = {k: v[:1000] for k, v in data.items()}
    dataset = Dataset("synthetic-mnist", {"train": data, "test": test}, 10, "synthetic")
    trainer = build_trainer(cfg, dataset)
    trainer.chunk_fn(trainer.initial_state, chunk)  # compile outside the timed region
    t0 = time.perf_counter()
    trainer.fit(trainer.initial_state, steps, chunk_steps=chunk, eval_every=steps)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = synthetic_mnist()
    print(f"device: {jax.devices()[0].device_kind}, steps: {args.steps}, batch {BATCH}")
    best = {"bare": float("inf"), "suite (no BN)": float("inf"), "suite (BN)": float("inf")}
    for _ in range(args.repeats):
        best["bare"] = min(best["bare"], bare_loop(data, args.steps))
        best["suite (no BN)"] = min(best["suite (no BN)"], suite_loop(data, args.steps, False))
        best["suite (BN)"] = min(best["suite (BN)"], suite_loop(data, args.steps, True))
    print(f"{'loop':<16}{'seconds':>10}{'steps/s':>10}{'vs bare':>9}")
    for name, seconds in best.items():
        print(f"{name:<16}{seconds:>10.2f}{args.steps / seconds:>10.0f}{seconds / best['bare']:>8.3f}x")


if __name__ == "__main__":
    main()
