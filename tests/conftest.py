"""Shared fixtures: a tiny learnable MNIST-format mirror written in IDX files, and config helpers."""

from __future__ import annotations

import atexit
import ctypes
import gc
import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repro.configuration import compose


def _compile_each_program_once_per_process():
    """The tests build the same small programs again and again (a fresh jit per run, and each
    module's programs dropped when it ends, below): JAX's persistent compilation cache reads them
    back instead of compiling them anew (measured on 2 cores: the loop's, properties' and
    PixelCNN's tests 20-40% faster; the whole main process ~6%). Every program is cached, however
    small; in a folder of this process's own unless the caller names one (the mutation tool
    shares one across its mutants)."""
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if jax.config.jax_compilation_cache_dir:
        return
    folder = tempfile.mkdtemp(prefix="repro-tests-jax-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", folder)


_compile_each_program_once_per_process()


def _drop_compiled_programs():
    jax.clear_caches()
    gc.collect()  # the executables go with their last Python reference


def _give_freed_memory_back_to_the_system():
    """glibc keeps what a process frees for its own next allocations: without this, a process
    stays at its largest module's peak for the rest of the suite (measured: 1.8 GB held after
    CLSM's real-data test, 0.8 GB with it), and the test workers' peaks add up."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim this way
        pass


@pytest.fixture(autouse=True, scope="module")
def _release_device_memory_between_modules():
    """Each pytest process (`make test` runs two) runs many modules: drop each module's compiled
    programs and cached data sets when it ends, so a process peaks at its largest module, not
    their sum."""
    yield
    from repro.run import _cached_dataset

    _cached_dataset.cache_clear()
    _drop_compiled_programs()
    _give_freed_memory_back_to_the_system()


@pytest.fixture
def drop_compiled_programs_after_each_test():
    """For a module whose every test compiles programs of its own (the mixture's: ~0.4 GB each,
    4.96 GB for the module), drop them after each test, not only at the module's end (measured:
    a 2.43 GB peak, and no slower: the persistent cache above reads back what repeats). Not for
    every module: where tests share programs, recompiling them costs more than it frees."""
    yield
    _drop_compiled_programs()


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_DATA = Path(os.environ.get("REPRO_DATA_DIR") or SHARED_DATA)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k lights up a 6x6 block whose place depends on k, over uniform noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + 6 * (k // 4), 2 + 6 * (k % 4)
        images[i, r : r + 6, c : c + 6] = 255
    return images, labels


def write_mnist_mirror(folder: Path, n_train=600, n_test=200, gz=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sums = []
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{split}-{kind}-ubyte"
            raw = idx_bytes(arr)
            sums.append(f"{hashlib.sha256(raw).hexdigest()}  {name}")
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    (folder / "SHA256SUMS.uncompressed").write_text("\n".join(sums) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_mnist_mirror(root / "mnist")
    return root


@pytest.fixture
def run_overrides(tiny_data_dir, tmp_path):
    """Overrides for a quick, quiet run on the tiny mirror, writing under tmp_path (the tiny
    mirror is a partial MNIST, so runs on it must allow that)."""
    return [
        f"data.dir={tiny_data_dir}",
        "data.allow_partial=true",
        "logger.mode=disabled",
        "progress=false",
        f"paths.results={tmp_path / 'results'}",
        f"paths.checkpoints={tmp_path / 'checkpoints'}",
    ]


def needs_real_mnist():
    return pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(),
                              reason=f"no MNIST mirror at {REAL_DATA}")


__all__ = ["compose", "write_mnist_mirror", "idx_bytes", "REAL_DATA", "needs_real_mnist"]


class Interrupt(Exception):
    """Stands for a killed run in the resume tests."""


def interrupted_run(cfg, at_step: int) -> None:
    """Start run(cfg) and stop it at the chunk boundary `at_step`, after its checkpoint."""
    from repro.run import run

    def stop(step, state, record):
        if step == at_step:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(cfg, callbacks=[stop])


def latest_checkpoint(where: Path) -> int:
    """The newest checkpoint step a run writing under <where>/checkpoints has saved (-1: none)."""
    steps = [int(p.name) for p in (where / "checkpoints").glob("debug/*/*") if p.name.isdigit()]
    return max(steps, default=-1)


SCENE_HW = (12, 16)


def detection_scenes(n=6, seed=0):
    """n images, each with two filled rectangles (values 100 and 200, left and right half;
    classes 3 and 7) whose boxes and masks are exact, in 3 instance slots (the third always
    padding, and the second of the last image too): a detection-shaped data set."""
    h, w = SCENE_HW
    rng = np.random.default_rng(seed)
    images = np.zeros((n, h, w, 1), np.uint8)
    boxes = np.zeros((n, 3, 4), np.float32)
    masks = np.zeros((n, 3, h, w), np.uint8)
    valid = np.zeros((n, 3), np.float32)
    for i in range(n):
        for k, value in enumerate((100, 200)):
            if i == n - 1 and k == 1:
                continue
            x0, y0 = k * w // 2 + rng.integers(0, w // 2 - 4), rng.integers(0, h - 4)  # no overlap
            x1, y1 = x0 + rng.integers(2, 5), y0 + rng.integers(2, 5)
            images[i, y0:y1, x0:x1, 0] = value
            masks[i, k, y0:y1, x0:x1] = 1
            boxes[i, k] = (x0, y0, x1, y1)
            valid[i, k] = 1
    classes = np.tile(np.array([3, 7, 0], np.int32), (n, 1))
    return {"image": images, "boxes": boxes, "masks": masks, "classes": classes, "valid": valid}


def numpy_lstm_step(p: dict, token, h, c):
    """One step of the SeqGAN authors' LSTM cell in float64 numpy (input, forget and output gates,
    then the candidate), written apart from the code under test: the new (h, c) and the next
    token's log-probabilities. `token` and `h`, `c` may carry a leading batch axis."""
    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    x = p["embedding"][token]
    i = sigmoid(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
    f = sigmoid(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
    o = sigmoid(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
    c = f * c + i * np.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
    h = o * np.tanh(c)
    logits = h @ p["Wo"] + p["bo"]
    top = logits.max(-1, keepdims=True)
    return h, c, logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def constant_mask_head(model, logit_of_class):
    """The mask head's output fixed to logit_of_class[k] for class k everywhere."""
    model.mask_out.kernel[...] = jnp.zeros_like(model.mask_out.kernel[...])
    model.mask_out.bias[...] = jnp.asarray(logit_of_class, jnp.float32)
