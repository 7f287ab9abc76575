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


def test_multiply_adds_counts_convolutions_and_matmuls_from_shapes_by_hand():
    from repro.facts import multiply_adds
    from repro.models.conv import Conv

    conv = Conv(5, 7, (3, 2), strides=(2, 1), padding="VALID", rngs=nnx.Rngs(0))
    dense = nnx.Linear(7, 4, rngs=nnx.Rngs(1))
    x = jnp.ones((2, 11, 13, 5))  # batch 2, every dimension different
    # conv: output 2 x 5 x 12 x 7, each a 3 x 2 x 5 window; dense on its 2 x 5 x 12 pixels: 7 -> 4
    by_hand = 2 * 5 * 12 * 7 * (3 * 2 * 5) + 2 * 5 * 12 * 7 * 4
    assert multiply_adds(lambda x: dense(conv(x)), x) == by_hand
    grouped = lambda x: jax.lax.conv_general_dilated(  # noqa: E731 - 2 groups of 3 input channels
        x, jnp.ones((3, 3, 3, 8)), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=2)
    assert multiply_adds(grouped, jnp.ones((1, 4, 6, 6))) == 4 * 6 * 8 * (3 * 3 * 3)
    # a scan's body counts once per iteration; elementwise work and pooling count nothing
    looped = lambda x: jax.lax.scan(lambda c, _: (jnp.tanh(c @ jnp.ones((6, 6))), None), x, None, length=3)[0]  # noqa: E731
    assert multiply_adds(looped, jnp.ones((2, 6))) == 3 * 2 * 6 * 6


@pytest.mark.parametrize("hidden", [[7, 5], [6, 6], []], ids=["narrowing", "equal-widths", "no-hidden"])
def test_mlp_forward_is_its_layers_chained_by_hand(hidden):
    """Input 4 x 3 x 1 (12 features), hidden widths that differ (fan-in vs fan-out) or are equal
    (which layer's output feeds the head), 3 classes, batch 2: the logits equal x W1 + b1 -> tanh ->
    ... -> head, computed from the layers' own weights."""
    m = MLP(12, hidden, 3, activation="tanh", init="normal", init_std=0.5, rngs=nnx.Rngs(4))
    x = jax.random.normal(jax.random.key(2), (2, 4, 3, 1))
    h = np.asarray(x).reshape(2, 12)
    widths = [12, *hidden]
    assert [layer.kernel[...].shape for layer in m.hidden] == list(zip(widths[:-1], hidden, strict=True))
    for layer in m.hidden:
        h = np.tanh(h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]))
    logits = h @ np.asarray(m.out.kernel[...]) + np.asarray(m.out.bias[...])
    assert m.out.kernel[...].shape == ([12, *hidden][-1], 3)
    np.testing.assert_allclose(m(x), logits, rtol=1e-5, atol=1e-6)
