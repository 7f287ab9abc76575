"""CIFAR-10 ResNet training throughput: the suite's Trainer vs a bare flax/optax loop.

Both train the same model (He et al. recipe: SGD momentum 0.9, L2 1e-4, batch 128, crop+flip on
the device) on synthetic device-resident uint8 data, `--steps` steps per jit call (lax.scan),
in the same process. Compile time is measured apart from run time; run time is the best of
`--repeats` calls after one warm-up call (bench/timing.py), with the suite's FLOPs per step.

    python -m bench.resnet_cifar10                    # ResNet-20 (short: CPU friendly)
    python -m bench.resnet_cifar10 --depths 20 56 110 --steps 100 --repeats 5   # on a GPU

On the shared 2-core CPU (float32): ResNet-20 / 56 / 110 train at 145-207 / 51-67 / 25-33
images/s (0.6-0.9 / 1.9-2.5 / 3.9-5 s per step, with the load), suite / bare 0.95-1.01, compile
4-7 / 9-15 / 23-33 s; see bench/README.md (before the canonical conv gradients of
repro/models/conv.py a ResNet-20 step took 15-60 s).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from hydra.utils import instantiate

from bench.timing import best_of, time_chunk
from repro.configuration import compose
from repro.data import Dataset
from repro.data.transforms import normalize, random_crop_flip
from repro.run import build_trainer


def synthetic_split(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            "label": rng.integers(0, 10, n).astype(np.int32)}


def bench_suite(cfg, data, steps, repeats):
    """The suite's trainer as a run builds it, on the synthetic images: bench.timing.time_chunk."""
    dataset = Dataset(name="cifar10", splits={"train": data, "test": synthetic_split(256, 1)},
                      source="synthetic")
    timing, _ = time_chunk(build_trainer(cfg, dataset), steps, repeats)
    return timing["compile_seconds"], timing["ms_per_step"] * steps / 1e3, timing


def bench_bare(cfg, data, steps, repeats):
    """The hand-written reference: one jit over lax.scan of a value_and_grad step."""
    batch, n = cfg.train.batch_size, len(data["label"])
    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    schedule = optax.piecewise_constant_schedule(0.1, {32000: 0.1, 48000: 0.1})
    tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(schedule, momentum=0.9))
    images, labels = jax.device_put(data["image"]), jax.device_put(data["label"])
    mean, std = tuple(cfg.data.mean), tuple(cfg.data.std)

    def step(carry, i):
        params, rest, opt_state, key = carry
        key, perm_key, aug_key = jax.random.split(key, 3)
        idx = jax.random.choice(perm_key, n, (batch,), replace=False)
        x = normalize(random_crop_flip(aug_key, images[idx]), mean, std)

        def loss_fn(p):
            m = nnx.merge(graphdef, p, jax.tree.map(lambda a: a, rest))  # fresh BN Variables
            logits = m(x, train=True)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx]).mean()
            return loss, nnx.state(m, nnx.BatchStat)

        (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), new_rest, opt_state, key), loss

    def chunk(carry):
        carry, _ = jax.lax.scan(step, carry, jnp.arange(steps))
        return carry

    holder = {"state": (params, rest, tx.init(params), jax.random.key(0))}
    t0 = time.perf_counter()
    compiled = jax.jit(chunk, donate_argnums=0).lower(holder["state"]).compile()
    compile_s = time.perf_counter() - t0

    def call():
        holder["state"] = compiled(holder["state"])
        return holder["state"]

    return compile_s, best_of(call, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20])
    parser.add_argument("--steps", type=int, default=3, help="training steps per jit call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--examples", type=int, default=5120, help="synthetic training images")
    parser.add_argument("--dtype", default="float32", help="model.compute_dtype")
    args = parser.parse_args()
    data = synthetic_split(args.examples)
    print(f"device: {jax.devices()[0].device_kind}, batch 128, {args.steps} steps per call, "
          f"best of {args.repeats}, compute {args.dtype}")
    print(f"{'model':>11} | {'suite img/s':>11} | {'bare img/s':>10} | {'ratio':>5} | "
          f"{'suite compile s':>15} | {'bare compile s':>14}")
    for depth in args.depths:
        cfg = compose(["experiment=resnet_cifar10", "data.eval_splits=[test]", f"model.depth={depth}",
                       f"model.compute_dtype={args.dtype}"])
        images = args.steps * cfg.train.batch_size
        suite_compile, suite_s, timing = bench_suite(cfg, data, args.steps, args.repeats)
        print(f"  ResNet-{depth} suite: compile {suite_compile:.1f} s, {suite_s:.2f} s/call, "
              f"{timing['gflops_per_step']} GFLOP/step, {timing['gflop_per_second']} GFLOP/s = "
              f"{timing['fraction_of_matmul_peak']} of the matmul peak", flush=True)
        bare_compile, bare_s = bench_bare(cfg, data, args.steps, args.repeats)
        print(f"  ResNet-{depth} bare: compile {bare_compile:.1f} s, {bare_s:.2f} s/call", flush=True)
        print(f"{f'ResNet-{depth}':>11} | {images / suite_s:11.1f} | {images / bare_s:10.1f} | "
              f"{bare_s / suite_s:5.2f} | {suite_compile:15.1f} | {bare_compile:14.1f}", flush=True)


if __name__ == "__main__":
    main()
