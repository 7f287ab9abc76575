"""Inception-v4 and Inception-ResNet (repro/models/inception.py): the figures' notation, the
shapes the figures annotate, exact parameter counts of independent implementations, residual
scaling."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from repro.facts import multiply_adds, parameter_count
from repro.models.inception import RESIDUAL, Inception, ResidualBlock, layer

# Counts of independent implementations built without weights (experiments/inception_v4/crosscheck.py):
# timm 1.0.31 (PyTorch; BN learns scale and offset) and Keras 3.15.1 (trainable weights; BN offset only).
TIMM_INCEPTION_V4 = 42_679_816
TIMM_INCEPTION_RESNET_V2 = 55_843_464
KERAS_INCEPTION_RESNET_V2_TRAINABLE = 55_813_192
# timm's multiply-adds on one 299x299 image (torch 2.14.1 FlopCounterMode: convolutions and matmuls)
TIMM_INCEPTION_V4_MULTIPLY_ADDS = 12_253_974_624
TIMM_INCEPTION_RESNET_V2_MULTIPLY_ADDS = 13_155_794_016


@functools.cache  # a full network takes seconds to trace: each layout once per session
def abstract(**kw):
    return nnx.eval_shape(lambda: Inception(**kw, rngs=nnx.Rngs(0)))


def shapes_through(model, size=299, channels=3):
    """The output shape after every stage, traced without computing."""
    def run(m, x):
        out = []
        for stage in m.stages:
            x = stage(x, False)
            out.append(x)
        return out
    traced = jax.eval_shape(run, model, jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32))
    return [t.shape[1:] for t in traced]


def test_the_figures_notation_parses_and_a_typo_is_refused():
    assert layer("3x3/2 384 V") == {"kind": "conv", "kernel": (3, 3), "stride": 2, "out": 384,
                                    "padding": "VALID"}
    assert layer("1x7 224") == {"kind": "conv", "kernel": (1, 7), "stride": 1, "out": 224, "padding": "SAME"}
    assert layer("max 3/2 V") == {"kind": "max", "size": 3, "stride": 2, "padding": "VALID"}
    assert layer("avg 3") == {"kind": "avg", "size": 3, "stride": 1, "padding": "SAME"}
    with pytest.raises(ValueError, match="not a layer of the paper's figures: '3x3 /2'"):
        layer("3x3 /2")
    with pytest.raises(ValueError, match="'released' only for resnet_v2"):
        Inception(version="v4", layout="released", rngs=nnx.Rngs(0))


def test_every_stage_has_the_shape_the_figures_annotate():
    v4 = shapes_through(abstract(version="v4"))
    # Figure 3's stem: 73x73x160, 71x71x192, 35x35x384; Figure 9: 4 x A, Reduction-A to 17x17x1024,
    # 7 x B, Reduction-B to 8x8x1536, 3 x C.
    assert v4[:4] == [(147, 147, 64), (73, 73, 160), (71, 71, 192), (35, 35, 384)]
    assert v4[4:8] == [(35, 35, 384)] * 4 and v4[8] == (17, 17, 1024)
    assert v4[9:16] == [(17, 17, 1024)] * 7 and v4[16] == (8, 8, 1536) and v4[17:] == [(8, 8, 1536)] * 3
    v1 = shapes_through(abstract(version="resnet_v1"))
    # Figure 14's stem to 35x35x256; Reduction-A (k, l, m, n = 192, 192, 256, 384) to 17x17x896;
    # Reduction-B (Figure 12) to 8x8x1792 (Figure 15's 1792 before pooling).
    assert v1[0] == (35, 35, 256) and v1[6] == (17, 17, 896)
    assert v1[17] == (8, 8, 1792) and v1[-1] == (8, 8, 1792)
    released = shapes_through(abstract(version="resnet_v2", layout="released"))
    assert released[1] == (35, 35, 320) and released[12] == (17, 17, 1088)
    assert released[33] == (8, 8, 2080) and released[-1] == (8, 8, 1536)


def test_parameter_counts_equal_the_independent_implementations_exactly():
    def count(**kw):
        return parameter_count(nnx.state(abstract(**kw), nnx.Param))

    assert count(version="v4") == TIMM_INCEPTION_V4
    assert count(version="resnet_v2", layout="released") == TIMM_INCEPTION_RESNET_V2
    keras = count(version="resnet_v2", layout="released", bn_scale=False)
    assert keras == KERAS_INCEPTION_RESNET_V2_TRAINABLE


@pytest.mark.parametrize("layout, expected", [
    (dict(version="v4"), TIMM_INCEPTION_V4_MULTIPLY_ADDS),
    pytest.param(dict(version="resnet_v2", layout="released"), TIMM_INCEPTION_RESNET_V2_MULTIPLY_ADDS,
                 marks=pytest.mark.slow),  # ~30 s to trace: the v4 case covers the counting
])
def test_multiply_adds_at_299x299_equal_timms_count_exactly(layout, expected):
    graphdef, state = nnx.split(abstract(**layout))
    image = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32)
    assert multiply_adds(lambda s, x: nnx.merge(graphdef, s)(x, train=False), state, image) == expected


def test_a_residual_scale_of_zero_makes_a_residual_block_the_identity_on_its_relu_input():
    block = ResidualBlock(RESIDUAL["resnet_v2"]["A"], 24, 0.0, bn_scale=True, rngs=nnx.Rngs(0))
    x = jax.nn.relu(jax.random.normal(jax.random.key(1), (2, 7, 5, 24)))  # a previous ReLU's output
    np.testing.assert_array_equal(block(x, train=False), x)
    scaled = ResidualBlock(RESIDUAL["resnet_v2"]["A"], 24, 0.3, bn_scale=True, rngs=nnx.Rngs(0))
    assert not np.allclose(scaled(x, train=False), x)  # the branch is live: zero is what removed it
    last = ResidualBlock(RESIDUAL["resnet_v2"]["A"], 24, 0.0, activate=False, bn_scale=True, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(last(-x, train=False), -x)  # no ReLU after the released model's last block


def test_three_widths_scale_the_stem_and_a_the_b_stage_and_the_c_stage_apart():
    small = dict(version="resnet_v2", stem="small", repeats=(1, 1, 2), in_channels=1, num_classes=10)
    wide_c = shapes_through(abstract(**small, width=(0.125, 0.25, 1.0)), size=28, channels=1)
    # stem and A at 1/8: 64/8 = 8 channels; Reduction-A at 1/4 adds n = m = 384/4: 8 + 96 + 96;
    # Reduction-B at full width adds 384 + 288 + 320: C blocks 1192 wide (over the paper's 1000)
    assert wide_c == [(13, 13, 8), (13, 13, 8), (6, 6, 200), (6, 6, 200), (2, 2, 1192), (2, 2, 1192),
                      (2, 2, 1192)]
    same = abstract(**small, width=(0.125,) * 3)
    assert shapes_through(same, 28, 1) == shapes_through(abstract(**small, width=0.125), 28, 1)
    with pytest.raises(ValueError, match="one number or three"):
        Inception(**small, width=(0.125, 1.0), rngs=nnx.Rngs(0))


def test_dead_features_counts_channels_zero_everywhere_and_ignores_padding():
    from experiments.inception_v4.probes import DeadFeatures

    class Fixed:  # features: channel 0 live only on image 1, channel 1 live on image 0, 2 never
        def features(self, x, train):
            f = jnp.zeros((x.shape[0], 2, 3, 3)).at[1, 0, 1, 0].set(2.0).at[0, 1, 2, 1].set(0.5)
            return f.at[2].set(7.0)  # image 2 is eval padding: all its values live, none may count

    split = {"image": jnp.zeros((1, 3, 28, 28, 1)), "batch_mask": jnp.array([[1.0, 1.0, 0.0]])}
    out = DeadFeatures(examples=3)(Fixed(), {"test": split}, lambda b, train: b)
    assert float(out["dead_channels"]) == pytest.approx(1 / 3)
    assert float(out["zero_activations"]) == pytest.approx(1 - 2 / 36)  # 2 live values of 2 x 6 x 3
    first = DeadFeatures(examples=1)(Fixed(), {"test": split}, lambda b, train: b)
    assert float(first["dead_channels"]) == pytest.approx(2 / 3)  # image 0 alone: channel 0 dead too
    with pytest.raises(ValueError, match="at least 1"):
        DeadFeatures(examples=0)


def test_the_full_inception_v4_runs_forward_on_one_299x299_image_on_the_cpu():
    model = Inception(version="v4", num_classes=10, rngs=nnx.Rngs(0))
    logits = nnx.jit(lambda m, x: m(x, train=False))(model, jnp.ones((1, 299, 299, 3)))
    assert logits.shape == (1, 10) and bool(jnp.all(jnp.isfinite(logits)))


def test_a_short_real_data_run_of_the_small_scale_network_without_shortcuts(run_overrides):
    from repro.configuration import compose
    from repro.run import run

    cfg = compose(["experiment=inception_v4", *run_overrides, "model.residual=false", "train.steps=6",
                   "train.chunk_steps=3", "train.eval_every=3", "train.checkpoint_every=0",
                   "train.batch_size=16", "train.eval_batch_size=100"])
    result = run(cfg)
    assert result["facts"]["parameters"] == 177_814  # the plain twin has the residual net's parameters
    assert [r["step"] for r in result["history"] if "test/accuracy" in r] == [0, 3, 6]
    assert 0.0 <= result["final"]["test/accuracy"] <= 1.0 and np.isfinite(result["final"]["train/loss"])


def test_the_papers_optimizer_adds_epsilon_inside_the_root_and_decays_by_steps():
    from repro.configuration import compose
    from repro.optim import make_optimizer, make_schedule

    cfg = compose(["experiment=inception_v4"]).optim
    schedule = make_schedule(cfg)
    assert float(schedule(1874)) == pytest.approx(0.045)
    assert float(schedule(1875)) == pytest.approx(0.045 * 0.94)
    assert float(schedule(3750)) == pytest.approx(0.045 * 0.94 ** 2)
    params = {"w": jnp.zeros(3)}
    grad = {"w": jnp.array([0.5, -2.0, 10.0])}
    tx = make_optimizer(cfg)
    update, _ = tx.update(grad, tx.init(params), params)
    # TensorFlow's RMSProp: lr * g / sqrt(0.1 g^2 + epsilon), epsilon = 1.0 (section 4)
    expected = -0.045 * grad["w"] / jnp.sqrt(0.1 * grad["w"] ** 2 + 1.0)
    np.testing.assert_allclose(update["w"], expected, rtol=1e-6)


def test_the_figure_draws_the_variants_that_ran_and_nothing_without_runs(tmp_path):
    from experiments.inception_v4.figures import make_figures
    from repro.render import history_curve

    def run(values, key="test/accuracy"):
        return {"history": [{"step": 250 * i, key: v} for i, v in enumerate(values)]}

    groups = {"resnet_v2": [run([0.1, 0.8]), run([0.1, 0.9])], "v4": [run([0.1, 0.4])],
              "wide": [run([0.2, 0.45], "probe/zero_activations")]}
    steps, values = history_curve(groups["resnet_v2"], "test/accuracy")
    assert steps.tolist() == [0, 250] and values.tolist() == [[0.1, 0.8], [0.1, 0.9]]
    [(caption, path)] = make_figures(groups, tmp_path, tmp_path / "figures")
    assert path.exists() and path.stat().st_size > 10_000 and "zeros" in caption
    assert make_figures({"resnet_v2": []}, tmp_path, tmp_path / "none") == []
