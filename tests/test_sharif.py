"""Sharif et al. 2018's measurable half (experiments/sharif_mnist): the natural changes and distances,
the L0 ball of PGD, the ensemble's independent members, the two evaluators, and a short real-data run
with its panel derived from the kept weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from flax import nnx

from experiments.sharif_mnist import changes, ensemble, study
from repro import attacks
from tests.conftest import REAL_DATA, compose, needs_real_mnist


def _dot(h=6, w=9, row=2, col=3, value=1.0):
    x = np.zeros((1, h, w, 1), np.float32)  # h != w: a transpose or a swapped axis shows
    x[0, row, col, 0] = value
    return x


# --- changes and distances ------------------------------------------------------------------------

def test_a_one_pixel_image_shifted_by_one_pixel_is_at_l0_2_l2_sqrt2_linf_1():
    x = _dot()
    for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1)):
        d = {k: float(v[0]) for k, v in changes.distances(x, changes.shift(jnp.asarray(x), dx, dy)).items()}
        assert d == pytest.approx({"l0": 2.0, "l2": np.sqrt(2.0), "linf": 1.0})


def test_distances_by_hand_and_l0_counts_only_changes_an_8_bit_display_shows():
    a = np.zeros((2, 2, 3, 1), np.float32)
    b = a.copy()
    b[0, 0, 0, 0], b[0, 1, 2, 0] = 0.3, -0.4           # two changes: l2 = 0.5, linf = 0.4
    b[1, 0, 1, 0] = 0.4 / 255.0                          # under half a level: not counted by L0
    b[1, 1, 1, 0] = 0.6 / 255.0                          # over it: counted
    d = {k: np.asarray(v) for k, v in changes.distances(a, b).items()}
    assert d["l0"].tolist() == [2.0, 1.0]
    np.testing.assert_allclose(d["l2"], [0.5, np.hypot(0.4, 0.6) / 255.0], rtol=1e-5)
    np.testing.assert_allclose(d["linf"], [0.4, 0.6 / 255.0], rtol=1e-5)


def test_shifts_move_content_by_whole_pixels_and_let_zeros_in():
    x = np.random.default_rng(0).random((2, 6, 9, 1)).astype(np.float32) + 0.1
    right = np.asarray(changes.shift(jnp.asarray(x), 2, 0))
    np.testing.assert_array_equal(right[:, :, 2:], x[:, :, :-2])
    assert not right[:, :, :2].any()
    up = np.asarray(changes.shift(jnp.asarray(x), 0, -1))
    np.testing.assert_array_equal(up[:, :-1], x[:, 1:])
    assert not up[:, -1].any()
    np.testing.assert_array_equal(np.asarray(changes.shift(jnp.asarray(x), 0, 0)), x)
    with pytest.raises(ValueError, match="moves the whole"):
        changes.shift(jnp.asarray(x), 9, 0)


def test_rotation_is_scipys_inside_the_image_counter_clockwise_and_0_degrees_is_the_identity():
    x = np.zeros((1, 20, 24, 1), np.float32)
    x[0, 6:14, 8:15, 0] = np.random.default_rng(1).random((8, 7))  # away from the border
    for degrees in (1.0, -3.0, 5.0, 30.0):
        ours = np.asarray(changes.rotate(jnp.asarray(x), degrees))[0]
        theirs = scipy.ndimage.rotate(x[0], degrees, reshape=False, order=1)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(np.asarray(changes.rotate(jnp.asarray(x), 0.0)), x, atol=1e-6)
    dot = np.zeros((1, 5, 5, 1), np.float32)
    dot[0, 2, 4, 0] = 1.0                                 # right of the centre ...
    turned = np.asarray(changes.rotate(jnp.asarray(dot), 90.0))[0, :, :, 0]
    assert turned[0, 2] == pytest.approx(1.0, abs=1e-5)   # ... goes to the top
    assert np.abs(turned).sum() == pytest.approx(1.0, abs=1e-5)


def test_brightness_and_contrast_by_hand_and_clipped_to_the_pixel_range():
    x = np.asarray([0.0, 0.5, 0.95, 1.0], np.float32).reshape(1, 1, 4, 1)
    np.testing.assert_allclose(np.asarray(changes.brightness(jnp.asarray(x), 0.1)).ravel(),
                               [0.1, 0.6, 1.0, 1.0], rtol=1e-6)
    mean = x.mean()
    np.testing.assert_allclose(np.asarray(changes.contrast(jnp.asarray(x), 0.8)).ravel(),
                               np.clip(mean + 0.8 * (x.ravel() - mean), 0, 1), rtol=1e-6)
    # mean 0.6125: 0.6125 + 3 (x - 0.6125) = -1.225, 0.275, 1.625, 1.775, then clipped
    np.testing.assert_allclose(np.asarray(changes.contrast(jnp.asarray(x), 3.0)).ravel(), [0, 0.275, 1, 1],
                               atol=1e-6)


def test_a_change_config_is_checked_and_dispatched():
    x = jnp.asarray(_dot())
    np.testing.assert_array_equal(changes.apply(x, {"name": "s", "kind": "shift", "dx": 1}),
                                  changes.shift(x, 1, 0))
    with pytest.raises(ValueError, match="unknown change 'blur'"):
        changes.apply(x, {"name": "b", "kind": "blur"})
    with pytest.raises(ValueError, match="needs a name and a kind"):
        changes.check([{"kind": "shift"}])
    with pytest.raises(ValueError, match="names must differ"):
        changes.check([{"name": "a", "kind": "shift"}, {"name": "a", "kind": "rotate", "degrees": 1}])


def test_ssim_of_an_image_with_itself_is_1_and_a_shift_lowers_it():
    x = np.random.default_rng(2).random((3, 28, 28, 1))
    np.testing.assert_allclose(changes.ssim(x, x), 1.0)
    shifted = np.asarray(changes.shift(jnp.asarray(x, jnp.float32), 1, 0))
    assert np.all(changes.ssim(x, shifted) < 0.9)


# --- the L0 ball of PGD ---------------------------------------------------------------------------

def test_l0_projection_keeps_exactly_the_k_largest_changes_and_leaves_points_inside_untouched():
    delta = jnp.asarray([[0.1, -0.5, 0.3, 0.0, -0.2, 0.4], [0.2, 0.2, 0.2, 0.2, 0.0, 0.0]])
    kept = np.asarray(attacks.project(delta, 3, "l0"))
    np.testing.assert_allclose(kept[0], [0, -0.5, 0.3, 0, 0, 0.4])
    assert (kept[1] != 0).sum() == 3                      # a tie at the k-th value: still exactly 3
    inside = jnp.asarray([[0.0, 0.7, 0.0, -0.1, 0.0, 0.0]])
    np.testing.assert_array_equal(attacks.project(inside, 2, "l0"), inside)
    np.testing.assert_array_equal(attacks.project(delta, 6, "l0"), delta)
    assert not np.asarray(attacks.project(delta, 0, "l0")).any()
    for bad in (2.5, 7, -1):
        with pytest.raises(ValueError, match="whole number"):
            attacks.project(delta, bad, "l0")


def test_l0_pgd_changes_at_most_k_pixels_inside_the_pixel_range_and_uses_them():
    w = jax.random.normal(jax.random.key(0), (30, 4))
    model = lambda x: x.reshape(x.shape[0], -1) @ w
    x = jax.random.uniform(jax.random.key(1), (64, 30))
    y = jnp.argmax(model(x), -1)
    adv = attacks.pgd(attacks.cross_entropy(model), x, y, eps=5, step_size=0.25, steps=30, norm="l0",
                      targeted=False)
    changed = (np.abs(np.asarray(adv - x)) > 0).sum(-1)
    assert changed.max() <= 5 and np.mean(changed == 5) > 0.5
    assert np.all((np.asarray(adv) >= 0) & (np.asarray(adv) <= 1))
    assert np.mean(np.asarray(jnp.argmax(model(adv), -1) != y)) > 0.5  # and it moves decisions


# --- the ensemble -----------------------------------------------------------------------------------

def _ensemble(members=3, shape=(10, 8, 1)):
    return ensemble.ConvNetEnsemble(shape, 5, members=members, rngs=nnx.Rngs(0))


def test_members_start_apart_and_each_trains_on_its_own_slice_of_the_batch():
    model = _ensemble()
    x = jax.random.uniform(jax.random.key(3), (6, 10, 8, 1))
    logits = model(x)
    assert logits.shape == (3, 6, 5)
    assert not np.allclose(logits[0], logits[1])          # own initializations
    objective = ensemble.EnsembleClassification()
    labels = jnp.asarray([0, 1, 2, 3, 4, 0])

    def grads(labels):
        return nnx.grad(lambda m: objective.train_loss(m, {"image": x, "label": labels})[0])(model)

    base = grads(labels)
    moved = grads(labels.at[2].set(4))                    # example 2 is member 1's (slices of 2)
    for m in range(3):
        same = jax.tree.all(jax.tree.map(np.allclose, base.members[m], moved.members[m]))
        assert same == (m != 1)
    with pytest.raises(ValueError, match="multiple of 3"):
        objective.train_loss(model, {"image": x[:5], "label": labels[:5]})
    with pytest.raises(ValueError, match="at least one judge"):
        _ensemble(members=1)


def test_evaluation_reports_the_reference_and_the_judges_apart():
    model = _ensemble()
    x = jax.random.uniform(jax.random.key(4), (6, 10, 8, 1))
    decisions = np.asarray(jnp.argmax(model(x), -1))
    batch = {"image": x, "label": jnp.asarray(decisions[0])}
    out = ensemble.EnsembleClassification().per_example(model, batch, train=False)
    np.testing.assert_array_equal(out["accuracy"], 1.0)
    np.testing.assert_allclose(out["judges_accuracy"], (decisions[1:] == decisions[0]).mean(0))


# --- the evaluators ---------------------------------------------------------------------------------

def _split(n=6, h=10, w=8):
    rng = np.random.default_rng(5)
    images = np.zeros((n, h, w, 1), np.uint8)
    images[:, 3:7, 2:5] = rng.integers(60, 255, (n, 4, 3, 1))
    return {"image": images, "label": rng.integers(0, 5, n).astype(np.int32)}


def _predict(evaluator, model, split):
    batch = {"image": jnp.asarray(split["image"], jnp.float32) / 255.0, "label": jnp.asarray(split["label"])}
    return jax.tree.map(np.asarray, evaluator.predict(model, batch))


def test_natural_changes_by_hand_a_null_change_and_a_shift():
    split = _split()
    evaluator = study.NaturalChanges(
        [{"name": "none", "kind": "shift", "dx": 0, "dy": 0}, {"name": "shift1", "kind": "shift", "dx": 1}],
        {"l0": 3, "l2": 100.0, "linf": 0.1}, mean=[0.0], std=[255.0])
    out = evaluator.compute(_predict(evaluator, _ensemble(), split), split)
    null = {"l0": 0, "l2": 0, "linf": 0, "ssim": 1, "beyond_l0": 0, "beyond_all": 0, "kept": 1,
            "judges_kept": 1}
    assert {k: out[f"none_{k}"] for k in null} == pytest.approx(null)
    x = split["image"].astype(np.float64) / 255.0
    shifted = np.zeros_like(x)
    shifted[:, :, 1:] = x[:, :, :-1]
    d = np.abs(shifted - x).reshape(len(x), -1)
    assert out["shift1_l0"] == np.median((d > 0.5 / 255).sum(-1))
    assert out["shift1_l2"] == pytest.approx(np.median(np.sqrt((d * d).sum(-1))), rel=1e-5)
    assert out["shift1_beyond_l0"] == 1.0 and out["shift1_beyond_l2"] == 0.0   # 8 pixels > 3; < 100
    assert out["shift1_beyond_all"] == 0.0
    with pytest.raises(ValueError, match="budgets are given per norm"):
        study.NaturalChanges([], {"l1": 1.0}, mean=[0.0], std=[255.0])


def test_budget_attacks_stay_within_and_compare_ssim_with_the_norm_pair_by_pair():
    split = _split()
    attack_list = [{"name": "linf", "norm": "linf", "step_size": 0.05, "steps": 10},
                   {"name": "l0", "norm": "l0", "step_size": 0.5, "steps": 10}]
    evaluator = study.BudgetAttacks(attack_list, {"l0": 4, "linf": 0.2},
                                    {"name": "shift1", "kind": "shift", "dx": 1}, mean=[0.0], std=[255.0])
    predictions = _predict(evaluator, _ensemble(), split)
    out = evaluator.compute(predictions, split)
    assert out["linf_within"] == 1.0 and out["l0_within"] == 1.0
    assert out["linf_linf"] == pytest.approx(0.2, abs=1e-6) and out["l0_l0"] <= 4
    original = split["image"] / 255.0
    ssim_change = changes.ssim(original, np.round(predictions["change/image"] * 255) / 255)
    ssim_attack = changes.ssim(original, predictions["linf/image"])
    closer = predictions["linf/linf"] < predictions["change/linf"]
    assert out["linf_ssim_prefers_change"] == pytest.approx(np.mean(ssim_change > ssim_attack))
    assert out["linf_disagree"] == pytest.approx(np.mean((ssim_change > ssim_attack) & closer))
    changed = predictions["linf/decision"] != predictions["clean"]
    assert out["linf_judges_changed"] == pytest.approx(changed[:, 1:].mean())
    assert out["linf_all_judges_changed"] == pytest.approx(changed[:, 1:].all(-1).mean())
    with pytest.raises(ValueError, match=r"no budget"):
        study.BudgetAttacks(attack_list, {"linf": 0.2}, {"name": "s", "kind": "shift"}, mean=[0.0],
                            std=[255.0])


def test_the_study_split_is_the_first_images_of_its_source():
    from repro.data.dataset import Dataset

    data = Dataset("mnist", {"train": _split(4), "test": _split(6)}, "hand-made")
    derived = study.StudySplit(size=4)(data, None)
    np.testing.assert_array_equal(derived.split("study")["image"], data.split("test")["image"][:4])
    with pytest.raises(ValueError, match="7 images asked"):
        study.StudySplit(size=7)(data, None)


# --- a short real-data run --------------------------------------------------------------------------

@needs_real_mnist()
def test_a_short_real_data_run_measures_both_halves_and_derives_its_panel(run_overrides, tmp_path):
    from experiments.sharif_mnist import panel
    from experiments.sharif_mnist.figures import make_figures
    from repro.run import run

    overrides = [o for o in run_overrides if not o.startswith(("data.dir", "data.allow_partial"))]
    cfg = compose(["experiment=sharif_mnist", *overrides, "data.limit_train=3000", "data.derive.size=40",
                   "train.steps=40", "train.chunk_steps=20", "train.eval_every=20",
                   "train.checkpoint_every=0",
                   "evaluators.0.split=study",
                   "evaluators.1.attacks.0.steps=5", "evaluators.1.attacks.1.steps=5",
                   "evaluators.1.attacks.2.steps=5"])
    result = run(cfg)
    final = result["final"]
    assert result["data"]["splits"]["study"] == 40 and 0 <= final["test/judges_accuracy"] <= 1
    for attack in ("linf", "l2", "l0"):
        assert final[f"study/{attack}_within"] == 1.0
        assert 0 <= final[f"study/{attack}_judges_changed"] <= 1
    assert final["study/l0_l0"] <= 32 and final["study/linf_linf"] <= 0.3 + 1e-6
    assert final["study/shift1_beyond_linf"] > 0.5            # a shift moves a stroke edge by ~1
    assert final["study/rotate1_l2"] < final["study/rotate5_l2"]

    results = tmp_path / "results"
    runs = panel.update(results, str(REAL_DATA), log=lambda _: None)
    entry = runs[result["name"]]
    assert len(entry["original"]) == panel.SHOW and set(entry) >= {"change", "linf", "l2", "l0"}
    assert max(entry["l0"]["l0"]) <= 32 and entry["change"]["ssim"][0] < 1
    drawn = make_figures({"mnist": [result]}, tmp_path, results / "sharif_mnist" / "figures")
    assert [p.name for _, p in drawn] == ["distances_mnist.png", "panel.png"]
    assert all(p.stat().st_size > 10_000 for _, p in drawn)
