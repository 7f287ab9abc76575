"""Attacked images per second: targeted L2 PGD (repro/attacks.py, the experiment's settings) on
this machine, under the experiment's CNN with its initial weights (the cost does not depend on them):

    python -m experiments.nonrobust_mnist.bench [--images 2000] [--chunk 1000] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from flax import nnx
from hydra.utils import instantiate

from repro import attacks
from repro.configuration import compose
from repro.data.transforms import Normalize, Transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    cfg = compose(["experiment=nonrobust_mnist"])
    model = instantiate(cfg.model, rngs=nnx.Rngs(0))
    pixels = Transforms([Normalize(cfg.data.mean, cfg.data.std)])
    loss = attacks.cross_entropy(attacks.unit_range_logits(model, pixels))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (args.images, 28, 28, 1)).astype(np.float32)
    targets = rng.integers(0, 10, args.images).astype(np.int32)
    pgd = {"eps": 2.0, "step_size": 0.1, "steps": args.steps}
    attacks.attack_split(loss, images[: args.chunk], targets[: args.chunk], chunk=args.chunk,
                         progress=False, **pgd)  # compile
    t0 = time.perf_counter()
    attacks.attack_split(loss, images, targets, chunk=args.chunk, progress=False, **pgd)
    seconds = time.perf_counter() - t0
    print(f"{args.images} images x {args.steps} PGD steps in {seconds:.1f} s: "
          f"{args.images / seconds:.0f} attacked images/s, {args.images * args.steps / seconds:.0f} "
          f"image-gradients/s (chunks of {args.chunk})")


if __name__ == "__main__":
    main()
