"""Optimizers and schedules from config (repro/optim.py), by value: each null key's documented
default, the cosine schedule at its ends, gradient clipping on both sides of its norm. (Piecewise
and warm-up: tests/test_resnet.py; exponential and RMSProp's epsilon: tests/test_inception.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from repro.configuration import compose
from repro.optim import make_optimizer, make_schedule

GRADS = [{"w": jnp.array([0.5, -2.0, 3.0])}, {"w": jnp.array([-1.0, 0.25, 4.0])},
         {"w": jnp.array([2.0, 1.0, -0.5])}]


def optim(*overrides):
    return compose(["experiment=debug", *overrides]).optim


def updates(tx, grads=GRADS):
    params = {"w": jnp.array([1.0, -1.0, 0.5])}
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params)
        out.append(np.asarray(u["w"]))
    return out


def assert_same_updates(tx, reference):
    for ours, theirs in zip(updates(tx), updates(reference), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


def test_null_keys_take_their_documented_defaults():
    adam = optim("optim=adam", "optim.lr=0.01", "optim.b1=null", "optim.b2=null")
    assert_same_updates(make_optimizer(adam), optax.adam(0.01, b1=0.9, b2=0.999))
    assert_same_updates(make_optimizer(optim("optim=rmsprop", "optim.lr=0.01", "optim.decay=null",
                                             "optim.eps=null")),
                        optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=True))
    assert_same_updates(make_optimizer(optim("optim=sgd", "optim.lr=0.1", "optim.momentum=null",
                                             "optim.nesterov=null")), optax.sgd(0.1))


def test_the_settings_given_reach_the_optimizer():
    assert_same_updates(make_optimizer(optim("optim=adam", "optim.lr=0.01", "optim.b1=0.5", "optim.b2=0.9")),
                        optax.adam(0.01, b1=0.5, b2=0.9))
    assert_same_updates(make_optimizer(optim("optim=sgd", "optim.lr=0.1", "optim.momentum=0.8",
                                             "optim.nesterov=true")),
                        optax.sgd(0.1, momentum=0.8, nesterov=True))
    plain = updates(make_optimizer(optim("optim=sgd", "optim.lr=0.1", "optim.momentum=0.8")))
    nesterov = updates(make_optimizer(optim("optim=sgd", "optim.lr=0.1", "optim.momentum=0.8",
                                            "optim.nesterov=true")))
    assert not np.allclose(plain[1], nesterov[1])  # the settings are not interchangeable


def test_cosine_decays_from_lr_to_zero_over_decay_steps_and_stays_there():
    schedule = make_schedule(optim("optim.schedule=cosine", "optim.lr=0.2", "optim.decay_steps=100"))
    for step, lr in {0: 0.2, 25: 0.1 * (1 + np.cos(np.pi / 4)), 50: 0.1, 100: 0.0, 150: 0.0}.items():
        assert float(schedule(step)) == pytest.approx(lr, abs=1e-7), step


def test_gradient_clipping_scales_only_a_gradient_whose_global_norm_exceeds_the_limit():
    tx = make_optimizer(optim("optim=sgd", "optim.lr=0.1", "optim.momentum=0.0", "optim.grad_clip=1.0"))
    big = {"w": jnp.array([3.0, 0.0, -4.0])}   # norm 5: scaled to norm 1
    small = {"w": jnp.array([0.3, 0.0, -0.4])}  # norm 0.5: left alone
    exact = {"w": jnp.array([0.6, 0.0, -0.8])}  # norm 1: left alone
    got = updates(tx, [big, small, exact])
    np.testing.assert_allclose(got[0], -0.1 * np.array([0.6, 0.0, -0.8]), rtol=1e-6)
    np.testing.assert_allclose(got[1], -0.1 * np.array([0.3, 0.0, -0.4]), rtol=1e-6)
    np.testing.assert_allclose(got[2], -0.1 * np.array([0.6, 0.0, -0.8]), rtol=1e-6)


def test_unknown_names_and_a_group_without_its_part_are_refused():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(optim("optim=sgd")))  # unchecked, as a caller may pass
    with pytest.raises(ValueError, match="unknown optim.name 'lbfgs'"):
        make_optimizer(OmegaConf.merge(cfg, {"name": "lbfgs"}))
    with pytest.raises(ValueError, match="names no part"):
        make_optimizer(OmegaConf.merge(cfg, {"groups": [{"lr": 0.1}]}))
    assert jax.tree.leaves(make_optimizer(cfg).init({"w": jnp.zeros(2)})) is not None


def test_groups_give_each_part_the_base_config_with_its_own_overrides():
    """optim.groups: part `a` takes the base (sgd, lr 0.1), part `b` its overrides (lr 0.5, weight
    decay 0.1 on every parameter, which needs the parameters passed through); an update with b
    inactive leaves b alone, and a part the active map does not name is trained."""
    from omegaconf import OmegaConf

    cfg = optim("optim=sgd", "optim.lr=0.1", "optim.momentum=0.0")
    cfg = OmegaConf.merge(cfg, {"groups": [{"part": "a"}, {"part": "b", "lr": 0.5, "weight_decay": 0.1,
                                                                "weight_decay_mask": "all"}]})
    tx = make_optimizer(cfg)
    params = {"a": {"w": jnp.ones(3)}, "b": {"w": jnp.ones(2)}}
    grads = {"a": {"w": jnp.array([1.0, 2.0, 3.0])}, "b": {"w": jnp.array([4.0, -1.0])}}
    state = tx.init(params)
    both, _ = tx.update(grads, state, params, active={"a": True, "b": True})
    np.testing.assert_allclose(both["a"]["w"], [-0.1, -0.2, -0.3], rtol=1e-6)
    np.testing.assert_allclose(both["b"]["w"], [-2.05, 0.45], rtol=1e-6)  # -0.5 (g + 0.1 w)
    only_a, _ = tx.update(grads, state, params, active={"a": True, "b": False})
    np.testing.assert_array_equal(only_a["b"]["w"], [0.0, 0.0])
    np.testing.assert_allclose(only_a["a"]["w"], [-0.1, -0.2, -0.3], rtol=1e-6)
    unnamed, _ = tx.update(grads, state, params, active={"a": False})  # a part not named is trained
    np.testing.assert_allclose(unnamed["b"]["w"], [-2.05, 0.45], rtol=1e-6)
    np.testing.assert_array_equal(unnamed["a"]["w"], [0.0, 0.0, 0.0])
