import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from repro.models.mlp import MLP


def test_mlp_shapes_and_params():
    m = MLP(784, [100, 100, 100], 10, rngs=nnx.Rngs(0))
    assert m(jnp.ones((5, 28, 28, 1))).shape == (5, 10)
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert n_params == 784 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 10 + 10


def test_mlp_with_bn_drops_hidden_biases_and_keeps_statistics():
    m = MLP(784, [100, 100, 100], 10, batchnorm=True, rngs=nnx.Rngs(0))
    assert all(layer.bias is None for layer in m.hidden)
    stats = nnx.state(m, nnx.BatchStat)
    assert len(jax.tree.leaves(stats)) == 6  # mean and var for 3 layers


def test_bn_training_normalizes_and_eval_uses_population_statistics():
    m = MLP(4, [3], 2, batchnorm=True, bn_momentum=0.9, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (64, 4)) * 5 + 3
    z = m.preactivations(x, train=True)[0]
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)  # gamma=1, beta=0 at init
    np.testing.assert_allclose(z.std(0), 1, atol=1e-2)
    batch_mean = (x @ m.hidden[0].kernel[...]).mean(0)
    np.testing.assert_allclose(m.norms[0].mean[...], 0.1 * batch_mean, rtol=1e-5)  # momentum 0.9
    z_eval = m.preactivations(x, train=False)[0]
    assert not np.allclose(z_eval, z, atol=1e-2)  # eval uses the (one-step) moving averages


def test_init_std_is_respected():
    m = MLP(1000, [1000], 10, init="normal", init_std=0.05, rngs=nnx.Rngs(0))
    assert float(m.hidden[0].kernel[...].std()) == pytest.approx(0.05, rel=0.02)


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(4, [3], 2, activation="swishy", rngs=nnx.Rngs(0))


def test_every_model_convolves_through_the_suites_conv():
    """A bare nnx.Conv or lax.conv in a model runs its gradients 30-60x slower on XLA:CPU inside
    the loop's scan (repro/models/conv.py); the models must use conv.Conv or its function."""
    import re
    from pathlib import Path

    from flax import nnx

    from repro.models import conv

    bare = re.compile(r"\bnnx\.Conv(Transpose)?\(|\blax\.conv|\bjax\.lax\.conv")
    models = Path(conv.__file__).parent
    papers = models.parent.parent / "experiments"  # a paper's own models live in its folder
    files = [*sorted(models.glob("*.py")), *sorted(papers.glob("*/*.py"))]
    assert len(files) > 20
    offenders = [f"{p.name}:{i}" for p in files if p.name != "conv.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert not offenders, f"use repro.models.conv.Conv instead of a bare conv at {offenders}"
    layer = conv.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0))
    assert isinstance(layer, nnx.Conv) and layer.conv_general_dilated is conv.conv_general_dilated
