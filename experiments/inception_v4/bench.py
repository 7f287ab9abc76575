"""Throughput of the full 299x299 networks on this machine: ours (JAX) beside timm's (PyTorch),
in one run, so that the ratio says something the absolute numbers on a shared CPU do not:
`make bench-inception`.

For each network: images/s of a forward pass in inference mode and of a training step (forward,
backward and the paper's RMSProp update, batch norm in training mode), at `--batch` images of
299x299x3 and 1000 classes, best of `--repeats` calls after a warm-up call, compile time apart.
timm runs in the reference environment of crosscheck.py (created on demand; PyTorch never joins
the project's environment), in a process of its own, with as many threads as this process has
cores; `--no-reference` times ours alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import jax
import optax
from flax import nnx

from bench.timing import best_of
from experiments.inception_v4.crosscheck import DEFAULT_VENV, TORCH, reference_python
from repro.models.inception import Inception

NETWORKS = {"inception_v4": dict(version="v4"),
            "inception_resnet_v2": dict(version="resnet_v2", layout="released")}

# Runs in the reference environment: {network: {"forward": s, "train": s}} for one batch.
TIMM = r"""
import json, sys, time, timm, torch
names, batch, repeats, threads = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)

def best(fn):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)

out = {}
for name in names:
    model = timm.create_model(name, pretrained=False, num_classes=1000)
    x, y = torch.randn(batch, 3, 299, 299), torch.randint(0, 1000, (batch,))
    opt = torch.optim.RMSprop(model.parameters(), lr=0.045, alpha=0.9, eps=1.0)
    def forward():
        model.eval()
        with torch.no_grad():
            model(x)
    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    out[name] = {"forward": best(forward), "train": best(train)}
print(json.dumps({"torch": torch.__version__, "timm": timm.__version__, "times": out}))
"""


def time_ours(kw: dict, batch: int, repeats: int) -> dict:
    """Seconds per batch of our network: forward in inference mode, and a training step."""
    model = Inception(**kw, num_classes=1000, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.rmsprop(0.045, decay=0.9, eps=1.0)  # the paper's (section 4)
    x = jax.random.normal(jax.random.key(1), (batch, 299, 299, 3))
    y = jax.random.randint(jax.random.key(2), (batch,), 0, 1000)

    @jax.jit
    def forward(params, rest, x):
        return nnx.merge(graphdef, params, rest)(x, train=False)

    def train(state, x, y):
        params, rest, opt_state = state

        def loss_fn(p):
            m = nnx.merge(graphdef, p, jax.tree.map(lambda a: a, rest))  # fresh BN Variables
            logits = m(x, train=True, rngs=nnx.Rngs(dropout=0))
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, nnx.state(m, nnx.BatchStat)

        (_, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), nnx.merge_state(rest, new_stats), opt_state

    t0 = time.perf_counter()
    forward_c = forward.lower(params, rest, x).compile()
    forward_compile = time.perf_counter() - t0
    holder = {"state": (params, rest, tx.init(params))}
    t0 = time.perf_counter()
    train_c = jax.jit(train, donate_argnums=0).lower(holder["state"], x, y).compile()
    train_compile = time.perf_counter() - t0

    def step():
        holder["state"] = train_c(holder["state"], x, y)
        return holder["state"]

    forward_s = best_of(lambda: forward_c(holder["state"][0], holder["state"][1], x), repeats)
    return {"forward": forward_s, "train": best_of(step, repeats),
            "compile": {"forward": forward_compile, "train": train_compile}}


def time_timm(venv: Path, names: list[str], batch: int, repeats: int) -> dict:
    python = reference_python(venv, TORCH)
    done = subprocess.run([str(python), "-c", TIMM, ",".join(names), str(batch), str(repeats),
                           str(len(os.sched_getaffinity(0)))], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the reference environment")
    parser.add_argument("--no-reference", action="store_true", help="time ours alone (no timm)")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, {len(os.sched_getaffinity(0))} cores, batch "
          f"{args.batch} of 299x299x3, 1000 classes, float32, best of {args.repeats}", flush=True)
    theirs = None if args.no_reference else time_timm(args.venv, args.networks, args.batch, args.repeats)
    if theirs:
        print(f"reference: torch {theirs['torch']}, timm {theirs['timm']}")
    print(f"{'network':>20} | {'pass':>7} | {'ours img/s':>10} | {'timm img/s':>10} | {'ours/timm':>9} | "
          f"{'ours compile s':>14}")
    for name in args.networks:
        ours = time_ours(NETWORKS[name], args.batch, args.repeats)
        for kind in ("forward", "train"):
            mine = args.batch / ours[kind]
            other = args.batch / theirs["times"][name][kind] if theirs else float("nan")
            print(f"{name:>20} | {kind:>7} | {mine:10.2f} | {other:10.2f} | {mine / other:9.2f} | "
                  f"{ours['compile'][kind]:14.1f}", flush=True)


if __name__ == "__main__":
    main()
