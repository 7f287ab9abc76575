"""Parameter counts (and multiply-adds at 299x299) of independent Inception implementations, next
to ours: `make crosscheck-inception`.

Builds timm's `inception_v4` and `inception_resnet_v2` (PyTorch) and Keras's `InceptionResNetV2`
without weights, in a virtual environment of their own (`--venv`, created and filled on demand:
PyTorch and TensorFlow never join the project's environment or its tests), counts their
parameters and timm's multiply-adds on one 299x299 image (torch's FlopCounterMode: convolutions
and matrix products, two FLOPs each), and prints them beside repro/models/inception.py's counts
for the same layouts (`repro.facts.multiply_adds`). The numbers it printed are the constants of
tests/test_inception.py and the counts in the spec.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TORCH = ["torch==2.14.1", "torchvision==0.29.1", "timm==1.0.31"]
PACKAGES = [*TORCH, "tensorflow-cpu==2.21.0"]
DEFAULT_VENV = Path.home() / ".cache" / "repro" / "inception-crosscheck"

# Each runs inside the reference environment, in a process of its own (PyTorch and TensorFlow in
# one process crash), and prints {name: count} as JSON.
COUNTS = [r"""
import json, timm, torch
from torch.utils.flop_counter import FlopCounterMode
out = {}
for name in ("inception_v4", "inception_resnet_v2"):
    model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
    out[f"timm {timm.__version__} {name}"] = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:  # convolutions and matmuls
        model(torch.zeros(1, 3, 299, 299))
    out[f"timm {timm.__version__} {name} multiply-adds"] = counter.get_total_flops() // 2
print(json.dumps(out))
""", r"""
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
model = keras.applications.InceptionResNetV2(weights=None)
trainable = int(sum(w.numpy().size for w in model.trainable_weights))
print(json.dumps({f"keras {keras.__version__} InceptionResNetV2 (trainable)": trainable}))
"""]


# Which of our layouts each reference builds.
OURS = {"inception_v4": dict(version="v4"),
        "inception_resnet_v2": dict(version="resnet_v2", layout="released"),
        "InceptionResNetV2": dict(version="resnet_v2", layout="released", bn_scale=False)}


def reference_python(venv: Path, packages: list[str] = PACKAGES) -> Path:
    """The reference environment's interpreter, created and given `packages` if needed."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)  # no-op once there
    return python


def reference_counts(venv: Path) -> dict[str, int]:
    python = reference_python(venv)
    counts = {}
    for snippet in COUNTS:
        done = subprocess.run([str(python), "-c", snippet], check=True, capture_output=True, text=True)
        counts.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return counts


def our_count(multiply_adds: bool = False, **kw) -> int:
    """Parameters of our network, or its multiply-adds on one 299x299 image."""
    import jax
    from flax import nnx

    from repro import facts
    from repro.models.inception import Inception

    model = nnx.eval_shape(lambda: Inception(**kw, rngs=nnx.Rngs(0)))
    if not multiply_adds:
        return facts.parameter_count(nnx.state(model, nnx.Param))
    graphdef, state = nnx.split(model)
    image = jax.ShapeDtypeStruct((1, 299, 299, 3), "float32")
    return facts.multiply_adds(lambda s, x: nnx.merge(graphdef, s)(x, train=False), state, image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="the reference implementations' environment (created on demand, ~6 GB)")
    args = parser.parse_args()
    theirs = reference_counts(args.venv)
    mismatches = 0
    for name, count in theirs.items():
        layout = next(kw for key, kw in OURS.items() if key in name.split()[2])
        ours = our_count(multiply_adds=name.endswith("multiply-adds"), **layout)
        mismatches += ours != count
        verdict = "equal" if ours == count else "DIFFERS"
        print(f"{name:55s} {count:>12,d}   ours {layout}: {ours:>12,d}   {verdict}")
    if mismatches:
        raise SystemExit(f"error: {mismatches} count(s) differ from the reference implementations")


if __name__ == "__main__":
    main()
