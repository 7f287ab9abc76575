"""Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke & Alemi
2016, arXiv 1602.07261), written as the paper's figures annotate them.

Every block is a list of branches concatenated on channels; a branch is a sequence of layers in
the figures' own notation, parsed by `layer`:

    "1x7 224"      a 1x7 convolution with 224 filters, stride 1, 'same' padding
    "3x3/2 384 V"  a 3x3 convolution, stride 2, 'valid' padding ("V" in the figures)
    "max 3/2 V"    3x3 max pooling, stride 2, valid;  "avg 3" 3x3 average pooling, stride 1, same

and a tuple of branches as a branch's last item forks it (Inception-C's 1x3 and 3x1 pair). Every
convolution is followed by batch normalization and a ReLU; a residual block's branches are
concatenated, projected by a 1x1 convolution with a bias and no activation ("1x1 Conv (… Linear)"
in the figures) to the input's width, scaled (section 3.3: 0.1-0.3 keeps wide residual networks
stable) and added to the input, then a ReLU.

Inception-ResNet-v2 comes in two layouts. `paper`: Figures 3 (the Inception-v4 stem), 16-19 and
15 (5 x A, 10 x B, 5 x C). Its figures do not add up (B is drawn with 1154 output channels on a
1152-wide input, C with 2048 on 2144), so `paper` takes each residual block's width from its
input. `released`: the layout of the authors' released TF-slim model, which public implementations
and checkpoints follow: a 35x35x320 stem ending in a "mixed 5b" block, 10 x A, 20 x B, 10 x C (the
last without its ReLU) and a final 1x1 convolution to 1536 channels. Parameter counts of
`released` and of Inception-v4 are checked against independent implementations
(experiments/inception_v4/spec.yaml).

`bn_scale`: whether batch normalization learns a scale (gamma). PyTorch's reference ports
(timm) do; TF-slim and Keras learn only the offset (their convolutions feed a ReLU), which
changes the parameter count, not the function class.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
from flax import nnx

from repro.models.conv import Conv

# Reduction-A's filter counts, the paper's Table 1: (k, l, m, n).
REDUCTION_A = {"v4": (192, 224, 256, 384), "resnet_v1": (192, 192, 256, 384),
               "resnet_v2": (256, 256, 384, 384)}

STEM_V4 = [  # Figure 3 (also the stem of Inception-ResNet-v2 in the paper): 299x299x3 -> 35x35x384
    [["3x3/2 32 V", "3x3 32 V", "3x3 64"]],
    [["max 3/2 V"], ["3x3/2 96 V"]],
    [["1x1 64", "3x3 96 V"], ["1x1 64", "7x1 64", "1x7 64", "3x3 96 V"]],
    [["3x3/2 192 V"], ["max 3/2 V"]],
]
STEM_RESNET_V1 = [  # Figure 14: 299x299x3 -> 35x35x256
    [["3x3/2 32 V", "3x3 32 V", "3x3 64", "max 3/2 V", "1x1 80", "3x3 192 V", "3x3/2 256 V"]],
]
STEM_RELEASED_V2 = [  # the released TF-slim model: 299x299x3 -> 35x35x320
    [["3x3/2 32 V", "3x3 32 V", "3x3 64", "max 3/2 V", "1x1 80", "3x3 192 V", "max 3/2 V"]],
    [["1x1 96"], ["1x1 48", "5x5 64"], ["1x1 64", "3x3 96", "3x3 96"], ["avg 3", "1x1 64"]],
]

STEM_SMALL = [  # not the paper's: for 28x28 digits, 28x28 -> 13x13 (then 6x6 and 2x2 after the reductions)
    [["3x3 32", "3x3 32", "3x3/2 64 V"]],
]

INCEPTION_A = [["avg 3", "1x1 96"], ["1x1 96"], ["1x1 64", "3x3 96"],                              # Fig. 4
               ["1x1 64", "3x3 96", "3x3 96"]]
INCEPTION_B = [["avg 3", "1x1 128"], ["1x1 384"], ["1x1 192", "1x7 224", "7x1 256"],                # Fig. 5
               ["1x1 192", "1x7 192", "7x1 224", "1x7 224", "7x1 256"]]
INCEPTION_C = [["avg 3", "1x1 256"], ["1x1 256"], ["1x1 384", (["1x3 256"], ["3x1 256"])],          # Fig. 6
               ["1x1 384", "1x3 448", "3x1 512", (["1x3 256"], ["3x1 256"])]]
REDUCTION_B_V4 = [["max 3/2 V"], ["1x1 192", "3x3/2 192 V"],                                         # Fig. 8
                  ["1x1 256", "1x7 256", "7x1 320", "3x3/2 320 V"]]
REDUCTION_B_RESNET = {  # Figure 12 (v1), Figure 18 (v2)
    "resnet_v1": [["max 3/2 V"], ["1x1 256", "3x3/2 384 V"], ["1x1 256", "3x3/2 256 V"],
                  ["1x1 256", "3x3 256", "3x3/2 256 V"]],
    "resnet_v2": [["max 3/2 V"], ["1x1 256", "3x3/2 384 V"], ["1x1 256", "3x3/2 288 V"],
                  ["1x1 256", "3x3 288", "3x3/2 320 V"]],
}
RESIDUAL = {  # the residual blocks' branches (their 1x1 projection is added by ResidualBlock)
    "resnet_v1": {"A": [["1x1 32"], ["1x1 32", "3x3 32"], ["1x1 32", "3x3 32", "3x3 32"]],     # Fig. 10
                  "B": [["1x1 128"], ["1x1 128", "1x7 128", "7x1 128"]],                      # Fig. 11
                  "C": [["1x1 192"], ["1x1 192", "1x3 192", "3x1 192"]]},                     # Fig. 13
    "resnet_v2": {"A": [["1x1 32"], ["1x1 32", "3x3 32"], ["1x1 32", "3x3 48", "3x3 64"]],     # Fig. 16
                  "B": [["1x1 192"], ["1x1 128", "1x7 160", "7x1 192"]],                      # Fig. 17
                  "C": [["1x1 192"], ["1x1 192", "1x3 224", "3x1 256"]]},                     # Fig. 19
}
# Blocks per stage (A, B, C): Figure 9 (v4) and 15 (both residual nets); the released v2: 10/20/10.
REPEATS = {"v4": (4, 7, 3), "resnet_v1": (5, 10, 5), "resnet_v2": (5, 10, 5), "released": (10, 20, 10)}
VERSIONS = ("v4", "resnet_v1", "resnet_v2")
LAYOUTS = ("paper", "released")
STEMS = ("paper", "small")

_CONV = re.compile(r"^(\d+)x(\d+)(?:/(\d+))? (\d+)( V)?$")
_POOL = re.compile(r"^(max|avg) (\d+)(?:/(\d+))?( V)?$")


def layer(text: str) -> dict:
    """One layer of the figures' notation (module docstring) as a dict."""
    if m := _CONV.match(text):
        kh, kw, stride, out, valid = m.groups()
        return {"kind": "conv", "kernel": (int(kh), int(kw)), "stride": int(stride or 1),
                "out": int(out), "padding": "VALID" if valid else "SAME"}
    if m := _POOL.match(text):
        kind, size, stride, valid = m.groups()
        return {"kind": kind, "size": int(size), "stride": int(stride or 1),
                "padding": "VALID" if valid else "SAME"}
    raise ValueError(f"not a layer of the paper's figures: {text!r} (e.g. '3x3/2 384 V', 'max 3/2 V')")


