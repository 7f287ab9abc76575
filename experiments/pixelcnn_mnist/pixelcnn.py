"""PixelCNN of van den Oord, Kalchbrenner & Kavukcuoglu 2016 ("Pixel Recurrent Neural
Networks", arXiv 1601.06759: section 4, Table 1, the residual-block figure), for binary images.

    7x7 conv, mask A (a pixel does not see itself)                      -> 2h maps
    num_blocks x residual block (Figure 5, left):
        ReLU, 1x1 conv 2h->h, ReLU, 3x3 conv mask B h->h, ReLU, 1x1 conv h->2h, + input
    ReLU, 1x1 conv 2h->out_hidden, ReLU, 1x1 conv out_hidden->1           -> one logit per pixel

p(x) = prod_i p(x_i | x_<i) in raster order (row by row, left to right); the output at pixel i
is the logit of the Bernoulli p(x_i = 1 | x_<i).

Masks. A k x k mask keeps the rows above the centre and, on the centre row, the taps left of
the centre; mask A drops the centre tap, mask B keeps it. With ONE colour channel this is the
whole masking: after the mask-A layer every feature at pixel i depends only on pixels < i, so
later layers may use their own position (mask B). With colour channels the paper also masks
feature groups (R | G | B) inside the centre tap; that is not implemented (the model refuses
images with more than one channel). The 1x1 layers need no spatial mask (a 1x1 mask B is all
ones) and, for one channel, no channel mask either.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repro.models.conv import conv_general_dilated


def causal_mask(height: int, width: int, mask_type: str) -> np.ndarray:
    """(height, width) 0/1 mask of a PixelCNN kernel: rows above the centre, and taps left of it
    (mask A) or up to and including it (mask B) on the centre row."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', not {mask_type!r}")
    mask = np.zeros((height, width), np.float32)
    ch, cw = height // 2, width // 2
    mask[:ch, :] = 1.0
    mask[ch, : cw + (mask_type == "B")] = 1.0
    return mask


class MaskedConv(nnx.Module):
    """k x k convolution (stride 1, zero 'SAME' padding) whose kernel is multiplied by a causal
    mask on every call, so masked taps get exactly zero weight and exactly zero gradient."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int, mask_type: str,
                 *, rngs: nnx.Rngs):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, not {kernel_size}")
        self.kernel_size, self.mask_type = kernel_size, mask_type
        mask = causal_mask(kernel_size, kernel_size, mask_type)
        # LeCun-normal over the taps the mask keeps (the kernel's effective fan-in).
        fan_in = float(mask.sum()) * in_features
        shape = (kernel_size, kernel_size, in_features, out_features)
        kernel = jax.random.normal(rngs.params(), shape) / np.sqrt(fan_in)
        self.kernel = nnx.Param(kernel * mask[:, :, None, None])
        self.bias = nnx.Param(jnp.zeros((out_features,)))

    def __call__(self, x):
        mask = causal_mask(self.kernel_size, self.kernel_size, self.mask_type)[:, :, None, None]
        # The suite's conv keeps the gradients on XLA:CPU's fast path inside the loop's scan.
        y = conv_general_dilated(x, self.kernel[...] * mask, (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.bias[...]


class Pointwise(nnx.Module):
    """1x1 convolution (a dense layer over channels at every pixel)."""

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))

    def __call__(self, x):
        return x @ self.kernel[...] + self.bias[...]


class ResidualBlock(nnx.Module):
    """Figure 5 (left) of the paper: 2h -> 1x1 -> h -> 3x3 mask B -> h -> 1x1 -> 2h, plus the input."""

    def __init__(self, hidden: int, kernel_size: int, *, rngs: nnx.Rngs):
        self.reduce = Pointwise(2 * hidden, hidden, rngs=rngs)
        self.conv = MaskedConv(hidden, hidden, kernel_size, "B", rngs=rngs)
        self.expand = Pointwise(hidden, 2 * hidden, rngs=rngs)

    def __call__(self, x):
        y = self.reduce(jax.nn.relu(x))
        y = self.conv(jax.nn.relu(y))
        return x + self.expand(jax.nn.relu(y))


class PixelCNN(nnx.Module):
    """Binary-image PixelCNN; returns per-pixel logits of shape (N, H, W, 1)."""

    def __init__(
        self,
        image_shape: Sequence[int] = (28, 28, 1),
        hidden: int = 16,
        num_blocks: int = 7,
        out_hidden: int = 32,
        first_kernel: int = 7,
        kernel_size: int = 3,
        first_mask: str = "A",
        *,
        rngs: nnx.Rngs,
    ):
        channels = int(image_shape[-1])
        if channels != 1:
            raise NotImplementedError(
                f"PixelCNN here models one binary channel; image_shape {list(image_shape)} has "
                f"{channels}. Colour needs the paper's channel-group masks (not implemented).")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.first_kernel, self.kernel_size, self.num_blocks = first_kernel, kernel_size, num_blocks
        # first_mask="B" exists only so tests can show a non-causal model is caught.
        self.first = MaskedConv(channels, 2 * hidden, first_kernel, first_mask, rngs=rngs)
        self.blocks = nnx.List([ResidualBlock(hidden, kernel_size, rngs=rngs) for _ in range(num_blocks)])
        self.head1 = Pointwise(2 * hidden, out_hidden, rngs=rngs)
        self.head2 = Pointwise(out_hidden, channels, rngs=rngs)

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        h = self.first(x)
        for block in self.blocks:
            h = block(h)
        return self.head2(jax.nn.relu(self.head1(jax.nn.relu(h))))

    @property
    def rows_above(self) -> int:
        """How many rows above a pixel its logit can depend on (the receptive field's height)."""
        return self.first_kernel // 2 + self.num_blocks * (self.kernel_size // 2)


def sample(model: PixelCNN, key, num: int, window: bool = True):
    """Ancestral sampling: num binary images (uint8, (num, H, W, 1)), one pixel at a time in
    raster order, H*W sequential forward passes in one lax.fori_loop (jit the caller).

    window=True runs each pass on only the rows the current row's logits can depend on
    (`model.rows_above` + 1 rows, starting at the image top for the first rows, so the zero
    padding at the top matches the full image's); rows further above cannot reach the current
    row, and rows below are still zero. Same logits as the full forward pass (tested), ~H/(rows+1)
    times less work. Pixel i's draw uses fold_in(key, i), so both ways give the same images."""
    height, width, channels = model.image_shape
    rows = min(model.rows_above + 1, height) if window else height

    def body(i, x):
        r, c = i // width, i % width
        start = jnp.clip(r - (rows - 1), 0, height - rows)
        view = jax.lax.dynamic_slice_in_dim(x, start, rows, axis=1)
        logits = model(view.astype(jnp.float32))
        logit = jax.lax.dynamic_index_in_dim(logits, r - start, axis=1, keepdims=False)[:, c, 0]
        bit = jax.random.bernoulli(jax.random.fold_in(key, i), jax.nn.sigmoid(logit))
        return x.at[:, r, c, 0].set(bit.astype(x.dtype))

    x0 = jnp.zeros((num, height, width, channels), jnp.uint8)
    return jax.lax.fori_loop(0, height * width, body, x0)
