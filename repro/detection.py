"""Box geometry and region features for two-stage detectors (Ren et al. 2015, Faster R-CNN; He et
al. 2017, Mask R-CNN), jittable with fixed shapes.

Boxes are (x0, y0, x1, y1) in pixels of a continuous image plane: pixel (r, c) covers
[c, c + 1) x [r, r + 1), so a box's width is x1 - x0 (no "+ 1"). Features are [H, W, C] maps of
stride `1 / spatial_scale` pixels.

- `iou`, `anchors`, `encode` / `decode`: the Faster R-CNN box parameterization (sec. 3.1.2):
  t_x = (x - x_a) / w_a, t_y = (y - y_a) / h_a, t_w = log(w / w_a), t_h = log(h / h_a) of the
  centres and sizes.
- `nms`: greedy non-maximum suppression to a fixed number of kept boxes.
- `roi_pool`: Fast R-CNN's RoIPool: the box's corners rounded to the feature grid (cells
  [round(x0 s), round(x1 s)), at least one), cut into bins whose edges are rounded too
  (floor / ceil), each bin's maximum (0 for an empty bin).
- `roi_align`: Mask R-CNN's RoIAlign: no rounding; in each bin `sampling` x `sampling` points
  sampled bilinearly and averaged. `aligned=True` shifts by half a pixel so that a pixel's
  value sits at its centre (Detectron2's correction); False is the paper's formulation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# the largest log size change decode applies (Detectron's clip: boxes at most 1000/16 x the anchor)
MAX_LOG_SCALE = float(np.log(1000.0 / 16.0))


def area(boxes):
    return jnp.clip(boxes[..., 2] - boxes[..., 0], 0) * jnp.clip(boxes[..., 3] - boxes[..., 1], 0)


def iou(a, b):
    """Intersection over union of every box of a [N, 4] with every box of b [M, 4]: [N, M]
    (0 where both are empty)."""
    top_left = jnp.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = jnp.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = jnp.prod(jnp.clip(bottom_right - top_left, 0), -1)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def anchors(height: int, width: int, stride: float, sizes, ratios) -> np.ndarray:
    """Anchors of a feature map [height, width] of `stride` pixels: at every cell centre
    ((col + 0.5) * stride, (row + 0.5) * stride), one box per (size, ratio) of area size^2 and
    height / width = ratio. [height * width * len(sizes) * len(ratios), 4], row-major over cells,
    then sizes, then ratios."""
    shapes = [(s / np.sqrt(r), s * np.sqrt(r)) for s in sizes for r in ratios]  # (w, h)
    ys, xs = np.meshgrid((np.arange(height) + 0.5) * stride, (np.arange(width) + 0.5) * stride, indexing="ij")
    centres = np.stack([xs, ys], -1).reshape(-1, 1, 2)
    half = np.asarray(shapes).reshape(1, -1, 2) / 2.0
    return np.concatenate([centres - half, centres + half], -1).reshape(-1, 4).astype(np.float32)


def _centre_size(boxes):
    size = boxes[..., 2:] - boxes[..., :2]
    return boxes[..., :2] + 0.5 * size, size


def encode(boxes, reference, weights=(1.0, 1.0, 1.0, 1.0)):
    """The regression targets (t_x, t_y, t_w, t_h) that take `reference` boxes (anchors or
    proposals) to `boxes`, both [..., 4] with positive sizes, scaled by `weights`."""
    centre, size = _centre_size(boxes)
    ref_centre, ref_size = _centre_size(reference)
    w = jnp.asarray(weights, jnp.float32)
    return jnp.concatenate([(centre - ref_centre) / ref_size, jnp.log(size / ref_size)], -1) * w


def decode(deltas, reference, weights=(1.0, 1.0, 1.0, 1.0)):
    """The boxes `deltas` (as encode makes them) give from `reference` boxes; the size change is
    clipped at MAX_LOG_SCALE so that an untrained head cannot overflow."""
    deltas = deltas / jnp.asarray(weights, jnp.float32)
    ref_centre, ref_size = _centre_size(reference)
    centre = ref_centre + deltas[..., :2] * ref_size
    size = ref_size * jnp.exp(jnp.minimum(deltas[..., 2:], MAX_LOG_SCALE))
    return jnp.concatenate([centre - 0.5 * size, centre + 0.5 * size], -1)


def clip(boxes, height: float, width: float):
    """Boxes cut to the image [0, width] x [0, height]."""
    limit = jnp.asarray([width, height, width, height], jnp.float32)
    return jnp.clip(boxes, 0.0, limit)


def nms(boxes, scores, iou_threshold: float, max_out: int):
    """Greedy non-maximum suppression: repeatedly keep the highest-scoring box left and drop the
    boxes overlapping it by more than `iou_threshold`. Boxes with score -inf are never kept.
    Returns (indices [max_out], valid [max_out]): the kept boxes in order of score, padded with
    index 0 and valid False when fewer remain."""
    overlaps = iou(boxes, boxes)

    def pick(alive_scores, _):
        best = jnp.argmax(alive_scores)
        ok = alive_scores[best] > -jnp.inf
        suppressed = (overlaps[best] > iou_threshold) | (jnp.arange(len(scores)) == best)
        alive_scores = jnp.where(ok & suppressed, -jnp.inf, alive_scores)
        return alive_scores, (jnp.where(ok, best, 0), ok)

    _, (indices, valid) = jax.lax.scan(pick, scores.astype(jnp.float32), None, length=max_out)
    return indices, valid


def _bin_edges(start, end, bins: int):
    """[R, bins] integer start and end (exclusive) of each RoIPool bin along one axis."""
    length = jnp.maximum(end - start, 1).astype(jnp.float32)  # a rounded box covers >= 1 cell
    step = length / bins
    i = jnp.arange(bins, dtype=jnp.float32)
    lo = start[:, None] + jnp.floor(i * step[:, None]).astype(jnp.int32)
    hi = start[:, None] + jnp.ceil((i + 1) * step[:, None]).astype(jnp.int32)
    return lo, hi


def roi_pool(features, boxes, output_size: tuple[int, int], spatial_scale: float):
    """Fast R-CNN's RoIPool of `boxes` [R, 4] (image pixels) from features [H, W, C]:
    [R, out_h, out_w, C]. Box corners are rounded to the nearest feature cell (the quantization
    RoIAlign removes); bin edges are floored / ceiled; a bin outside the map is 0."""
    height, width = features.shape[:2]
    out_h, out_w = output_size
    corners = jnp.round(boxes * spatial_scale).astype(jnp.int32)
    x0, y0, x1, y1 = (corners[:, i] for i in range(4))
    row_lo, row_hi = _bin_edges(y0, y1, out_h)
    col_lo, col_hi = _bin_edges(x0, x1, out_w)
    rows, cols = jnp.arange(height), jnp.arange(width)
    in_row = (rows >= row_lo[..., None]) & (rows < row_hi[..., None])  # [R, oh, H]: outside the map, none
    in_col = (cols >= col_lo[..., None]) & (cols < col_hi[..., None])
    # separable maximum: over columns per column bin, then over rows per row bin
    neg = jnp.asarray(-jnp.inf, features.dtype)
    over_cols = jnp.where(in_col[:, :, None, :, None], features[None, None], neg).max(3)  # [R, ow, H, C]
    pooled = jnp.where(in_row[:, :, None, :, None], over_cols[:, None], neg).max(3)       # [R, oh, ow, C]
    return jnp.where(jnp.isneginf(pooled), 0.0, pooled)


def bilinear(features, y, x):
    """features [H, W, C] sampled at real coordinates (y, x) (any equal shapes; cell centres at
    integers): 0 more than one cell outside the map, the edge value up to there (as Detectron's
    RoIAlign)."""
    height, width = features.shape[:2]
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y, x = jnp.clip(y, 0.0, height - 1.0), jnp.clip(x, 0.0, width - 1.0)
    y0, x0 = jnp.floor(y).astype(jnp.int32), jnp.floor(x).astype(jnp.int32)
    y1, x1 = jnp.minimum(y0 + 1, height - 1), jnp.minimum(x0 + 1, width - 1)
    dy, dx = (y - y0)[..., None], (x - x0)[..., None]
    value = (features[y0, x0] * (1 - dy) * (1 - dx) + features[y0, x1] * (1 - dy) * dx
             + features[y1, x0] * dy * (1 - dx) + features[y1, x1] * dy * dx)
    return jnp.where(outside[..., None], 0.0, value)


def roi_align(features, boxes, output_size: tuple[int, int], spatial_scale: float, sampling: int = 2,
              aligned: bool = True):
    """Mask R-CNN's RoIAlign of `boxes` [R, 4] (image pixels) from features [H, W, C]:
    [R, out_h, out_w, C], each bin the mean of sampling x sampling bilinear samples at the
    centres of a regular grid inside it."""
    out_h, out_w = output_size
    offset = 0.5 if aligned else 0.0
    scaled = boxes * spatial_scale - offset
    x0, y0 = scaled[:, 0], scaled[:, 1]
    bin_w = (scaled[:, 2] - x0) / out_w
    bin_h = (scaled[:, 3] - y0) / out_h
    if not aligned:  # the paper's RoIAlign (and Caffe2's): boxes at least one cell
        bin_w, bin_h = jnp.maximum(bin_w * out_w, 1.0) / out_w, jnp.maximum(bin_h * out_h, 1.0) / out_h
    grid = (jnp.arange(sampling) + 0.5) / sampling
    ys = y0[:, None, None] + (jnp.arange(out_h)[:, None] + grid[None, :])[None] * bin_h[:, None, None]
    xs = x0[:, None, None] + (jnp.arange(out_w)[:, None] + grid[None, :])[None] * bin_w[:, None, None]
    # every (row sample, column sample) pair: [R, oh, s, ow, s]
    y = jnp.broadcast_to(ys[:, :, :, None, None], (len(boxes), out_h, sampling, out_w, sampling))
    x = jnp.broadcast_to(xs[:, None, None, :, :], (len(boxes), out_h, sampling, out_w, sampling))
    return bilinear(features, y, x).mean(axis=(2, 4))
