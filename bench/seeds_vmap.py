"""Many seeds on one device: K seeds vmapped in one Trainer vs one seed, on the BN-MNIST MLP.

    python -m bench.seeds_vmap [--seeds 1 2 4 8] [--steps 2000] [--repeats 3]

Times only the training chunks (compiled beforehand; no evaluation), the K values interleaved,
best of `--repeats`. Reports seed-steps/s (training steps/s summed over seeds) and seed-steps per
CPU-second of this process: on a CPU the second says whether vmapping made the work cheaper or
only spread it over more cores (and it is less sensitive to other processes on the machine).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
from flax import nnx
from hydra.utils import instantiate

from bench.bn_mnist_loop import synthetic_mnist
from repro.configuration import compose
from repro.data.transforms import for_data
from repro.loop import Trainer, seed_keys
from repro.optim import make_optimizer


def trainer_for(seeds, data, batchnorm=True):
    cfg = compose(["experiment=bn_mnist", f"model.batchnorm={batchnorm}"])
    keys = [seed_keys(s) for s in seeds]
    models = [instantiate(cfg.model, rngs=nnx.Rngs(k["init"])) for k in keys]
    one = len(seeds) == 1
    return Trainer(models[0] if one else models, make_optimizer(cfg.optim), instantiate(cfg.objective),
                   for_data(cfg.data, None), data["train"], {"test": data["test"]},
                   batch_size=cfg.train.batch_size, keys=keys[0] if one else keys,
                   eval_batch_size=1000)


class Timed:
    """K seeds' compiled chunk, run for `steps` steps per measurement."""

    def __init__(self, num_seeds: int, data, steps: int, chunk: int):
        self.trainer = trainer_for(list(range(num_seeds)), data)
        self.state = self.trainer.initial_state
        self.fn = self.trainer.chunk_fn(self.state, chunk)
        self.work = num_seeds * steps
        self.calls = steps // chunk
        self.wall = self.cpu = float("inf")
        self.measure()  # warm-up

    def measure(self) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(self.calls):
            self.state, summary = self.fn(self.state, self.trainer.train_data, self.trainer.keys)
        jax.block_until_ready((self.state, summary))
        self.wall = min(self.wall, time.perf_counter() - t0)
        self.cpu = min(self.cpu, time.process_time() - c0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    train = synthetic_mnist()
    data = {"train": train, "test": {k: v[:1000] for k, v in train.items()}}
    load_before = os.getloadavg()[0]
    runs = {k: Timed(k, data, args.steps, args.chunk) for k in args.seeds}
    for _ in range(args.repeats):
        for timed in runs.values():
            timed.measure()
    print(f"device: {jax.devices()[0].device_kind} ({os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}); BN-MNIST MLP, batch 60, "
          f"{args.steps} steps, best of {args.repeats}")
    first = runs[args.seeds[0]]
    for k, t in runs.items():
        wall, cpu = t.work / t.wall, t.work / t.cpu
        print(f"K={k:<3d} {wall:7.0f} seed-steps/s ({wall * first.wall / first.work:.2f}x "
              f"K={args.seeds[0]})   {cpu:7.0f} seed-steps per CPU-second "
              f"({cpu * first.cpu / first.work:.2f}x)")


if __name__ == "__main__":
    main()
