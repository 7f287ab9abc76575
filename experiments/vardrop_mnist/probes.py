"""What the learned dropout rates of variational dropout do over training (not in the paper: it
shows whether the alpha <= 1 constraint binds, and where)."""

from __future__ import annotations

import jax.numpy as jnp

from repro.models.vardrop import LOG_ALPHA_MAX

AT_CAP = 0.01  # log alpha within 0.01 of the cap: alpha > 0.99


class AlphaStats:
    """Per dense layer i with learned alphas: `alpha_at_cap_<i>`, the fraction of its alphas at
    the cap (alpha = 1, i.e. dropout rate 0.5), and `log_alpha_p<q>_<i>`, percentiles of its log
    alphas. Layer 0 noises the image; A methods have one alpha per input unit, B one per weight.
    Empty for methods with fixed rates."""

    def __init__(self, percentiles=(10, 50, 90)):
        self.percentiles = list(percentiles)

    def __call__(self, model, eval_data, transforms) -> dict:
        out = {}
        for i, layer in enumerate(model.dense_layers()):
            if layer.log_alpha is None:
                continue
            log_alpha = layer.log_alpha[...].ravel()
            out[f"alpha_at_cap_{i}"] = (log_alpha > LOG_ALPHA_MAX - AT_CAP).mean()
            values = jnp.percentile(log_alpha, jnp.asarray(self.percentiles, jnp.float32))
            out.update({f"log_alpha_p{q}_{i}": values[k] for k, q in enumerate(self.percentiles)})
        return out
