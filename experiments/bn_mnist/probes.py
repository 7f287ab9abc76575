"""Figure 1(b, c) of Ioffe & Szegedy: the distribution of one sigmoid's input over training."""

from __future__ import annotations

import jax.numpy as jnp


class SigmoidInputPercentiles:
    """Percentiles, over the examples of an eval split, of the input to chosen units of one
    hidden layer (after BN where the model has it). Returns {'sigmoid_input_p15': [per unit], ...}."""

    def __init__(self, layer: int = -1, units=(0,), percentiles=(15, 50, 85), split: str = "test"):
        self.layer, self.units = layer, list(units)
        self.percentiles, self.split = list(percentiles), split

    def __call__(self, model, eval_data, transforms) -> dict:
        split = eval_data[self.split]
        images = split["image"].reshape(-1, *split["image"].shape[2:])
        real = split["batch_mask"].reshape(-1)[:, None] > 0
        inputs = transforms({"image": images}, train=False)["image"]
        z = model.preactivations(inputs, train=False)[self.layer]
        z = jnp.where(real, z[:, jnp.asarray(self.units)], jnp.nan)  # drop eval padding
        values = jnp.nanpercentile(z, jnp.asarray(self.percentiles, jnp.float32), axis=0)
        return {f"sigmoid_input_p{p}": values[i] for i, p in enumerate(self.percentiles)}
