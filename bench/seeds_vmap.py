"""Many seeds on one device: K seeds vmapped in one Trainer vs one seed, on the BN-MNIST MLP.

    python -m bench.seeds_vmap [--seeds 8] [--steps 5000]

Reports training steps/s summed over seeds (seed-steps/s) and the speed-up over one seed.
"""

from __future__ import annotations

import argparse
import time

import jax
from flax import nnx
from hydra.utils import instantiate

from bench.bn_mnist_loop import synthetic_mnist
from repro.configuration import compose
from repro.data.pipeline import Preprocessor
from repro.loop import Trainer, seed_keys
from repro.optim import make_optimizer


def trainer_for(seeds, data, batchnorm=True):
    cfg = compose(["experiment=bn_mnist", f"model.batchnorm={batchnorm}"])
    keys = [seed_keys(s) for s in seeds]
    models = [instantiate(cfg.model, rngs=nnx.Rngs(k["init"])) for k in keys]
    one = len(seeds) == 1
    return Trainer(models[0] if one else models, make_optimizer(cfg.optim), instantiate(cfg.objective),
                   Preprocessor(cfg.data.mean, cfg.data.std), data["train"], {"test": data["test"]},
                   batch_size=cfg.train.batch_size, keys=keys[0] if one else keys,
                   eval_batch_size=1000)


def seed_steps_per_second(num_seeds: int, data, steps: int, chunk=500) -> float:
    trainer = trainer_for(list(range(num_seeds)), data)
    trainer.chunk_fn(trainer.initial_state, chunk)
    t0 = time.perf_counter()
    trainer.fit(trainer.initial_state, steps, chunk_steps=chunk, eval_every=steps)
    return num_seeds * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    train = synthetic_mnist()
    data = {"train": train, "test": {k: v[:1000] for k, v in train.items()}}
    single = seed_steps_per_second(1, data, args.steps)
    many = seed_steps_per_second(args.seeds, data, args.steps)
    print(f"device: {jax.devices()[0].device_kind}; BN-MNIST MLP, batch 60, {args.steps} steps")
    print(f"1 seed : {single:8.0f} seed-steps/s")
    print(f"{args.seeds} seeds: {many:8.0f} seed-steps/s  ({many / single:.2f}x one seed)")


if __name__ == "__main__":
    main()
