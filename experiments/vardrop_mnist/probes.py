"""What the learned dropout rates of variational dropout do over training (not in the paper: it
shows whether the alpha <= 1 constraint binds, and where)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

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


class AlphaBalance:
    """Why the learned alphas sit where they do: per dense layer i with learned alphas, the
    gradient of the per-example objective (mean cross-entropy + KL / N, what the run minimizes)
    with respect to log alpha, split into its data part (over the whole training split, each of
    `draws` passes with fresh noise) and its KL part (exact).

      held_at_cap_<i>    of the alphas at the cap, the fraction whose total gradient is negative:
                         descent pushes them further up, so the constraint alpha <= 1 is where the
                         objective wants them (a KKT point), not where training got stuck
      kl_dominates_<i>   of all alphas, the fraction whose |data gradient| < |KL gradient|
      data_wants_less_<i> of all alphas, the fraction whose data gradient asks for less noise
      data_to_kl_p50_<i> the median of |data gradient| / |KL gradient|
      layer_data_to_kl_<i> the layer's summed data gradient / its summed |KL gradient|: below 1,
                         one alpha shared by the whole layer would be pushed to the cap as well

    Final evaluation only (one pass over the training split per draw); run it on kept weights:
    python -m repro.recompute <result.json> \
        --probe '{_target_: experiments.vardrop_mnist.probes.AlphaBalance}'
    """

    needs = ("train_split", "key", "arrays")
    final_only = True

    def __init__(self, draws: int = 4, batch_size: int = 1000, train_split: dict | None = None):
        if train_split is None:
            raise ValueError("AlphaBalance needs the run's training split: build it through "
                             "repro.run.build_trainer (or repro.recompute), which passes train_split")
        self.draws, self.batch_size = draws, batch_size
        usable = len(train_split["label"]) // batch_size * batch_size  # whole batches only
        # Batched here, on the host; the loop passes them into the jit (needs "arrays").
        self.arrays = {k: train_split[k][:usable].reshape(-1, batch_size, *train_split[k].shape[1:])
                       for k in ("image", "label")}

    def __call__(self, model, eval_data, transforms, key, arrays) -> dict:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        images = jax.vmap(lambda x: transforms({"image": x})["image"])(arrays["image"])
        labels = arrays["label"]

        def data_loss(p, x, y, k):
            logits = nnx.merge(graphdef, p, rest)(x, train=True, rngs=nnx.Rngs(dropout=k))
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def one_batch(total, batch):
            x, y, k = batch
            return jax.tree.map(jnp.add, total, jax.grad(data_loss)(params, x, y, k)), None

        zero = jax.tree.map(jnp.zeros_like, params)
        keys = jax.random.split(key, self.draws * labels.shape[0]).reshape(self.draws, -1)
        total = zero
        for d in range(self.draws):
            total, _ = jax.lax.scan(one_batch, total, (images, labels, keys[d]))
        count = self.draws * labels.shape[0]
        data = nnx.merge(graphdef, jax.tree.map(lambda g: g / count, total), rest)
        kl = nnx.merge(graphdef, jax.grad(lambda p: nnx.merge(graphdef, p, rest).penalty())(params), rest)
        out = {}
        for i, (layer, g_data, g_kl) in enumerate(zip(model.dense_layers(), data.dense_layers(),
                                                      kl.dense_layers(), strict=True)):
            if layer.log_alpha is None:
                continue
            log_alpha, g_data, g_kl = (a.log_alpha[...].ravel() for a in (layer, g_data, g_kl))
            at_cap = log_alpha > LOG_ALPHA_MAX - AT_CAP
            pushed_up = (g_data + g_kl) < 0
            out[f"held_at_cap_{i}"] = (at_cap & pushed_up).sum() / jnp.maximum(at_cap.sum(), 1)
            out[f"kl_dominates_{i}"] = (jnp.abs(g_data) < jnp.abs(g_kl)).mean()
            out[f"data_wants_less_{i}"] = (g_data > 0).mean()
            out[f"data_to_kl_p50_{i}"] = jnp.median(jnp.abs(g_data) / jnp.abs(g_kl))
            out[f"layer_data_to_kl_{i}"] = g_data.sum() / jnp.abs(g_kl).sum()
        return out
