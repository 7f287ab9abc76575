"""The suite's one convolution layer, `Conv`: `nnx.Conv` with a `conv_general_dilated` whose
gradients stay fast on XLA:CPU inside a scan. Every conv model uses it (tests/test_models.py
fails on a bare `nnx.Conv` or `lax.conv*` elsewhere in repro/models/): forgetting it makes CPU
training 30-60x slower. Upstream: jax-ml/jax#12868 ("Convolution is significantly slower inside
a loop body (CPU)", open); this file can go when XLA:CPU canonicalizes convolutions in every
computation, not only the entry one.

XLA:CPU runs a convolution through its fast library path (Eigen/YNNPACK) only when the
dimension numbers are canonical: input NHWC, kernel HWIO, output NHWC, f32/f16. JAX's
gradients of an NHWC/HWIO convolution are not: the input gradient uses the kernel as HWOI
(plus a flip), the kernel gradient treats the batch as the feature dimension
(`f01b_i01o->01bf`). XLA:CPU's `ConvCanonicalization` pass rewrites such convolutions with
transposes, but it only visits the *entry* computation (xla/service/cpu/conv_canonicalization.cc:
`module->entry_computation()->MakeInstructionPostOrder()`), so inside a `lax.scan`/while body,
which is where the shared loop runs every training step, they fall back to XLA's naive
elemental convolution loop: ~10x (input gradient) and ~70x (kernel gradient) slower
(bench/resnet_pieces.py). The fix: a `custom_vjp` whose backward pass writes both gradients as
canonical NHWC/HWIO convolutions with explicit transposes, i.e. what the pass would have done,
and whose forward pass saves its input through a conv so that XLA cannot recompute it inside
that transpose (see `_fwd`).

Same math as `jax.lax.conv_general_dilated` (tests/test_resnet.py compares values and
gradients). Used only on the CPU backend, for 2-D NHWC/HWIO f32/bf16/f16 convolutions without
dilation or feature groups; everything else (and every other backend, where the fast conv
libraries take any layout) goes to `lax.conv_general_dilated` unchanged.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, strides, padding, precision, lhs_dilation=(1, 1), rhs_dilation=(1, 1)):
    return lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=_NHWC,
                                    precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def canonical_conv(x, w, strides, padding, precision=None):
    """NHWC x HWIO -> NHWC convolution (explicit padding) whose gradients are NHWC/HWIO too."""
    return _conv(x, w, strides, padding, precision)


def _fwd(x, w, strides, padding, precision):
    # Save x through an exact 1x1 identity conv (~1/9 of the conv's FLOPs): XLA cannot fuse
    # through a conv, so the backward transpose reads this buffer. Saving x itself lets XLA
    # fuse x's producers (BN, ReLU, the residual adds of every earlier block of the stage) into
    # that transpose and recompute them there: O(blocks^2) work per stage, 2.4x the step time
    # of ResNet-56 on one core.
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)[None, None]
    saved = _conv(x, eye, (1, 1), ((0, 0), (0, 0)), lax.Precision.HIGHEST)
    return _conv(x, w, strides, padding, precision), (saved, w)


def _bwd(strides, padding, precision, residuals, dy):
    x, w = residuals
    dx_pad, dw_pad, crop = [], [], []
    for size, out, k, s, (lo, _) in zip(x.shape[1:3], dy.shape[1:3], w.shape[:2], strides, padding,
                                        strict=True):
        out_dilated = (out - 1) * s + 1
        before = k - 1 - lo
        dx_pad.append((before, size + k - 1 - out_dilated - before))
        hi = out_dilated - size + k - 1 - lo  # < 0: the last -hi rows are never read
        dw_pad.append((lo, max(hi, 0)))
        crop.append(size + min(hi, 0))
    # Input gradient: dy dilated by the stride, correlated with the flipped kernel, in and out
    # channels swapped (HWIO with I = the conv's outputs).
    w_flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv(dy, w_flipped, (1, 1), dx_pad, precision, lhs_dilation=strides)
    # Kernel gradient: input channels as the batch, examples as the features, dy as the kernel
    # (dilated by the stride): (C_in, kh, kw, C_out) -> HWIO.
    xt = x[:, :crop[0], :crop[1], :].transpose(3, 1, 2, 0)
    dw = _conv(xt, dy.transpose(1, 2, 0, 3), (1, 1), dw_pad, precision,
               rhs_dilation=strides).transpose(1, 2, 0, 3)
    return dx.astype(x.dtype), dw.astype(w.dtype)


canonical_conv.defvjp(_fwd, _bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None, **kwargs):
    """`lax.conv_general_dilated`, routed through `canonical_conv` where that is the fast path."""
    args = (lhs, rhs, window_strides, padding)
    kw = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
              dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
              batch_group_count=batch_group_count, precision=precision,
              preferred_element_type=preferred_element_type, **kwargs)
    if not _is_canonical_2d(lhs, rhs, window_strides, padding, **kw):
        return lax.conv_general_dilated(*args, **kw)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
    return canonical_conv(lhs, rhs, tuple(window_strides), tuple(tuple(p) for p in padding),
                          precision)


def _is_canonical_2d(lhs, rhs, window_strides, padding, *, lhs_dilation, rhs_dilation,
                     dimension_numbers, feature_group_count, batch_group_count, precision,
                     preferred_element_type, **kwargs):
    if jax.default_backend() != "cpu" or lhs.ndim != 4 or rhs.ndim != 4:
        return False
    if any(v is not None for v in kwargs.values()) or preferred_element_type is not None:
        return False
    if feature_group_count != 1 or batch_group_count != 1:
        return False
    if any(d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ()))):
        return False
    if lhs.dtype != rhs.dtype or jnp.dtype(lhs.dtype) not in (jnp.float32, jnp.bfloat16,
                                                               jnp.float16):
        return False
    dims = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if dims != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC):
        return False
    if isinstance(padding, str):
        return padding in ("SAME", "VALID")
    # Padding past the kernel would need negative padding in the input gradient.
    return all(0 <= lo < k and 0 <= hi < k for (lo, hi), k in zip(padding, rhs.shape[:2],
                                                                   strict=True))


class Conv(nnx.Conv):
    """`nnx.Conv` (same arguments) computed with the `conv_general_dilated` above."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("conv_general_dilated", conv_general_dilated)
        super().__init__(*args, **kwargs)
