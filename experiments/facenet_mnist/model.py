"""The embedding network of the FaceNet proxy: a small convnet whose output is L2-normalized, so
embeddings lie on the unit hypersphere (the paper's ||f(x)||_2 = 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repro.models.conv import Conv


class EmbeddingNet(nnx.Module):
    """conv 3x3 (c1) -> relu -> max pool 2 -> conv 3x3 (c2) -> relu -> max pool 2 -> dense (hidden)
    -> relu -> dense (dim) -> L2 normalization."""

    def __init__(self, image_shape, dim: int = 128, channels=(16, 32), hidden: int = 128, *,
                 rngs: nnx.Rngs):
        if dim < 1:
            raise ValueError(f"model.dim={dim}: the embedding needs at least one dimension")
        height, width, colors = image_shape
        c1, c2 = channels
        self.conv1 = Conv(colors, c1, (3, 3), rngs=rngs)
        self.conv2 = Conv(c1, c2, (3, 3), rngs=rngs)
        self.dense = nnx.Linear((height // 4) * (width // 4) * c2, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        def pool(h):
            return nnx.max_pool(h, (2, 2), strides=(2, 2))

        h = pool(jax.nn.relu(self.conv1(x)))
        h = pool(jax.nn.relu(self.conv2(h)))
        h = jax.nn.relu(self.dense(h.reshape(h.shape[0], -1)))
        e = self.out(h)
        return e / jnp.sqrt(jnp.maximum((e * e).sum(-1, keepdims=True), 1e-12))
