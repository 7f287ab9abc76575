"""What online mining costs per training step of the FaceNet proxy, on this machine: the triplet
terms alone (distances, the chosen negative of every anchor-positive pair, the hinge) for each
mining, and a whole training step (embedding net forward and backward + the loss) with each:

    python -m experiments.facenet_mnist.bench [--identities 20] [--photos 10] [--dim 128]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from bench.timing import best_of
from experiments.facenet_mnist import triplets
from experiments.facenet_mnist.model import EmbeddingNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=20)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    batch = args.identities * args.photos
    labels = jnp.repeat(jnp.arange(args.identities), args.photos)
    images = jax.random.uniform(jax.random.key(0), (batch, 28, 28, 1))
    e = jax.random.normal(jax.random.key(1), (batch, args.dim))
    e = e / jnp.linalg.norm(e, axis=1, keepdims=True)
    model = EmbeddingNet((28, 28, 1), dim=args.dim, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    optimizer = optax.adam(1e-3)
    print(f"batch {args.identities} identities x {args.photos} photos = {batch}, {args.dim}-d; "
          f"milliseconds (best of {args.repeats})")
    print("| mining | triplet terms alone | whole training step | mining share of the step |")
    print("|---|---|---|---|")
    for mining in triplets.MINING:
        objective = triplets.TripletLoss(mining=mining)
        terms = jax.jit(lambda e, key, m=mining: triplets.triplet_terms(e, labels, 0.2, m, key)[0].sum())

        @jax.jit
        def step(params, opt_state, key, objective=objective):
            def loss(p):
                rngs = nnx.Rngs(dropout=key)
                return objective.train_loss(nnx.merge(graphdef, p), {"image": images, "label": labels},
                                            rngs=rngs)[0]
            grads = jax.grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        key, state = jax.random.key(2), (params, optimizer.init(params))
        alone = best_of(lambda terms=terms, key=key: terms(e, key), args.repeats) * 1e3
        whole = best_of(lambda step=step, state=state, key=key: step(*state, key), args.repeats) * 1e3
        print(f"| {mining} | {alone:.2f} | {whole:.1f} | {alone / whole:.0%} |")


if __name__ == "__main__":
    main()
