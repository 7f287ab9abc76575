"""A small two-stage detector in the manner of Faster R-CNN (Ren et al. 2015) and, with its mask
branch, Mask R-CNN (He et al. 2017), sized for 64x64 scenes on a CPU; every shape fixed (padded
instances, proposals and detections), so training is one jitted, scanned step like any model's.

Backbone: a 3x3 conv stem, then `log2(stride)` stride-2 3x3 convs (ReLU): one feature map of
stride 8 (the C4-like variant) or 16 / 32 (C5-like). RPN: a 3x3 conv and two 1x1 convs scoring and
regressing `len(sizes) x len(ratios)` anchors per cell; proposals decoded, clipped, the top
`pre_nms` kept, NMS at 0.7 to `train_proposals` / `test_proposals`. RoI head: `roi_op`
("align": RoIAlign, "pool": RoIPool; everything else equal) to 7x7, two fully connected layers of
`hidden` units, a (classes + 1)-way softmax and class-specific box regression. Mask head (with
`masks=True`): the same RoI operator to 14x14, two 3x3 convs of `mask_channels` (default
`channels`), a 2x transposed conv to 28x28 and a 1x1 conv to one mask per class (`mask_loss`
"sigmoid": per-class binary, the paper's; "softmax": a per-pixel softmax over classes and
background, its multinomial ablation).

With `proposal_source="given"` there is no RPN: the head classifies and refines the data's own
`proposals` [K, 4] (real where `proposal_valid`), as Fast R-CNN does on selective search's. With
`shared_backbone=False` the RPN has a backbone of its own (Faster R-CNN's "unshared" detector).

Training (`losses`): the RPN's 64 sampled anchors per image (half positive at most: IoU >= 0.7, or
a box's best anchor; negatives below 0.3), the head's 64 sampled RoIs per image from the
proposals and the ground-truth boxes (a quarter foreground at most: IoU >= 0.5), smooth-L1 box
losses on the foreground, mask loss on the foreground RoIs' own class (the mask branch sees only
them: the first `mask_rois` of the sample, default a quarter of it, averaged over the batch).
Inference (`__call__`): `detections` boxes per image after per-class NMS at 0.5, each with its
score, its class (0-based, as the data's) and, with masks, its mask pasted into the image
(threshold 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from repro import detection
from repro.models.conv import Conv

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # the RoI head's target scaling (Fast R-CNN's)
ROI_OPS = ("align", "pool")
MASK_LOSSES = ("sigmoid", "softmax")
PROPOSAL_SOURCES = ("rpn", "given")  # given: Fast R-CNN on the data's `proposals` (e.g. selective search)


def _smooth_l1(x, beta: float = 1.0 / 9.0):
    ax = jnp.abs(x)
    return jnp.where(ax < beta, 0.5 * ax * ax / beta, ax - 0.5 * beta)


def _sample(candidates, priority, limit):
    """The `limit` candidates (bool [N]) of highest priority, as a bool mask; limit may be traced."""
    score = jnp.where(candidates, priority, -1.0)
    rank = jnp.argsort(jnp.argsort(-score))
    return candidates & (rank < limit)


class Detector(nnx.Module):
    def __init__(self, image_shape: Sequence[int], num_classes: int, stride: int = 8, channels: int = 64,
                 sizes: Sequence[float] = (16.0, 32.0), ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 roi_op: str = "align", masks: bool = False, mask_loss: str = "sigmoid", hidden: int = 256,
                 pre_nms: int = 200, train_proposals: int = 64, test_proposals: int = 50,
                 detections: int = 20, rpn_samples: int = 64, roi_samples: int = 64,
                 mask_rois: int | None = None, mask_channels: int | None = None, proposal_source: str = "rpn",
                 shared_backbone: bool = True, *, rngs: nnx.Rngs):
        h, w, c = image_shape
        if stride not in (8, 16, 32) or h % stride or w % stride:
            raise ValueError(f"stride must be 8, 16 or 32 and divide the {h}x{w} image: got {stride}")
        if roi_op not in ROI_OPS:
            raise ValueError(f"roi_op {roi_op!r}: one of {ROI_OPS}")
        if mask_loss not in MASK_LOSSES:
            raise ValueError(f"mask_loss {mask_loss!r}: one of {MASK_LOSSES}")
        if proposal_source not in PROPOSAL_SOURCES:
            raise ValueError(f"proposal_source {proposal_source!r}: one of {PROPOSAL_SOURCES}")
        self.proposal_source, self.shared_backbone = proposal_source, shared_backbone
        self.image_hw, self.num_classes, self.stride = (h, w), num_classes, stride
        self.roi_op, self.with_masks, self.mask_loss = roi_op, masks, mask_loss
        self.pre_nms, self.train_proposals, self.test_proposals = pre_nms, train_proposals, test_proposals
        self.detections, self.rpn_samples, self.roi_samples = detections, rpn_samples, roi_samples
        self.mask_rois = min(mask_rois or roi_samples // 4, roi_samples)
        self.anchors = nnx.Variable(jnp.asarray(detection.anchors(h // stride, w // stride, stride, sizes,
                                                                  ratios)))
        a = len(sizes) * len(ratios)
        self.backbone = nnx.List(self._backbone(c, channels, stride, rngs))
        if proposal_source == "rpn":  # (a Fast R-CNN on given proposals has none)
            self.rpn_conv = Conv(channels, channels, (3, 3), rngs=rngs)
            self.rpn_score = Conv(channels, a, (1, 1), rngs=rngs)
            self.rpn_delta = Conv(channels, 4 * a, (1, 1), kernel_init=nnx.initializers.normal(0.01),
                                  rngs=rngs)
        self.fc1 = nnx.Linear(7 * 7 * channels, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.cls = nnx.Linear(hidden, num_classes + 1, rngs=rngs)
        self.box = nnx.Linear(hidden, 4 * num_classes, kernel_init=nnx.initializers.normal(0.001), rngs=rngs)
        if masks:
            m = mask_channels or channels
            self.mask_convs = nnx.List([Conv(channels, m, (3, 3), rngs=rngs), Conv(m, m, (3, 3), rngs=rngs)])
            # a 2x2 stride-2 transposed conv, written as what it is: a linear map of each cell to a
            # 2x2 block of cells (no convolution, so no slow conv gradient on XLA:CPU)
            self.mask_up = nnx.Linear(m, 4 * m, rngs=rngs)
            outputs = num_classes + 1 if mask_loss == "softmax" else num_classes
            self.mask_out = Conv(m, outputs, (1, 1), rngs=rngs)
        if not shared_backbone and proposal_source == "rpn":  # made last: a shared model's init is unchanged
            self.rpn_backbone = nnx.List(self._backbone(c, channels, stride, rngs))

    @staticmethod
    def _backbone(c, channels, stride, rngs):
        convs = [Conv(c, channels // 2, (3, 3), rngs=rngs)]
        width = channels // 2
        for _ in range(int(np.log2(stride))):
            convs.append(Conv(width, channels, (3, 3), strides=2, rngs=rngs))
            width = channels
        return convs

    # --- shared pieces -----------------------------------------------------------------------------
    def features(self, images, backbone=None):
        x = images
        for conv in self.backbone if backbone is None else backbone:
            x = jax.nn.relu(conv(x))
        return x

    def rpn_features(self, images, feats=None):
        """The RPN's input: the detector's features `feats`, or with `shared_backbone=False` (Faster
        R-CNN's "unshared" RPN) those of the RPN's own backbone."""
        if self.shared_backbone:
            return self.features(images) if feats is None else feats
        return self.features(images, self.rpn_backbone)

    def rpn(self, feats):
        b = feats.shape[0]
        x = jax.nn.relu(self.rpn_conv(feats))
        return self.rpn_score(x).reshape(b, -1), self.rpn_delta(x).reshape(b, -1, 4)

    def proposals(self, scores, deltas, count: int):
        """Per image: the RPN's top boxes after NMS, [count, 4], and which are real [count]."""
        h, w = self.image_hw
        boxes = detection.clip(detection.decode(deltas, self.anchors[...]), h, w)
        big_enough = detection.area(boxes) >= 4.0
        k = min(self.pre_nms, len(scores))
        top_scores, top = jax.lax.top_k(jnp.where(big_enough, scores, -jnp.inf), k)
        keep, valid = detection.nms(boxes[top], top_scores, 0.7, count)
        return jax.lax.stop_gradient(boxes[top][keep]), valid

    def pooled(self, feats, rois, size: int):
        """The RoI operator on one image's features: [R, size, size, C]."""
        if self.roi_op == "pool":
            return detection.roi_pool(feats, rois, (size, size), 1.0 / self.stride)
        return detection.roi_align(feats, rois, (size, size), 1.0 / self.stride)

    def head(self, feats, rois):
        x = self.pooled(feats, rois, 7).reshape(len(rois), -1)
        x = jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x))))
        return self.cls(x), self.box(x).reshape(len(rois), self.num_classes, 4)

    def mask_logits(self, pooled):
        """The mask head on RoI features [R, 14, 14, C] of any images, flattened (a vmap over images
        would run its convs once per image: 3x slower on XLA:CPU)."""
        x = pooled
        for conv in self.mask_convs:
            x = jax.nn.relu(conv(x))
        r, h, w, c = x.shape
        x = self.mask_up(x).reshape(r, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(r, 2 * h, 2 * w, c)
        return self.mask_out(jax.nn.relu(x))  # [R, 28, 28, classes (+ 1)]

    # --- inference ---------------------------------------------------------------------------------
    def __call__(self, images, train: bool = False, rngs: nnx.Rngs | None = None, proposals=None,
                 proposal_valid=None):
        """Detections of `images`; a detector with `proposal_source="given"` classifies and refines
        `proposals` [B, P, 4] (those with `proposal_valid` [B, P]), an RPN detector ignores them."""
        feats = self.features(images)
        if self.proposal_source == "given":
            if proposals is None or proposal_valid is None:
                raise ValueError("this detector takes its proposals from the data (proposal_source=given): "
                                 "pass proposals= and proposal_valid=, e.g. a data set with those fields")
            out = jax.vmap(self._detect_from)(feats, proposals, proposal_valid.astype(bool))
        else:
            scores, deltas = self.rpn(self.rpn_features(images, feats))
            out = jax.vmap(self._detect)(feats, scores, deltas)
        if self.with_masks:
            out["masks"] = self._paste_masks(feats, out)
        return out

    def propose(self, images, proposals=None, proposal_valid=None):
        """The proposals the head sees at test time: the RPN's, boxes [B, test_proposals, 4] and
        which are real [B, P]; with `proposal_source="given"`, `proposals` and `proposal_valid`."""
        if self.proposal_source == "given":
            if proposals is None or proposal_valid is None:
                raise ValueError("propose(): this detector has no RPN (proposal_source=given): pass "
                                 "proposals= and proposal_valid=")
            return proposals, proposal_valid
        scores, deltas = self.rpn(self.rpn_features(images))
        return jax.vmap(lambda s, d: self.proposals(s, d, self.test_proposals))(scores, deltas)

    def _paste_masks(self, feats, out):
        h, w = self.image_hw
        b, d = out["classes"].shape
        pooled = jax.vmap(lambda f, r: self.pooled(f, r, 14))(feats, out["boxes"])
        probs = self.mask_logits(pooled.reshape(b * d, *pooled.shape[2:]))
        if self.mask_loss == "softmax":
            probs, channel = jax.nn.softmax(probs, -1), out["classes"] + 1
        else:
            probs, channel = jax.nn.sigmoid(probs), out["classes"]
        chosen = jnp.take_along_axis(probs, channel.reshape(-1)[:, None, None, None], -1)[..., 0]
        pasted = jax.vmap(lambda m, box: paste(m, box, h, w))(chosen, out["boxes"].reshape(-1, 4))
        kept = (out["scores"] > 0).reshape(-1)[:, None, None]
        return ((pasted >= 0.5) & kept).astype(jnp.uint8).reshape(b, d, h, w)

    def _detect(self, feats, scores, deltas):
        rois, valid = self.proposals(scores, deltas, self.test_proposals)
        return self._detect_from(feats, rois, valid)

    def _detect_from(self, feats, rois, valid):
        h, w = self.image_hw
        logits, box_deltas = self.head(feats, rois)
        probs = jax.nn.softmax(logits, -1)[:, 1:]
        cls = jnp.argmax(probs, -1)
        score = jnp.where(valid, jnp.take_along_axis(probs, cls[:, None], 1)[:, 0], -jnp.inf)
        own = box_deltas[jnp.arange(len(rois)), cls]
        boxes = detection.clip(detection.decode(own, rois, BOX_WEIGHTS), h, w)
        offset = (cls * 2 * max(h, w)).astype(jnp.float32)[:, None]  # per-class NMS: classes never overlap
        keep, kept = detection.nms(boxes + offset, score, 0.5, self.detections)
        return {"boxes": boxes[keep] * kept[:, None], "scores": jnp.where(kept, score[keep], 0.0),
                "classes": cls[keep]}

    # --- training ----------------------------------------------------------------------------------
    def losses(self, batch, key) -> dict:
        """Mean over the batch of each loss term (`rpn_cls`, `rpn_box`, `cls`, `box`, and `mask`)."""
        feats = self.features(batch["image"])
        if self.proposal_source == "given":
            source = (batch["proposals"], batch["proposal_valid"])
        else:
            source = self.rpn(self.rpn_features(batch["image"], feats))  # scores, deltas
        keys = jax.random.split(key, len(feats))
        per_image, sampled = jax.vmap(self._losses)(feats, source, batch["boxes"], batch["classes"],
                                                    batch["valid"], keys)
        out = {k: v.mean() for k, v in per_image.items()}
        if self.with_masks:
            out["mask"] = self._mask_loss(feats, batch["masks"], *sampled)
        return out

    def _losses(self, feats, source, gt_boxes, gt_classes, gt_valid, key):
        """One image's RPN (from `source`, its scores and deltas; or its given proposals and their
        validity) and head losses, and its foreground RoIs for the mask branch (the first
        `mask_rois` of the sample: RoIs [M, 4], foreground [M], class [M], instance [M])."""
        rpn_key, roi_key = jax.random.split(key)
        gt_valid = gt_valid.astype(bool)
        if self.proposal_source == "given":
            out, (proposals, prop_valid) = {}, (source[0], source[1].astype(bool))
        else:
            out = self._rpn_losses(*source, gt_boxes, gt_valid, rpn_key)
            proposals, prop_valid = self.proposals(*source, self.train_proposals)
        rois = jnp.concatenate([proposals, gt_boxes])
        candidates = jnp.concatenate([prop_valid, gt_valid])
        overlaps = jnp.where(gt_valid[None], detection.iou(rois, gt_boxes), -1.0)
        best, match = overlaps.max(1), overlaps.argmax(1)
        fg = candidates & (best >= 0.5)
        bg = candidates & (best < 0.5)
        priority = jax.random.uniform(roi_key, best.shape)
        fg = _sample(fg, priority, self.roi_samples // 4)
        bg = _sample(bg, priority, self.roi_samples - fg.sum())
        # a fixed number of RoIs: the sampled ones first (stable order), then padding with weight 0
        order = jnp.argsort(~(fg | bg), stable=True)[: self.roi_samples]
        rois, fg, used, match = rois[order], fg[order], (fg | bg)[order], match[order]
        labels = jnp.where(fg, gt_classes[match] + 1, 0)
        logits, box_deltas = self.head(feats, rois)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        out["cls"] = (ce * used).sum() / jnp.maximum(used.sum(), 1)
        cls = jnp.maximum(labels - 1, 0)
        # only foreground RoIs have targets: a padding RoI of size 0 would give inf - inf = NaN,
        # and NaN * 0 weight is NaN in the gradient
        targets = jnp.where(fg[:, None], detection.encode(gt_boxes[match], rois, BOX_WEIGHTS), 0.0)
        reg = _smooth_l1(box_deltas[jnp.arange(len(rois)), cls] - targets, beta=1.0).sum(-1)
        out["box"] = (reg * fg).sum() / jnp.maximum(used.sum(), 1)
        first = jnp.argsort(~fg, stable=True)[: self.mask_rois]
        return out, (rois[first], fg[first], cls[first], match[first])

    def _rpn_losses(self, scores, deltas, gt_boxes, gt_valid, key):
        anchors = self.anchors[...]
        overlaps = jnp.where(gt_valid[None], detection.iou(anchors, gt_boxes), -1.0)
        best, match = overlaps.max(1), overlaps.argmax(1)
        best_of_box = overlaps.max(0)
        is_best = ((overlaps == best_of_box[None]) & gt_valid[None] & (best_of_box[None] > 0)).any(1)
        positive = (best >= 0.7) | is_best
        negative = (best < 0.3) & (best > -1.0) & ~positive | (~gt_valid.any() & ~positive)
        priority = jax.random.uniform(key, best.shape)
        positive = _sample(positive, priority, self.rpn_samples // 2)
        negative = _sample(negative, priority, self.rpn_samples - positive.sum())
        used = positive | negative
        bce = optax.sigmoid_binary_cross_entropy(scores, positive.astype(jnp.float32))
        targets = detection.encode(gt_boxes[match], anchors)
        reg = _smooth_l1(deltas - targets).sum(-1)
        n = jnp.maximum(used.sum(), 1)
        return {"rpn_cls": (bce * used).sum() / n, "rpn_box": (reg * positive).sum() / n}

    def _mask_loss(self, feats, gt_masks, rois, fg, cls, match):
        """The mean over the batch's foreground RoIs of their mask loss. Targets: each RoI's own
        instance mask cut to the RoI and resized to 28x28 (RoIAlign of the mask, >= 0.5)."""
        pooled = jax.vmap(lambda f, r: self.pooled(f, r, 14))(feats, rois)
        rois, fg, cls = rois.reshape(-1, 4), fg.reshape(-1), cls.reshape(-1)
        logits = self.mask_logits(pooled.reshape(len(rois), *pooled.shape[2:]))  # [R, 28, 28, K (+1)]
        instance = jax.vmap(lambda m, j: m[j])(gt_masks, match).reshape(len(rois), *gt_masks.shape[2:])
        cut = lambda m, r: detection.roi_align(m[..., None].astype(jnp.float32), r[None], (28, 28), 1.0)
        targets = jax.vmap(cut)(instance, rois)[:, 0, ..., 0] >= 0.5
        if self.mask_loss == "sigmoid":
            chosen = jnp.take_along_axis(logits, cls[:, None, None, None], -1)[..., 0]
            per_roi = optax.sigmoid_binary_cross_entropy(chosen, targets.astype(jnp.float32)).mean((1, 2))
        else:
            labels = jnp.where(targets, (cls + 1)[:, None, None], 0)
            per_roi = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean((1, 2))
        return (per_roi * fg).sum() / jnp.maximum(fg.sum(), 1)


def paste(mask, box, height: int, width: int):
    """A [m, m] mask of a box pasted into an image [height, width]: each pixel centre inside the
    box samples the mask bilinearly; pixels outside it are 0."""
    size = mask.shape[0]
    rows = jnp.arange(height, dtype=jnp.float32)[:, None] + 0.5
    cols = jnp.arange(width, dtype=jnp.float32)[None, :] + 0.5
    x0, y0, x1, y1 = box[0], box[1], box[2], box[3]
    u = (cols - x0) / jnp.maximum(x1 - x0, 1e-6) * size - 0.5
    v = (rows - y0) / jnp.maximum(y1 - y0, 1e-6) * size - 0.5
    inside = (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)
    u, v = jnp.broadcast_to(u, (height, width)), jnp.broadcast_to(v, (height, width))
    sampled = detection.bilinear(mask[..., None], v, u)[..., 0]
    return jnp.where(inside, sampled, 0.0)


class DetectionLoss:
    """The objective of Detector: the sum of its losses (each logged). Evaluation reports the same
    losses per image with a fixed sampling key (detection quality itself is COCO AP: repro/coco.py)."""

    def __init__(self, eval_seed: int = 0):
        self.eval_seed = eval_seed

    def train_loss(self, model, batch, *, rngs=None):
        key = rngs.dropout() if rngs is not None else jax.random.key(self.eval_seed)
        terms = model.losses(batch, key)
        return sum(terms.values()), {"loss": sum(terms.values()), **terms}

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        key = jax.random.key(self.eval_seed)
        one = lambda b: model.losses(jax.tree.map(lambda v: v[None], b), key)
        fields = {k: batch[k] for k in ("image", "boxes", "classes", "valid", "masks", "proposals",
                                        "proposal_valid") if k in batch}
        terms = jax.vmap(one)(fields)
        return {"loss": sum(terms.values()), **terms}
