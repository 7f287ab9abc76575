"""Where a CIFAR ResNet training step spends its time: the pieces timed apart, in one process.

Each piece runs both in the entry computation (a plain jit) and inside a `lax.scan` body (the
shared loop runs every step in one), with `jax.lax.conv_general_dilated` ("lax") and with the
suite's `repro.models.conv.conv_general_dilated` ("suite"; canonical NHWC/HWIO gradients).
Times are min / median of `--repeats` calls after a warm-up, per step (scan: per iteration).

    python -m bench.resnet_pieces                  # ResNet-20, batch 128
    python -m bench.resnet_pieces --only conv      # the 10-line XLA:CPU evidence alone

On XLA:CPU the gradient convolutions of the lax version fall off the fast path inside the scan
(see repro/models/conv.py); on a GPU both columns should agree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from repro.data.transforms import normalize, random_crop_flip
from repro.models import conv as suite_conv
from repro.models.resnet import CifarResNet, ConvBN

CONVS = {"lax": lax.conv_general_dilated, "suite": suite_conv.conv_general_dilated}


def timed(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def in_scan(f, length):
    """f(x, *rest) -> pytree, run `length` times in a scan; x depends on the carry and on every
    output leaf, so nothing can be hoisted out of the loop or left out."""
    def body(c, _):
        out = f(*c)
        used = sum(leaf.ravel()[0].astype(jnp.float32) for leaf in jax.tree.leaves(out))
        x = c[0] + (used * 0).astype(c[0].dtype)
        return (x, *c[1:]), None
    return jax.jit(lambda *a: lax.scan(body, a, None, length=length)[0])


def row(name, plain, scanned, length):
    print(f"{name:44s} | {plain[0]*1e3:8.1f} / {plain[1]*1e3:8.1f} | "
          f"{scanned[0]*1e3/length:8.1f} / {scanned[1]*1e3/length:8.1f}", flush=True)


def conv_pieces(args):
    dn = ("NHWC", "HWIO", "NHWC")
    x = jax.random.normal(jax.random.key(0), (args.batch, 32, 32, 16))
    w = jax.random.normal(jax.random.key(1), (3, 3, 16, 16))
    flop = 2 * args.batch * 32 * 32 * 16 * 16 * 9
    for name, conv in CONVS.items():
        def fwd(x, w, conv=conv):
            return conv(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        def dx(x, w, fwd=fwd):  # cotangent x: the result depends on x (no hoisting)
            return jax.vjp(lambda x: fwd(x, w), x)[1](x)[0]
        def dw(x, w, fwd=fwd):
            return jax.vjp(lambda w: fwd(x, w), w)[1](x)[0]
        for piece, f in (("fwd", fwd), ("dx", dx), ("dw", dw)):
            plain = timed(jax.jit(f), x, w, repeats=args.repeats)
            scanned = timed(in_scan(f, 2), x, w, repeats=args.repeats)
            row(f"conv3x3 16->16 32x32 {piece} [{name}] "
                f"({flop / scanned[0] * 2 / 1e9:.0f} GFLOP/s in scan)", plain, scanned, 2)


def model_pieces(args):
    b = args.batch
    x = jax.random.normal(jax.random.key(0), (b, 32, 32, 3))
    y = jnp.zeros(b, jnp.int32)
    images = jax.random.randint(jax.random.key(2), (b, 32, 32, 3), 0, 256).astype(jnp.uint8)
    tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9))

    aug = lambda im, k: normalize(random_crop_flip(k, im), (125.3, 123.0, 113.9), (63.0, 62.1, 66.7))  # noqa: E731
    row(f"crop+flip+normalize, batch {b}",
        timed(jax.jit(aug), images, jax.random.key(0), repeats=args.repeats),
        timed(in_scan(lambda im, k: aug(im, k).astype(jnp.uint8), 2), images, jax.random.key(0),
              repeats=args.repeats), 2)

    variants = [(c, "A", None, "float32") for c in CONVS] + [
        ("suite", "A", "highest", "float32"), ("suite", "A", None, "bfloat16"),
        ("suite", "B", None, "float32"), ("suite", "plain", None, "float32")]
    for conv_name, shortcut, precision, dtype in variants:
        model = CifarResNet(args.depth, shortcut=shortcut, compute_dtype=dtype, rngs=nnx.Rngs(0))
        for _, m in nnx.iter_graph(model):
            if isinstance(m, ConvBN):
                m.conv.conv_general_dilated = CONVS[conv_name]
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        extra = "".join(f", {v}" for v in (precision, dtype) if v not in (None, "float32"))
        label = f"ResNet-{args.depth} {shortcut} [{conv_name}{extra}]"

        def loss(p, x, graphdef=graphdef, rest=rest):
            m = nnx.merge(graphdef, p, jax.tree.map(lambda a: a, rest))
            logits = m(x, train=True).astype(jnp.float32)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def step(x, p, o):
            g = jax.grad(loss)(p, x)
            u, o = tx.update(g, o, p)
            return optax.apply_updates(p, u), o

        with jax.default_matmul_precision(precision or "default"):
            if (conv_name, shortcut, precision, dtype) == ("suite", "A", None, "float32"):
                row(f"{label} fwd (train BN)", timed(jax.jit(loss), params, x, repeats=args.repeats),
                    timed(in_scan(lambda x, p: loss(p, x), 2), x, params, repeats=args.repeats), 2)
            state = (params, tx.init(params))
            # The lax version takes about a minute per step in the scan: time it once.
            slow = 1 if conv_name == "lax" else args.repeats
            row(f"{label} fwd+bwd+SGD step", timed(jax.jit(step), x, *state, repeats=args.repeats),
                timed(in_scan(step, 2), x, *state, repeats=slow), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("conv", "model"))
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}; ms per step, min / median of {args.repeats}")
    print(f"{'piece':44s} | {'jit (entry computation)':>19s} | {'in lax.scan body':>19s}")
    if args.only in (None, "conv"):
        conv_pieces(args)
    if args.only in (None, "model"):
        model_pieces(args)


if __name__ == "__main__":
    main()
