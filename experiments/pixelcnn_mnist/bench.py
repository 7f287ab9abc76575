"""PixelCNN speed on this machine: training images/s on the shared loop (the real run's code
path: build_trainer from the experiment config), evaluation images/s, and the time to draw 64
samples (784 sequential forward passes), compile time apart.

    python -m experiments.pixelcnn_mnist.bench                       # the experiment config
    python -m experiments.pixelcnn_mnist.bench --set model.hidden=32
"""

from __future__ import annotations

import argparse
import json
import time

import jax
from flax import nnx

from bench.timing import best_of, time_chunk
from experiments.pixelcnn_mnist.pixelcnn import sample
from repro.configuration import compose
from repro.run import build_trainer


def train_images_per_second(overrides: list[str], steps: int, repeats: int) -> dict:
    cfg = compose(["experiment=pixelcnn_mnist", "logger.mode=disabled", "probes=[]", *overrides])
    trainer = build_trainer(cfg)
    timing, state = time_chunk(trainer, steps, repeats)
    split = next(iter(trainer.eval_data.values()))
    eval_s = best_of(lambda: trainer._eval(state["params"], state["rest"], split), 1)
    return {"config": overrides, "batch_size": cfg.train.batch_size, "steps_per_call": steps, **timing,
            "train_images_per_second": round(1e3 * cfg.train.batch_size / timing["ms_per_step"], 1),
            "eval_images_per_second": round(split["batch_mask"].size / eval_s, 1)}


def sampling_seconds(overrides: list[str], num: int, window: bool) -> dict:
    cfg = compose(["experiment=pixelcnn_mnist", "logger.mode=disabled", *overrides])
    from hydra.utils import instantiate

    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, k: sample(nnx.merge(graphdef, s), k, num, window=window))
    t0 = time.perf_counter()
    compiled = fn.lower(state, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    seconds = best_of(lambda: compiled(state, jax.random.key(0)), 1)
    return {"config": overrides, "num_samples": num, "window": window,
            "compile_seconds": round(compile_s, 1), "sampling_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--full-sampler", action="store_true",
                        help="also time sampling without the row window")
    parser.add_argument("--skip-sampling", action="store_true")
    args = parser.parse_args()
    print(json.dumps({"device": jax.devices()[0].device_kind, "jax": jax.__version__}), flush=True)
    print(json.dumps(train_images_per_second(args.set, args.steps, args.repeats)), flush=True)
    if not args.skip_sampling:
        print(json.dumps(sampling_seconds(args.set, args.num_samples, window=True)), flush=True)
        if args.full_sampler:
            print(json.dumps(sampling_seconds(args.set, args.num_samples, window=False)), flush=True)


if __name__ == "__main__":
    main()
