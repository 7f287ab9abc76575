"""Batch transforms keep every geometric field of an example consistent with its image."""

import jax
import numpy as np
import pytest
from conftest import SCENE_HW
from conftest import detection_scenes as scenes

from repro.data.fields import Field
from repro.data.transforms import Normalize, RandomCropFlip, Transforms, move_boxes, random_crop_flip

FIELDS = {"image": Field("image"), "boxes": Field("boxes", valid="valid"),
          "masks": Field("masks", valid="valid"), "classes": Field("classes", valid="valid"),
          "valid": Field("valid")}
H, W = SCENE_HW  # every dimension differs: a transposed box or mask cannot pass
def mask_box(mask):
    """The tight box (x0, y0, x1, y1) of a 0/1 mask [H, W], or None when it is empty."""
    ys, xs = np.nonzero(mask)
    return None if len(xs) == 0 else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_a_flip_moves_boxes_masks_and_image_exactly():
    batch = scenes()
    out = jax.device_get(RandomCropFlip(pad=0)(batch, FIELDS, key=jax.random.key(1)))
    same = np.all(out["image"] == batch["image"], axis=(1, 2, 3))
    mirrored = np.all(out["image"] == batch["image"][:, :, ::-1], axis=(1, 2, 3))
    assert (same | mirrored).all()
    for i in range(len(batch["image"])):
        was_flipped = not np.array_equal(out["image"][i], batch["image"][i])
        x0, y0, x1, y1 = batch["boxes"][i].T
        expected = np.stack([W - x1, y0, W - x0, y1], -1) if was_flipped else batch["boxes"][i]
        np.testing.assert_array_equal(out["boxes"][i] * batch["valid"][i][:, None],
                                      expected * batch["valid"][i][:, None])
        want_masks = batch["masks"][i][:, :, ::-1] if was_flipped else batch["masks"][i]
        np.testing.assert_array_equal(out["masks"][i], want_masks)
    assert 0 < sum(not np.array_equal(o, b) for o, b in zip(out["image"], batch["image"], strict=True)) < 6
    np.testing.assert_array_equal(out["classes"], batch["classes"])  # not geometric: untouched


@pytest.mark.parametrize("seed", range(4))
def test_a_crop_and_flip_keep_each_box_equal_to_its_masks_extent_and_pixels(seed):
    batch = scenes(n=16, seed=seed)
    out = jax.device_get(RandomCropFlip(pad=3)(batch, FIELDS, key=jax.random.key(seed)))
    for i in range(16):
        for k, value in enumerate((100, 200)):
            if not batch["valid"][i, k]:
                assert out["valid"][i, k] == 0
                continue
            tight = mask_box(out["masks"][i, k])
            if tight is None:  # cropped out of the canvas: marked invalid
                assert out["valid"][i, k] == 0
                continue
            assert out["valid"][i, k] == 1
            np.testing.assert_array_equal(out["boxes"][i, k], np.asarray(tight, np.float32))
            inside = out["masks"][i, k].astype(bool)
            assert (out["image"][i, ..., 0][inside] == value).all()


def test_a_box_cropped_off_the_canvas_is_marked_invalid():
    batch = scenes(n=1)
    batch["boxes"][0, 0] = (0, 0, 2, 2)  # a 2x2 box in the corner: a crop corner of 5 or 6 in
    for s in range(200):                 # either axis shifts it by -2 or -3, off the canvas
        out = jax.device_get(RandomCropFlip(pad=3, flip=False)(batch, FIELDS, key=jax.random.key(s)))
        if out["boxes"][0, 0, 2] == 0 or out["boxes"][0, 0, 3] == 0:
            assert out["valid"][0, 0] == 0
            return
    pytest.fail("no key moved the box off the canvas")