class ConvBN(nnx.Module):
    """Convolution without bias, batch normalization (epsilon 1e-3 as in the released model), ReLU."""

    def __init__(self, cin: int, spec: dict, *, bn_scale: bool, bn_momentum: float, rngs: nnx.Rngs):
        self.stride, self.padding = spec["stride"], spec["padding"]
        self.conv = Conv(cin, spec["out"], spec["kernel"], strides=(self.stride,) * 2,
                         padding=self.padding, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(spec["out"], momentum=bn_momentum, epsilon=1e-3, use_scale=bn_scale,
                                rngs=rngs)

    def __call__(self, x, train: bool):
        return jax.nn.relu(self.bn(self.conv(x), use_running_average=not train))


class Pool(nnx.Module):
    def __init__(self, spec: dict):
        self.kind, self.size, self.stride, self.padding = (spec["kind"], spec["size"], spec["stride"],
                                                           spec["padding"])

    def __call__(self, x, train: bool):
        window, strides = (self.size, self.size), (self.stride, self.stride)
        if self.kind == "max":
            return nnx.max_pool(x, window, strides, self.padding)
        # average over the pixels inside the image only (the released model's "count_include_pad=False")
        return nnx.avg_pool(x, window, strides, self.padding, count_include_pad=False)


class Branch(nnx.Module):
    """Layers in sequence; a tuple of branches as the last item forks into them (concatenated)."""

    def __init__(self, items: list, cin: int, *, bn_scale: bool, width: float = 1.0,
                 bn_momentum: float = 0.9997, rngs: nnx.Rngs):
        layers, fork = [], None
        for item in items:
            if isinstance(item, tuple):
                fork = Concat(list(item), cin, bn_scale=bn_scale, width=width, bn_momentum=bn_momentum,
                              rngs=rngs)
                cin = fork.out
                continue
            spec = layer(item)
            if spec["kind"] == "conv":
                spec["out"] = max(1, round(spec["out"] * width))  # a scaled-down network's filters
                layers.append(ConvBN(cin, spec, bn_scale=bn_scale, bn_momentum=bn_momentum, rngs=rngs))
                cin = spec["out"]
            else:
                layers.append(Pool(spec))
        self.layers, self.fork, self.out = nnx.List(layers), fork, cin

    def __call__(self, x, train: bool):
        for item in self.layers:
            x = item(x, train)
        return x if self.fork is None else self.fork(x, train)


class Concat(nnx.Module):
    """Branches side by side, concatenated on channels (a pooling branch keeps its input's width)."""

    def __init__(self, branches: list, cin: int, *, bn_scale: bool, width: float = 1.0,
                 bn_momentum: float = 0.9997, rngs: nnx.Rngs):
        kw = dict(bn_scale=bn_scale, width=width, bn_momentum=bn_momentum, rngs=rngs)
        self.branches = nnx.List([Branch(b, cin, **kw) for b in branches])
        self.out = sum(b.out for b in self.branches)

    def __call__(self, x, train: bool):
        return jnp.concatenate([b(x, train) for b in self.branches], axis=-1)


class ResidualBlock(nnx.Module):
    """x + scale * (1x1 linear projection of the concatenated branches), then ReLU (unless last).
    `residual=False` drops the x: the same block, parameters and depth without the shortcut (the
    plain twin that tests what the shortcut itself does)."""

    def __init__(self, branches: list, cin: int, scale: float, activate: bool = True, residual: bool = True,
                 *, bn_scale: bool, width: float = 1.0, bn_momentum: float = 0.9997, rngs: nnx.Rngs):
        self.branches = Concat(branches, cin, bn_scale=bn_scale, width=width, bn_momentum=bn_momentum,
                               rngs=rngs)
        self.project = Conv(self.branches.out, cin, (1, 1), use_bias=True, rngs=rngs)
        self.scale, self.activate, self.residual, self.out = scale, activate, residual, cin

    def __call__(self, x, train: bool):
        y = self.scale * self.project(self.branches(x, train))
        y = x + y if self.residual else y
        return jax.nn.relu(y) if self.activate else y


class Inception(nnx.Module):
    """One of the paper's three networks (`version`), 299x299x3 -> `num_classes` logits; global
    average pooling, dropout (keep 0.8, the paper's) and a dense layer on top. `repeats` overrides
    the blocks per stage (A, B, C); `residual_scale` scales every residual branch; `residual=False`
    removes the residual nets' shortcuts; `bn_momentum` is the moving averages' decay (0.9997 in the
    released model, for long training: short runs need less). A scaled-down network for small
    images: `stem: small` (28x28 input) and `width` multiplying every filter count of the figures:
    one number for every layer, or three (the stem and A blocks; Reduction-A and the B blocks;
    Reduction-B, the C blocks and the released layout's last 1x1), e.g. a network whose C blocks
    alone are as wide as the paper's."""

    def __init__(self, version: str = "v4", layout: str = "paper", num_classes: int = 1000,
                 residual_scale: float | tuple[float, float, float] = (0.17, 0.1, 0.2),
                 repeats: tuple[int, int, int] | None = None, bn_scale: bool = True,
                 in_channels: int = 3, dropout: float = 0.2, stem: str = "paper",
                 width: float | tuple[float, float, float] = 1.0,
                 residual: bool = True, bn_momentum: float = 0.9997, *, rngs: nnx.Rngs):
        if version not in VERSIONS:
            raise ValueError(f"unknown model.version {version!r}; use one of {VERSIONS}")
        if layout not in LAYOUTS or (layout == "released" and version != "resnet_v2"):
            raise ValueError(f"model.layout={layout!r}: 'paper' for every version, 'released' only "
                             "for resnet_v2 (the authors' released TF-slim layout)")
        widths = (width,) * 3 if isinstance(width, int | float) else tuple(width)
        if stem not in STEMS or len(widths) != 3 or not all(0 < w <= 4 for w in widths):
            raise ValueError(f"model.stem={stem!r} (use one of {STEMS}), model.width={width} "
                             "(use one number or three, each 0 < width <= 4)")
        released = layout == "released"
        repeats = tuple(repeats or REPEATS["released" if released else version])
        scales = (residual_scale,) * 3 if isinstance(residual_scale, int | float) else tuple(residual_scale)
        kw = dict(bn_scale=bn_scale, width=widths[0], bn_momentum=bn_momentum, rngs=rngs)
        stems = {"v4": STEM_V4, "resnet_v1": STEM_RESNET_V1, "resnet_v2": STEM_V4}
        stem_blocks = STEM_SMALL if stem == "small" else STEM_RELEASED_V2 if released else stems[version]
        stages, cin = [], in_channels
        for branches in stem_blocks:
            stages.append(Concat(branches, cin, **kw))
            cin = stages[-1].out
        k, l_, m, n = REDUCTION_A[version]  # the paper's k, l, m, n
        reductions = ([["max 3/2 V"], [f"3x3/2 {n} V"], [f"1x1 {k}", f"3x3 {l_}", f"3x3/2 {m} V"]],
                      REDUCTION_B_V4 if version == "v4" else REDUCTION_B_RESNET[version])
        for stage, (count, scale) in enumerate(zip(repeats, scales, strict=True)):
            kw["width"] = widths[stage]  # Reduction-A and -B belong to the stage after them
            for i in range(count):
                if version == "v4":
                    stages.append(Concat((INCEPTION_A, INCEPTION_B, INCEPTION_C)[stage], cin, **kw))
                else:
                    # the released model's last C block: unscaled, no ReLU
                    last = released and stage == 2 and i == count - 1
                    stages.append(ResidualBlock(RESIDUAL[version]["ABC"[stage]], cin, 1.0 if last else scale,
                                                activate=not last, residual=residual, **kw))
                cin = stages[-1].out
            if stage < 2:
                stages.append(Concat(reductions[stage], cin, **{**kw, "width": widths[stage + 1]}))
                cin = stages[-1].out
        if released:
            stages.append(Branch(["1x1 1536"], cin, **kw))
            cin = stages[-1].out
        self.stages = nnx.List(stages)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(cin, num_classes, rngs=rngs)

    def features(self, x, train: bool = False):
        """The last stage's output, before the average pooling (where section 3.3's wide residual
        networks "died": it became all zeros)."""
        for stage in self.stages:
            x = stage(x, train)
        return x

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        x = self.dropout(self.features(x, train).mean(axis=(1, 2)), deterministic=not train, rngs=rngs)
        return self.head(x)
