"""Fully connected classifier, optionally with batch normalization before each nonlinearity."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh}


def make_init(init: str, std: float):
    """'normal' = N(0, std^2) (Ioffe & Szegedy's "small random Gaussian"); else a flax initializer."""
    if init == "normal":
        return nnx.initializers.normal(stddev=std)
    if init == "lecun_normal":
        return nnx.initializers.lecun_normal()
    if init == "he_normal":
        return nnx.initializers.he_normal()
    raise ValueError(f"unknown init {init!r}; use normal, lecun_normal or he_normal")


class MLP(nnx.Module):
    """in -> [Linear -> (BN) -> act] * len(hidden) -> Linear -> logits.

    With BN the hidden Linear layers drop their bias: BN's beta plays that role (paper, sec. 3.2).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        num_classes: int,
        activation: str = "sigmoid",
        batchnorm: bool = False,
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        init: str = "normal",
        init_std: float = 0.1,
        *,
        rngs: nnx.Rngs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        self.activation = activation
        kernel_init = make_init(init, init_std)
        sizes = [in_features, *hidden]
        self.hidden = nnx.List(
            [
                nnx.Linear(a, b, use_bias=not batchnorm, kernel_init=kernel_init, rngs=rngs)
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        self.norms = nnx.List(
            [
                nnx.BatchNorm(b, momentum=bn_momentum, epsilon=bn_epsilon, rngs=rngs)
                for b in hidden
            ]
            if batchnorm
            else []
        )
        self.out = nnx.Linear(sizes[-1], num_classes, kernel_init=kernel_init, rngs=rngs)

    def preactivations(self, x, train: bool = False) -> list[jax.Array]:
        """Inputs to each hidden nonlinearity (after BN where used), for probes."""
        act = ACTIVATIONS[self.activation]
        h = x.reshape(x.shape[0], -1)
        pre = []
        for i, layer in enumerate(self.hidden):
            z = layer(h)
            if len(self.norms):
                z = self.norms[i](z, use_running_average=not train)
            pre.append(z)
            h = act(z)
        return pre

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        pre = self.preactivations(x, train=train)
        h = ACTIVATIONS[self.activation](pre[-1]) if pre else x.reshape(x.shape[0], -1)
        return self.out(h)
