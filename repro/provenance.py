"""Where a number came from: code version, library versions, hardware, JAX flags.

What a result file says about the machine is what a reader needs to judge the number (device
kind, versions), not where it ran: no hostname, and paths on the machine (the repository, the
data folder, the home folder) are written as placeholders (`private_paths`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "hydra-core", "wandb")
JAX_FLAGS = ("jax_default_matmul_precision", "jax_enable_x64", "jax_threefry_partitionable",
             "jax_default_prng_impl")


def _git(*args: str, cwd: Path | None = None) -> str | None:
    """git's output, trailing newlines dropped but leading spaces kept (`status --porcelain`
    starts a line with a space for a change that is not staged)."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=cwd or Path(__file__).resolve().parent)
        return out.stdout.rstrip("\n") if out.returncode == 0 else None
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
        "cpu": platform.processor() or platform.machine(),
    }


def code_fingerprint(root: Path | None = None) -> str:
    """SHA-256 over the code a run executes (every .py of repro/ and experiments/, and the
    configs): two parts of one run must come from the same code, committed or not."""
    root = root or Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("repro/**/*.py"), *root.glob("experiments/**/*.py"),
                        *root.glob("configs/**/*.yaml"), *root.glob("experiments/*/config.yaml")]):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def code_changes(porcelain: str) -> list[str]:
    """Changed tracked files from `git status --porcelain`, leaving out results/: a result
    file written or removed is an output, not a change to the code that computes."""
    paths = [line[3:].split(" -> ")[-1] for line in porcelain.splitlines() if line.strip()]
    return [p for p in paths if not p.startswith("results/")]


def collect() -> dict:
    status = _git("status", "--porcelain", "--untracked-files=no")
    changed = code_changes(status) if status is not None else None
    return {
        "commit": _git("rev-parse", "HEAD"),
        "code_sha256": code_fingerprint(),
        "dirty": bool(changed) if changed is not None else None,
        "dirty_files": (changed or [])[:50],
        "versions": versions(),
        "hardware": hardware(),
        "jax_flags": {f: str(getattr(jax.config, f)) for f in JAX_FLAGS if hasattr(jax.config, f)},
        "command": scrub(" ".join(sys.argv), private_paths()),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


REPO = Path(__file__).resolve().parent.parent


def private_paths(data_dir: str | Path | None = None) -> dict[str, str]:
    """{absolute path on this machine: placeholder}, longest first (the most specific wins)."""
    found = {str(REPO): "<repo>", str(Path.home()): "~"}
    data_dir = data_dir or os.environ.get("REPRO_DATA_DIR")
    if data_dir:
        found[str(Path(data_dir).expanduser().resolve())] = "<data dir>"
        found[str(data_dir)] = "<data dir>"
    return dict(sorted(found.items(), key=lambda kv: -len(kv[0])))


def scrub(tree, replacements: dict[str, str]):
    """`tree` (a JSON-like value) with every occurrence of each path replaced by its placeholder."""
    if isinstance(tree, str):
        for path, placeholder in replacements.items():
            if path and path != "/":
                tree = tree.replace(path, placeholder)
        return tree
    if isinstance(tree, dict):
        return {k: scrub(v, replacements) for k, v in tree.items()}
    if isinstance(tree, list):
        return [scrub(v, replacements) for v in tree]
    return tree


def differences(reference: dict, local: dict) -> list[str]:
    """What differs between how two result files of the same config were made, as far as the
    numbers can depend on it: the code, the seeds trained together (vmapped seeds run batched
    arithmetic that XLA may order otherwise), versions, hardware, JAX flags, a resumed run."""
    said = []
    commits = [(r.get("provenance") or {}).get("commit") for r in (reference, local)]
    if commits[0] != commits[1]:
        said.append(f"commit {str(commits[1])[:7]} here, {str(commits[0])[:7]} in the reference")
    if any((r.get("provenance") or {}).get("dirty") for r in (reference, local)):
        said.append("a run made from a tree with uncommitted changes")
    together = [(r.get("timing") or {}).get("vmapped_seeds") for r in (reference, local)]
    if together[0] != together[1]:
        def name(seeds):
            return f"vmapped {seeds}" if seeds else "alone"
        said.append(f"seed trained {name(together[1])} here, {name(together[0])} in the reference "
                    "(batched arithmetic rounds differently)")
    for block in ("versions", "hardware", "jax_flags"):
        a, b = ((r.get("provenance") or {}).get(block) or {} for r in (reference, local))
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        said += [f"{k} {b.get(k)} here, {a.get(k)} in the reference" for k in changed]
    resumed = [bool(r.get("resumed")) for r in (reference, local)]
    if resumed[0] != resumed[1]:
        said.append("one of the two was resumed from a checkpoint")
    return said