def test_evaluation_applies_only_the_deterministic_transforms():
    transforms = Transforms([RandomCropFlip(pad=3), Normalize([0.0], [255.0])], FIELDS)
    batch = scenes()
    out = jax.device_get(transforms(batch, train=False))
    np.testing.assert_allclose(out["image"], batch["image"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(out["boxes"], batch["boxes"])
    again = jax.device_get(transforms(batch, train=False))
    np.testing.assert_array_equal(again["image"], out["image"])
    by_default = jax.device_get(transforms(batch))  # no `train`: evaluation, never augmentation
    np.testing.assert_array_equal(by_default["image"], out["image"])
    with pytest.raises(ValueError, match="is random: give the transforms a key"):
        transforms(batch, train=True)


def test_boxes_moved_off_the_canvas_are_clipped_to_its_edges_not_beyond():
    boxes = np.array([[[1.0, 0.0, 3.0, 3.0], [20.0, 9.0, 23.0, 11.0]]])  # canvas 24 wide, 12 high
    # corner (row 8, col 8) with pad 4: every box moves 4 left and 4 up; the first leaves the canvas
    # over its top-left corner and is clipped to it (no coordinate below 0)
    moved = np.asarray(move_boxes(boxes, np.array([[8, 8]]), np.array([False]), 4, 24, 12))
    np.testing.assert_array_equal(moved[0], [[0, 0, 0, 0], [16, 5, 19, 7]])
    # corner (0, 0), flipped: 4 right and 4 down (the second box clipped to the bottom-right corner),
    # then mirrored, x -> 24 - x
    back = np.asarray(move_boxes(boxes, np.array([[0, 0]]), np.array([True]), 4, 24, 12))
    np.testing.assert_array_equal(back[0], [[17, 4, 19, 7], [0, 12, 0, 12]])


@pytest.mark.parametrize("make", ["function", "class"])
def test_the_default_crop_pads_by_4_pixels_reaches_both_ends_and_flips_half(make):
    """He et al.'s CIFAR augmentation, the default of both entry points: shifts of -4..4 pixels on
    each axis, drawn apart, and a horizontal flip of about half the images."""
    image = np.zeros((400, 9, 21, 1), np.float32)
    image[:, 4, 5] = 1.0  # one lit pixel, more than 4 from the top, bottom and left edges
    key = jax.random.key(0)
    if make == "function":
        out = np.asarray(random_crop_flip(key, image))
    else:
        out = np.asarray(RandomCropFlip()({"image": image}, {"image": Field("image")}, key=key)["image"])
    rows, cols = np.nonzero(out[..., 0])[1:]
    assert len(rows) == 400  # never cropped away at these shifts
    flipped = cols > 10  # unflipped, the pixel lands in columns 1..9; mirrored, in 20 - (1..9)
    cols = np.where(flipped, 20 - cols, cols)
    assert 150 < flipped.sum() < 250
    assert sorted(set((rows - 4).tolist())) == list(range(-4, 5))
    assert sorted(set((cols - 5).tolist())) == list(range(-4, 5))
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 60  # of 81: the axes are drawn apart


def test_validity_follows_the_area_left_on_the_canvas_at_its_edges():
    fields = {"image": Field("image"), "boxes": Field("boxes", valid="valid"), "valid": Field("valid")}
    image = np.zeros((1, 12, 24, 1), np.float32)  # pad 0, no flip: boxes are only clipped
    boxes = np.array([[[3.0, 0.0, 4.0, 1.0],       # 1 x 1 pixel in the top row: area 1, kept
                       [5.0, 13.0, 9.0, 15.0],     # below the 12-row canvas: area 0, dropped
                       [25.0, 2.0, 27.0, 4.0]]])   # right of the 24-column canvas: dropped
    batch = {"image": image, "boxes": boxes, "valid": np.ones((1, 3), np.int32)}
    crop = RandomCropFlip(pad=0, flip=False)
    out = jax.device_get(crop(batch, fields, key=jax.random.key(0)))
    np.testing.assert_array_equal(out["boxes"][0], [[3, 0, 4, 1], [5, 12, 9, 12], [24, 2, 24, 4]])
    assert out["valid"][0].tolist() == [1, 0, 0]
    without = {k: v for k, v in batch.items() if k != "valid"}  # a declared valid field may be absent
    moved = jax.device_get(crop(without, fields, key=jax.random.key(0)))
    assert "valid" not in moved and np.array_equal(moved["boxes"], out["boxes"])


def test_a_configured_transform_list_replaces_the_default_steps():
    from omegaconf import OmegaConf

    from repro.data.transforms import for_data

    cfg = OmegaConf.create({"augment": "crop_flip", "pad": 4, "mean": [0.0], "std": [1.0],
                            "transforms": [{"_target_": "repro.data.transforms.Normalize",
                                            "mean": [10.0], "std": [2.0]}]})
    [only] = for_data(cfg, None).transforms  # the list, not crop/flip then the data's mean and std
    assert isinstance(only, Normalize) and (only.mean, only.std) == ((10.0,), (2.0,))
    default = for_data(OmegaConf.create({**OmegaConf.to_container(cfg), "transforms": None}), None)
    assert [type(t) for t in default.transforms] == [RandomCropFlip, Normalize]


def test_the_crop_and_flip_draws_are_pinned_for_a_key():
    """Committed results that augment are bitwise functions of this stream: a change to how the
    offsets are drawn (another shape, another split of the key) must show here first."""
    from repro.data.transforms import crop_flip_offsets

    corners, flips = crop_flip_offsets(jax.random.key(0), 4, 4, True)
    assert np.asarray(corners).tolist() == [[1, 8], [1, 1], [1, 7], [4, 7]]
    assert np.asarray(flips).tolist() == [True, True, False, True]
