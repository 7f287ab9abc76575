"""The MNIST detection scenes (repro/data/scenes.py), the detectors' data: placement, sizes, tight
boxes and masks, the split streams, the settings' bounds, and the digest that names them."""

import dataclasses
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from repro import detection
from repro.data import scenes as scene_module
from repro.data.scenes import MnistScenes, SceneSettings, make_scenes
from tests.conftest import REAL_DATA

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _digits(n, first_label, seed):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28, 1), np.uint8)
    images[:, 6:22, 9:19] = rng.integers(0, 256, (n, 16, 10, 1))  # ink off-centre, not square
    return images, (np.arange(n) % 5 + first_label).astype(np.int32)


def test_scenes_are_deterministic_and_their_boxes_are_tight_around_their_masks():
    images, labels = _digits(20, 0, 0)
    settings = SceneSettings(canvas=48, max_digits=3, min_size=12, max_size=30, max_overlap=0.2)
    scenes = make_scenes(images, labels, 30, settings, seed=0, stream=0)
    again = make_scenes(images, labels, 30, settings, seed=0, stream=0)
    assert all(np.array_equal(scenes[k], again[k]) for k in scenes)
    other = make_scenes(images, labels, 30, settings, seed=1, stream=0)
    assert not np.array_equal(scenes["image"], other["image"])
    valid = scenes["valid"].astype(bool)
    assert valid.any(1).all() and valid.sum() > 30                   # 1-3 digits each, some scenes > 1
    for i, slot in zip(*np.nonzero(valid), strict=True):
        mask = scenes["masks"][i, slot].astype(bool)
        rows, cols = np.nonzero(mask)
        np.testing.assert_array_equal(scenes["boxes"][i, slot],
                                      [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        assert np.all(scenes["image"][i, :, :, 0][mask] >= settings.mask_threshold)
        assert scenes["classes"][i, slot] in set(labels.tolist())
    assert not scenes["masks"][~valid].any() and not scenes["boxes"][~valid].any()
    for i in range(30):
        boxes = scenes["boxes"][i][valid[i]]
        overlaps = np.asarray(detection.iou(jnp.asarray(boxes), jnp.asarray(boxes)))
        assert np.all(overlaps[~np.eye(len(boxes), dtype=bool)] <= 0.2 + 1e-6)


def test_scene_sizes_reach_both_ends_of_their_range():
    images = np.full((4, 28, 28, 1), 255, np.uint8)                 # ink everywhere: box = frame
    settings = SceneSettings(canvas=40, max_digits=1, min_size=10, max_size=13, max_overlap=1.0)
    scenes = make_scenes(images, np.zeros(4, np.int32), 200, settings, seed=0, stream=0)
    widths = scenes["boxes"][:, 0, 2] - scenes["boxes"][:, 0, 0]
    assert set(widths.tolist()) == {10.0, 11.0, 12.0, 13.0}
    x0 = scenes["boxes"][:, 0, 0]
    assert x0.min() == 0 and (x0 + widths).max() == 40               # flush with both edges
    assert scenes["image"].max() == 255                              # full ink survives the scaling


def test_train_scenes_use_train_digits_only_and_the_digest_names_the_arrays():
    from repro.data.dataset import Dataset

    train, test = _digits(30, 0, 1), _digits(10, 5, 2)                # classes 0-4 / 5-9
    data = Dataset("mnist", {"train": {"image": train[0], "label": train[1]},
                             "test": {"image": test[0], "label": test[1]}}, "hand-made")
    derive = MnistScenes(train_scenes=12, test_scenes=6, canvas=48, min_size=12, max_size=24)
    scenes = derive(data)
    assert scenes.split("train")["image"].shape == (12, 48, 48, 1) and len(scenes.split("test")["valid"]) == 6
    for split, allowed in (("train", range(5)), ("test", range(5, 10))):
        s = scenes.split(split)
        assert set(s["classes"][s["valid"].astype(bool)].tolist()) <= set(allowed)
    assert scenes.fields["boxes"].valid == "valid" and scenes.fields["masks"].kind == "masks"
    sha = scenes.files["mnist_scenes"]["sha256"]
    assert derive(data).files["mnist_scenes"]["sha256"] == sha
    assert MnistScenes(12, 6, seed=1, canvas=48, min_size=12, max_size=24)(data).files["mnist_scenes"][
        "sha256"] != sha
    with pytest.raises(ValueError, match="min_size <= max_size"):
        MnistScenes(canvas=32, min_size=20, max_size=40)


def test_ground_truth_scenes_score_coco_ap_1_for_boxes_and_masks():
    from repro import coco

    images, labels = _digits(20, 0, 3)
    scenes = make_scenes(images, labels, 10, SceneSettings(canvas=48, min_size=12, max_size=30), 0, 1)
    perfect = {"boxes": scenes["boxes"], "scores": scenes["valid"].astype(np.float32),
               "classes": scenes["classes"], "masks": scenes["masks"]}
    for iou_type, key in (("bbox", "box_ap"), ("segm", "mask_ap")):
        assert coco.CocoAP(iou_type=iou_type).compute(perfect, scenes)[key] == pytest.approx(1.0)




def test_scene_iou_by_hand_on_boxes_whose_every_side_differs():
    box = np.asarray([1.0, 5.0, 4.0, 9.0])                          # 3 wide, 4 high
    assert scene_module._iou(box, []) == 0.0
    assert scene_module._iou(box, [np.asarray([2.0, 6.0, 7.0, 8.0])]) == pytest.approx(4 / (12 + 10 - 4))
    assert scene_module._iou(box, [np.asarray([10.0, 20.0, 12.0, 23.0])]) == 0.0   # apart on both axes
    assert scene_module._iou(box, [np.asarray([4.0, 5.0, 6.0, 9.0])]) == 0.0       # touching
    assert scene_module._iou(box, [np.asarray([2.0, 12.0, 3.0, 14.0])]) == 0.0     # apart in y only
    assert scene_module._iou(box, [np.asarray([6.0, 6.0, 8.0, 8.0])]) == 0.0       # apart in x only
    assert scene_module._iou(box, [np.asarray([0.0, 0.0, 2.0, 2.0]), box]) == 1.0   # the best of several


def test_scene_settings_accept_their_bounds_and_refuse_one_past_them():
    assert SceneSettings() == SceneSettings(canvas=64, max_digits=4, min_size=16, max_size=36,
                                            max_overlap=0.3, mask_threshold=128)
    for ok in ({"max_digits": 1}, {"min_size": 8, "max_size": 8},
               {"min_size": 30, "max_size": 40, "canvas": 40}, {"max_overlap": 0.0}, {"max_overlap": 1.0}):
        SceneSettings(**ok)
    for bad, message in (({"max_digits": 0}, "max_digits"), ({"min_size": 7}, "min_size"),
                         ({"min_size": 30, "max_size": 41, "canvas": 40}, "max_size"),
                         ({"min_size": 20, "max_size": 19}, "max_size"),
                         ({"max_overlap": -0.01}, "max_overlap"), ({"max_overlap": 1.01}, "max_overlap")):
        with pytest.raises(ValueError, match=message):
            SceneSettings(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):  # validated once: it cannot change after
        SceneSettings().canvas = 32
    derive = MnistScenes()
    assert derive.counts == {"train": 10000, "test": 1000} and derive.seed == 0 and derive.proposals is None
    MnistScenes(1, 1)
    for counts in ((0, 1), (1, 0)):
        with pytest.raises(ValueError, match="at least 1"):
            MnistScenes(*counts)


def test_a_digits_mask_is_its_pixels_at_the_threshold_and_up_and_a_blank_digit_is_left_out():
    """Digits of one grey value at the 28-pixel size (no scaling): value 128 is ink (a box the
    frame's size), 127 is not, so that digit is left out, and the scene's next slots still fill."""
    images = np.stack([np.full((28, 28, 1), 128, np.uint8), np.full((28, 28, 1), 127, np.uint8)])
    settings = SceneSettings(canvas=64, max_digits=4, min_size=28, max_size=28, max_overlap=1.0)
    scenes = make_scenes(images, np.asarray([1, 9], np.int32), 100, settings, seed=0, stream=0)
    valid = scenes["valid"].astype(bool)
    assert set(np.unique(scenes["valid"]).tolist()) == {0, 1}
    assert (scenes["classes"][valid] == 1).all() and valid.any()
    widths = scenes["boxes"][..., 2:] - scenes["boxes"][..., :2]
    assert (widths[valid] == 28).all() and scenes["image"].max() == 128
    assert (valid[:, 1:] & ~valid[:, :-1]).any()                    # a slot filled after a blank one


def test_a_digit_that_cannot_be_placed_is_left_out_and_the_scenes_next_slots_still_fill():
    """max_overlap 0 on a small canvas: a digit that finds no free place in 50 draws is dropped
    (its slot stays empty), later smaller digits may still fit; placed boxes never overlap."""
    images = np.full((1, 28, 28, 1), 255, np.uint8)
    settings = SceneSettings(canvas=24, max_digits=4, min_size=8, max_size=20, max_overlap=0.0)
    scenes = make_scenes(images, np.zeros(1, np.int32), 200, settings, seed=0, stream=0)
    valid = scenes["valid"].astype(bool)
    assert (valid[:, 1:] & ~valid[:, :-1]).any()
    assert (valid.sum(1) > 1).any()                                 # an IoU of 0 is not over 0
    for i in range(200):
        boxes = scenes["boxes"][i][valid[i]]
        overlaps = np.asarray(detection.iou(jnp.asarray(boxes), jnp.asarray(boxes)))
        assert np.all(overlaps[~np.eye(len(boxes), dtype=bool)] == 0.0)


@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="no MNIST mirror")
def test_the_committed_detection_results_scenes_are_what_this_code_makes():
    """The scene digest each committed Faster / Mask R-CNN result records (without proposals) is
    that of the scenes made now from the MNIST mirror with the result's own settings: a change to
    scene generation would leave those results unreproducible."""
    from repro.data.dataset import load_dataset

    recorded = {}
    for path in sorted(RESULTS.glob("*/*.json")):
        result = json.loads(path.read_text())
        derive = (result.get("config", {}).get("data") or {}).get("derive") or {}
        if derive.get("_target_") == "repro.data.scenes.MnistScenes" and not derive.get("proposals"):
            settings = json.dumps({k: v for k, v in derive.items() if k not in ("_target_", "proposals")},
                                  sort_keys=True)
            recorded.setdefault(settings, set()).add(result["data"]["sha256"]["mnist_scenes"])
    assert recorded, "no committed scene results found"
    mnist = load_dataset("mnist", str(REAL_DATA))
    for settings, digests in recorded.items():
        made = MnistScenes(**json.loads(settings))(mnist).files["mnist_scenes"]
        assert digests == {made["sha256"]} and made["official"] is False


def test_a_digit_is_drawn_again_up_to_50_times_then_left_out(monkeypatch):
    """Every placement judged overlapping (IoU 1 with any earlier box): each scene keeps its first
    digit, and each later one is drawn exactly 50 times before it is left out."""
    calls = []

    def always_overlapping(box, others):
        calls.append(len(others))
        return 1.0 if others else 0.0

    monkeypatch.setattr(scene_module, "_iou", always_overlapping)
    images = np.full((1, 28, 28, 1), 255, np.uint8)
    settings = SceneSettings(canvas=64, max_digits=4, min_size=16, max_size=16, max_overlap=0.3)
    scenes = make_scenes(images, np.zeros(1, np.int32), 20, settings, seed=0, stream=0)
    assert (scenes["valid"].sum(1) == 1).all() and scenes["valid"][:, 0].all()
    # per scene: its first digit's one call (no earlier box), then 50 calls per later digit
    runs = [len(run) for run in "".join(map(str, calls)).split("0")[1:]]
    assert len(runs) == 20 and {r % 50 for r in runs} == {0} and max(runs) >= 50
