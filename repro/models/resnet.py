"""CIFAR-10 ResNets of He et al. 2015 (arXiv 1512.03385, section 4.2): 6n+2 layers.

conv3x3(16) -> 3 stages of n basic blocks (16, 32, 64 filters; the first block of stages 2 and
3 has stride 2) -> global average pool -> 10-way dense. BN after every conv, before the ReLU.

Shortcuts: "A" zero-padded identity (stride-2 subsampling, extra channels zero; the paper's
Table 6 nets, parameter-free), "B" 1x1 projection + BN only where the shape changes, "plain"
none (the paper's plain baselines of Figure 6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repro.models.conv import Conv

SHORTCUTS = ("A", "B", "plain")
PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)  # Table 6; any 6n+2 >= 8 is accepted (8 for tests)

# He et al. initialize "as in [13]" (their PReLU paper): N(0, 2 / fan), where fan is the
# number of outputs of a filter (k*k*out_channels) as in the Torch reference code (fb.resnet.torch)
# and torchvision's kaiming_normal_(mode="fan_out"). Untruncated normal.
he_fan_out = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def blocks_per_stage(depth: int) -> int:
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"model.depth={depth} is not 6n+2 with n >= 1; the paper's CIFAR-10 nets "
                         f"have depth in {PAPER_DEPTHS}")
    return (depth - 2) // 6


def shortcut_a(x, out_channels: int, stride: int):
    """Option A: subsample by the stride, then append zero channels (fb.resnet.torch appends them
    after the identity channels)."""
    if stride > 1:
        x = x[:, ::stride, ::stride, :]
    extra = out_channels - x.shape[-1]
    if extra:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
    return x


class ConvBN(nnx.Module):
    """3x3 (or 1x1) conv without bias, then BN. Padding is explicit (1 for 3x3) as in Torch:
    'SAME' would pad stride-2 convs only at the bottom/right."""

    def __init__(self, cin, cout, kernel=3, stride=1, *, bn_momentum, dtype, rngs):
        pad = kernel // 2
        self.conv = Conv(cin, cout, (kernel, kernel), strides=(stride, stride),
                         padding=((pad, pad), (pad, pad)), use_bias=False,
                         kernel_init=he_fan_out, dtype=dtype, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, momentum=bn_momentum, epsilon=1e-5, dtype=dtype, rngs=rngs)

    def __call__(self, x, train: bool):
        return self.bn(self.conv(x), use_running_average=not train)


class BasicBlock(nnx.Module):
    def __init__(self, cin, cout, stride, shortcut, *, bn_momentum, dtype, rngs):
        kw = dict(bn_momentum=bn_momentum, dtype=dtype, rngs=rngs)
        self.shortcut, self.stride, self.cout = shortcut, stride, cout
        self.conv1 = ConvBN(cin, cout, 3, stride, **kw)
        self.conv2 = ConvBN(cout, cout, 3, 1, **kw)
        changes = stride != 1 or cin != cout
        self.project = ConvBN(cin, cout, 1, stride, **kw) if shortcut == "B" and changes else None

    def __call__(self, x, train: bool):
        y = self.conv2(jax.nn.relu(self.conv1(x, train)), train)
        if self.shortcut == "plain":
            return jax.nn.relu(y)
        if self.project is not None:
            identity = self.project(x, train)
        else:
            identity = shortcut_a(x, self.cout, self.stride)
        return jax.nn.relu(y + identity)


class CifarResNet(nnx.Module):
    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        shortcut: str = "A",
        widths: tuple[int, ...] = (16, 32, 64),
        in_channels: int = 3,
        bn_momentum: float = 0.9,
        compute_dtype: str = "float32",
        *,
        rngs: nnx.Rngs,
    ):
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown model.shortcut {shortcut!r}; use one of {SHORTCUTS}")
        n = blocks_per_stage(depth)
        dtype = jnp.dtype(compute_dtype)  # params stay float32; bfloat16 only for the compute
        kw = dict(bn_momentum=bn_momentum, dtype=dtype, rngs=rngs)
        self.stem = ConvBN(in_channels, widths[0], 3, 1, **kw)
        blocks, cin = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, width, stride, shortcut, **kw))
                cin = width
        self.blocks = nnx.List(blocks)
        # Dense layer: flax's default (LeCun normal) weights and zero bias; the paper doesn't say.
        self.head = nnx.Linear(cin, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        h = jax.nn.relu(self.stem(x, train))
        for block in self.blocks:
            h = block(h, train)
        return self.head(h.mean(axis=(1, 2)))
