import dataclasses
import gzip
import pickle
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import REAL_DATA, idx_bytes, needs_real_mnist, write_mnist_mirror

from repro.data import DataError, dataset, load_dataset, records, tfds_source
from repro.data.mnist import parse_idx
from repro.data.pipeline import batch_indices
from repro.data.transforms import Normalize, RandomCropFlip, Transforms, for_data, random_crop_flip


def test_idx_roundtrip():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)


def test_idx_rejects_bad_magic_and_truncation():
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="truncated"):
        parse_idx(idx_bytes(np.zeros((4, 4), np.uint8))[:-3])


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_mirror_reads_gz_and_raw(tmp_path, gz):
    write_mnist_mirror(tmp_path / "mnist", n_train=50, n_test=20, gz=gz)
    data = load_dataset("mnist", str(tmp_path))
    assert data.split("train")["image"].shape == (50, 28, 28, 1)
    assert data.split("train")["image"].dtype == np.uint8
    assert data.split("test")["label"].shape == (20,)
    assert data.split("test")["label"].dtype == np.int32
    assert data.source.startswith("mirror:")


def test_corrupt_mirror_is_a_clear_error(tmp_path):
    folder = write_mnist_mirror(tmp_path / "mnist", n_train=50, n_test=20)
    raw = bytearray(gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes()))
    raw[-1] ^= 1
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="checksum mismatch.*train-labels"):
        load_dataset("mnist", str(tmp_path))


def test_missing_mirror_file_says_what_to_do(tmp_path):
    folder = write_mnist_mirror(tmp_path / "mnist", n_train=50, n_test=20)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="not found.*Put the four official MNIST files"):
        load_dataset("mnist", str(tmp_path))


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set 'imagenet'.*records.py"):
        load_dataset("imagenet", "/nonexistent")


