"""Table 1 of Kingma et al. 2015: how noisy each gradient estimator of variational dropout B is.

At the current parameters, for each estimator, draw `draws` minibatches of `batch_size`
examples (with fresh dropout noise each) and take the gradient of the SGVB estimate of the
data term, N x mean minibatch log-likelihood, with respect to the bottom (first) and top
(last) layer weights. Reported: the per-weight variance across draws, averaged over weights.
The KL term's gradient is deterministic, so it adds no variance and is left out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from repro.models.vardrop import ESTIMATORS


def weight_gradient_variance(model, images, labels, key, estimator: str, draws: int,
                             batch_size: int, num_train: int, num_examples=None):
    """{'bottom': mean variance, 'top': mean variance} of d(N * mean CE)/dW over draws."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    num_examples = images.shape[0] if num_examples is None else num_examples
    bottom0, top0 = model.dense[0].kernel[...], model.dense[-1].kernel[...]

    def loss(weights, x, y, noise_key):
        # Fresh Variables made in this trace, so the two kernels can be swapped for `weights`.
        m = nnx.merge(graphdef, *jax.tree.map(lambda a: a, (params, rest)))
        m.dense[0].kernel.value, m.dense[-1].kernel.value = weights
        logits = m(x, train=True, rngs=nnx.Rngs(dropout=noise_key), estimator=estimator)
        return num_train * optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def one_draw(sums, k):
        batch_key, noise_key = jax.random.split(k)
        idx = jax.random.randint(batch_key, (batch_size,), 0, num_examples)
        g = jax.grad(loss)((bottom0, top0), images[idx], labels[idx], noise_key)
        # Running sums of g and g^2: no need to keep every draw's gradient.
        return tuple((s1 + gi, s2 + gi * gi) for (s1, s2), gi in zip(sums, g, strict=True)), None

    zeros = tuple((jnp.zeros_like(w), jnp.zeros_like(w)) for w in (bottom0, top0))
    sums, _ = jax.lax.scan(one_draw, zeros, jax.random.split(key, draws))

    def mean_variance(s):
        mean = s[0] / draws
        return ((s[1] - draws * mean * mean) / (draws - 1)).mean()  # unbiased, per weight

    return {"bottom": mean_variance(sums[0]), "top": mean_variance(sums[1])}


class GradientVariance:
    """Probe: gradient variance of every Table-1 estimator on the `split` eval split; returns
    {'gradvar_<estimator>_<top|bottom>': value}. Needs a DropoutMLP/ConvNet with dropout B."""

    def __init__(self, estimators=ESTIMATORS, draws: int = 20, batch_size: int = 100,
                 split: str = "validation", num_train: int = 50000, seed: int = 0):
        self.estimators, self.draws, self.batch_size = list(estimators), draws, batch_size
        self.split, self.num_train, self.seed = split, num_train, seed

    def __call__(self, model, eval_data, transforms) -> dict:
        split = eval_data[self.split]
        images = transforms({"image": split["image"].reshape(-1, *split["image"].shape[2:])})["image"]
        labels = split["label"].reshape(-1)
        num_real = split["batch_mask"].sum().astype(jnp.int32)  # eval padding sits at the end
        out = {}
        for est in self.estimators:
            # The same minibatches for every estimator: only the noise differs.
            key = jax.random.key(self.seed)
            v = weight_gradient_variance(model, images, labels, key, est, self.draws,
                                         self.batch_size, self.num_train, num_real)
            out.update({f"gradvar_{est}_{where}": v[where] for where in ("top", "bottom")})
        return out
