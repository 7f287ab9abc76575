"""Where a number came from: code version, library versions, hardware, JAX flags."""

from __future__ import annotations

import datetime
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "hydra-core", "wandb")
JAX_FLAGS = ("jax_default_matmul_precision", "jax_enable_x64", "jax_threefry_partitionable",
             "jax_default_prng_impl")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def hardware() -> dict:
    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "host": socket.gethostname(),
        "cpu": platform.processor() or platform.machine(),
    }


def collect() -> dict:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "versions": versions(),
        "hardware": hardware(),
        "jax_flags": {f: str(getattr(jax.config, f)) for f in JAX_FLAGS if hasattr(jax.config, f)},
        "command": " ".join(sys.argv),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