class FakeSource:
    """A TFDS data source: len() and a batched __getitems__; single-example reads fail, so the
    loader must read whole lists of keys at once."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
        self.labels = rng.integers(0, 10, n)
        self.calls = []

    def __len__(self):
        return len(self.labels)

    def __getitems__(self, keys):
        self.calls.append(len(keys))
        return [{"image": self.images[k], "label": self.labels[k]} for k in keys]

    def __getitem__(self, key):
        raise AssertionError("read one example at a time")


def test_tfds_path_reads_whole_splits_in_batches_and_passes_its_data_dir(monkeypatch):
    sources, seen = {"train": FakeSource(25_000, 0), "test": FakeSource(7, 1)}, {}

    class Builder:
        info = types.SimpleNamespace(full_name="mnist/3.0.1")

        def __init__(self, name, data_dir):
            seen.update(name=name, data_dir=data_dir)

        def download_and_prepare(self, file_format):
            seen["format"] = file_format

        def as_data_source(self, split):
            return sources[split]

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(builder=Builder))
    monkeypatch.delenv("REPRO_DATA_DIR", raising=False)  # no mirror: the TFDS path
    monkeypatch.setattr(dataset, "DEFAULT_MIRROR", Path("/nonexistent"))
    data = load_dataset("mnist", None, tfds_dir="/somewhere/tfds", validation_size=5)
    assert seen == {"name": "mnist", "data_dir": "/somewhere/tfds", "format": "array_record"}
    assert sources["train"].calls == [10_000, 10_000, 5_000] and sources["test"].calls == [7]
    np.testing.assert_array_equal(data.split("train")["image"], sources["train"].images[:-5])
    np.testing.assert_array_equal(data.split("validation")["label"], sources["train"].labels[-5:])
    assert data.split("test")["label"].dtype == np.int32 and data.source == "tfds:mnist/3.0.1"
    assert data.partial == "25000 of 60000 train images, 7 of 10000 test images"  # before the carve


def test_tfds_failure_says_how_to_use_a_mirror(monkeypatch):
    def builder(name, data_dir):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(builder=builder))
    with pytest.raises(DataError, match="TFDS could not provide 'cifar10'.*REPRO_DATA_DIR"):
        tfds_source.read("cifar10")


def test_every_data_set_record_is_complete():
    for name, record in records.RECORDS.items():
        assert record.name == name and callable(record.read_mirror)
        assert record.tfds_name or callable(record.read_online)  # an online source either way
        assert set(record.official_sizes) == {"train", "test"}


def test_validation_split_is_carved_from_train(tmp_path):
    write_mnist_mirror(tmp_path / "mnist", n_train=100, n_test=20)
    full = load_dataset("mnist", str(tmp_path))
    data = load_dataset("mnist", str(tmp_path), validation_size=30)
    assert len(data.split("train")["label"]) == 70
    np.testing.assert_array_equal(data.split("validation")["image"], full.split("train")["image"][70:])


def _write_cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"x", b"labels": list(rng.integers(0, 10, n)),
             b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8)}
    path.write_bytes(pickle.dumps(batch))
    return batch


def test_cifar_reader_layout(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    first = _write_cifar_batch(folder / "data_batch_1", 7, 0)
    for i in range(2, 6):
        _write_cifar_batch(folder / f"data_batch_{i}", 7, i)
    _write_cifar_batch(folder / "test_batch", 5, 9)
    data = load_dataset("cifar10", str(tmp_path))
    train = data.split("train")
    assert train["image"].shape == (35, 32, 32, 3) and len(data.split("test")["label"]) == 5
    # Row layout is 1024 R, then G, then B values: pixel (0, 1) of image 0.
    row = first[b"data"][0]
    np.testing.assert_array_equal(train["image"][0, 0, 1], [row[1], row[1024 + 1], row[2048 + 1]])
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", str(tmp_path))


@needs_real_mnist()
def test_real_mnist_mirror():
    data = load_dataset("mnist", str(REAL_DATA))
    assert data.split("train")["image"].shape == (60000, 28, 28, 1)
    assert data.split("test")["image"].shape == (10000, 28, 28, 1)
    assert np.bincount(data.split("test")["label"]).min() > 800
    assert data.partial is None  # the full official files


@pytest.mark.skipif(not (REAL_DATA / "cifar10-subset").is_dir(), reason="no CIFAR-10 subset")
def test_real_cifar10_subset_mirror():
    data = load_dataset("cifar10", str(REAL_DATA), validation_size=85)
    assert data.split("train")["image"].shape == (5000, 32, 32, 3)
    assert len(data.split("test")["label"]) == 1017
    assert set(np.unique(data.split("test")["label"])) == set(range(10))
    # Counted on the source's splits, before the validation carve: a run refuses it by default.
    assert data.partial == "5085 of 50000 train images, 1017 of 10000 test images"


def test_batch_indices_permute_each_epoch_and_ignore_chunking():
    key = jax.random.key(0)
    n, b = 50, 10  # 5 steps per epoch
    all_at_once = np.asarray(batch_indices(key, 0, 15, b, n))
    for epoch in range(3):
        assert sorted(all_at_once[5 * epoch : 5 * epoch + 5].ravel()) == list(range(n))
    assert not np.array_equal(all_at_once[:5], all_at_once[5:10])
    pieces = np.concatenate([np.asarray(batch_indices(key, s, 3, b, n)) for s in range(0, 15, 3)])
    np.testing.assert_array_equal(pieces, all_at_once)


def test_random_crop_flip_is_a_shifted_view():
    images = np.arange(2 * 8 * 8 * 1, dtype=np.float32).reshape(2, 8, 8, 1) + 1
    out = np.asarray(random_crop_flip(jax.random.key(3), images, pad=2))
    assert out.shape == images.shape
    for img, src in zip(out, images, strict=True):
        nonzero = img[img > 0]
        assert set(nonzero.tolist()) <= set(src.ravel().tolist())  # only original pixels or padding


def test_transforms_normalize_and_augment_only_in_training():
    pre = Transforms([RandomCropFlip(pad=2), Normalize(mean=[0.0], std=[255.0])])
    x = {"image": np.full((3, 8, 8, 1), 255, np.uint8), "label": np.arange(3, dtype=np.int32)}
    np.testing.assert_allclose(pre(x, train=False)["image"], 1.0)
    augmented = pre(x, key=jax.random.key(0), train=True)
    assert augmented["image"].min() == 0.0 and augmented["image"].max() == 1.0  # zero padding shows up
    np.testing.assert_array_equal(augmented["label"], x["label"])  # labels pass through


def _official_tiny_mirror(tmp_path, monkeypatch):
    """A tiny mirror whose files the reader takes for the official ones (their sums patched in
    as the built-in official sums), so the official-sum rules can be tested without 50 MB."""
    from repro.data import checksums, mnist

    folder = write_mnist_mirror(tmp_path / "mnist", n_train=50, n_test=20)
    official = checksums.read_sums(folder / "SHA256SUMS.uncompressed")
    monkeypatch.setattr(mnist, "OFFICIAL_SHA256", official)
    monkeypatch.setitem(records.RECORDS, "mnist", dataclasses.replace(
        records.RECORDS["mnist"], official_sizes={"train": 50, "test": 20}))
    return folder


def _flip_a_byte(path):
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(raw)))
    return bytes(raw)


@pytest.mark.parametrize("sums_file", ["empty", "lacks the file", "absent"])
def test_official_sums_are_checked_whatever_the_mirror_sums_file_says(tmp_path, monkeypatch, sums_file):
    folder = _official_tiny_mirror(tmp_path, monkeypatch)
    assert load_dataset("mnist", str(tmp_path)).partial is None  # intact: the official data
    _flip_a_byte(folder / "t10k-images-idx3-ubyte.gz")
    sums = folder / "SHA256SUMS.uncompressed"
    if sums_file == "empty":
        sums.write_text("")
    elif sums_file == "lacks the file":
        sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines()
                                if "t10k-images" not in line))
    else:
        sums.unlink()
    with pytest.raises(DataError, match="checksum mismatch for t10k-images.*official"):
        load_dataset("mnist", str(tmp_path))


def test_mirror_sums_vouch_only_for_unofficial_content(tmp_path, monkeypatch):
    """A mirror may list its own sum for a changed file: it then loads, but as a data set that
    is not the official one, which runs refuse unless data.allow_partial=true."""
    from repro.data.checksums import sha256_bytes

    folder = _official_tiny_mirror(tmp_path, monkeypatch)
    changed = _flip_a_byte(folder / "train-images-idx3-ubyte.gz")
    sums = folder / "SHA256SUMS.uncompressed"
    sums.write_text("".join((f"{sha256_bytes(changed)}  train-images-idx3-ubyte" if "train-images" in line
                             else line) + "\n" for line in sums.read_text().splitlines()))
    data = load_dataset("mnist", str(tmp_path))
    assert data.partial.startswith("not the official content of train-images-idx3-ubyte")


def test_epoch_batches_are_drop_last_slices_of_one_permutation():
    """n=50, batch 20: each epoch is 2 batches, the first 40 entries of that epoch's permutation;
    no batch wraps around into the next epoch, and a chunk starting mid-run agrees."""
    from repro.data.pipeline import epoch_permutation

    key = jax.random.key(3)
    idx = np.asarray(batch_indices(key, 0, 8, 20, 50))
    for step in range(8):
        epoch, within = divmod(step, 2)
        perm = np.asarray(epoch_permutation(key, epoch, 50))
        np.testing.assert_array_equal(idx[step], perm[20 * within : 20 * within + 20])
    for epoch in range(4):
        assert len(set(idx[2 * epoch : 2 * epoch + 2].ravel())) == 40
    np.testing.assert_array_equal(np.asarray(batch_indices(key, 3, 5, 20, 50)), idx[3:])


@pytest.mark.parametrize("experiment", ["bn_mnist", "vardrop_mnist", "pixelcnn_mnist", "resnet_cifar10"])
def test_each_data_set_normalization_is_pinned(experiment):
    """The input scaling each experiment's spec states: MNIST pixels to [0, 1] (x / 255), binarized
    MNIST stays 0/1, CIFAR-10 per-channel standardization with the usual training-set statistics."""
    from repro.configuration import compose

    cfg = compose([f"experiment={experiment}"])
    pre = for_data(cfg.data, None)
    channels = cfg.data.image_shape[-1]
    pixels = np.array([0, 1, 128, 255], np.uint8).reshape(4, 1, 1, 1).repeat(channels, -1)
    got = np.asarray(pre({"image": pixels}, train=False)["image"])
    if cfg.data.name == "cifar10":
        mean = np.array([125.3, 123.0, 113.9])
        std = np.array([63.0, 62.1, 66.7])
        np.testing.assert_allclose(got, (pixels - mean) / std, rtol=2e-3, atol=2e-3)
    elif cfg.data.binarize.seed is not None:  # pixels are already 0/1
        np.testing.assert_array_equal(got[:, 0, 0, 0], [0, 1, 128, 255])
    else:
        np.testing.assert_allclose(got[:, 0, 0, 0], np.array([0, 1, 128, 255]) / 255, rtol=1e-6)


def test_mirror_labels_and_pixels_are_read_as_written(tmp_path):
    """Labels are the ones written (not shifted), images byte for byte."""
    write_mnist_mirror(tmp_path / "mnist", n_train=50, n_test=20)
    data = load_dataset("mnist", str(tmp_path))
    for split, n, seed in (("train", 50, 0), ("test", 20, 1)):
        from conftest import synthetic_digits

        images, labels = synthetic_digits(n, seed)
        np.testing.assert_array_equal(data.split(split)["label"], labels)
        np.testing.assert_array_equal(data.split(split)["image"][..., 0], images)


@needs_real_mnist()
def test_real_mnist_first_labels():
    """The first labels of the official files (as every MNIST reader prints them)."""
    data = load_dataset("mnist", str(REAL_DATA))
    assert data.split("train")["label"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.split("test")["label"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_the_online_path_trains_on_tfds_mock_data(monkeypatch, tmp_path):
    """No mirror anywhere: a run reads MNIST through TFDS (here its mock data, offline), from the
    pinned environment, and says where its data came from."""
    import tensorflow_datasets as tfds

    from repro.configuration import compose
    from repro.run import run

    monkeypatch.delenv("REPRO_DATA_DIR", raising=False)
    monkeypatch.setattr(dataset, "DEFAULT_MIRROR", Path("/nonexistent"))
    with tfds.testing.mock_data(num_examples=64):
        result = run(compose(["experiment=debug", "data.dir=null", "data.allow_partial=true",
                              f"paths.tfds={tmp_path / 'tfds'}", f"paths.results={tmp_path / 'results'}",
                              "train.steps=10", "train.chunk_steps=5", "train.eval_every=5",
                              "train.batch_size=16", "progress=false", "model.hidden=[8]"]))
    assert result["data_source"].startswith("tfds:mnist/")
    assert result["data_partial"] == "64 of 60000 train images, 64 of 10000 test images"
    assert 0.0 <= result["final"]["test/accuracy"] <= 1.0


def test_make_and_direct_calls_find_the_same_mirror(monkeypatch):
    monkeypatch.delenv("REPRO_DATA_DIR", raising=False)
    expected = dataset.DEFAULT_MIRROR if dataset.DEFAULT_MIRROR.is_dir() else None
    assert dataset.resolve_data_dir(None) == expected
    assert dataset.DEFAULT_MIRROR == Path(dataset.__file__).resolve().parents[3] / "shared" / "data"
    monkeypatch.setenv("REPRO_DATA_DIR", "/some/where")
    assert dataset.resolve_data_dir(None) == Path("/some/where")
