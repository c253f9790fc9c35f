import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from airbench_core import DataError, load_cifar10
from airbench_core import data as data_module
from airbench_core.data import CLASSES

SMALL = (20, 10)      # images per split in the synthetic sources (2 and 1 per class)


def write_tree(root: Path, counts=SMALL, size=32, suffix=".png") -> Path:
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), counts):
        for i in range(n):
            folder = root / split / CLASSES[i % 10]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}{suffix}")
    return root


def write_batches(folder: Path, per_batch=4) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), b"labels": list(range(per_batch))}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
    return folder


def load(source, tmp_path, counts=SMALL):
    return load_cifar10(source, cache_dir=tmp_path / "cache", expected_counts=counts)


def test_image_tree_png_loads_in_label_order_and_is_cached(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "tree")
    d = load(root, tmp_path)
    assert d.train_images.shape == (20, 32, 32, 3) and d.train_images.dtype == np.uint8
    assert list(d.train_labels) == sorted(list(range(10)) * 2)
    assert d.description == "CIFAR-10"
    first = np.asarray(Image.open(root / "train" / "airplane" / "0000.png"))
    assert np.array_equal(d.train_images[0], first)
    monkeypatch.setattr(data_module, "_decode", lambda p: pytest.fail("decoded again instead of using the cache"))
    again = load(root, tmp_path)
    assert np.array_equal(again.test_images, d.test_images)


def test_tar_gz_of_a_jpeg_tree_is_labelled_as_a_jpeg_copy(tmp_path):
    root = write_tree(tmp_path / "tree", suffix=".jpg")
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "train", arcname="cifar/train")
        tar.add(root / "test", arcname="cifar/test")
    d = load(archive, tmp_path)
    assert d.description == "CIFAR-10 (JPEG copy)" and d.test_images.shape == (10, 32, 32, 3)


def test_batches_folder_and_its_parent_both_load(tmp_path):
    folder = write_batches(tmp_path / "cifar-10-batches-py")
    for source in (folder, tmp_path):
        d = load(source, tmp_path, counts=(20, 4))
        assert d.train_images.shape == (20, 32, 32, 3) and list(d.test_labels) == [0, 1, 2, 3]


def test_cifar_python_tar_gz_as_distributed_loads(tmp_path):
    folder = write_batches(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    d = load(archive, tmp_path, counts=(20, 4))
    assert d.train_images.shape == (20, 32, 32, 3) and d.description == "CIFAR-10"


def test_configured_source_has_cifar10s_shape_and_reloads_from_the_cache(cifar, monkeypatch):
    """The source in $AIRBENCH_DATA (the session already loaded it once) comes back from the cache:
    decoding again is an error here, not a slow path that a time bound would have to catch."""
    monkeypatch.setattr(data_module, "_decode", lambda p: pytest.fail("decoded again instead of using the cache"))
    again = load_cifar10(cifar.source)
    assert again.train_images.shape == (50000, 32, 32, 3) and again.test_images.shape == (10000, 32, 32, 3)
    assert np.bincount(again.test_labels).tolist() == [1000] * 10
    assert np.bincount(again.train_labels).tolist() == [5000] * 10
    assert np.array_equal(again.test_images, cifar.test_images)
    jpeg = "jpeg" in Path(cifar.source).name.lower()
    assert again.description == ("CIFAR-10 (JPEG copy)" if jpeg else "CIFAR-10")


def one_line_error(source, tmp_path, counts=SMALL) -> str:
    with pytest.raises(DataError) as info:
        load(source, tmp_path, counts)
    message = str(info.value)
    assert "\n" not in message and str(source) in message
    return message


def test_missing_path(tmp_path):
    assert "no such file" in one_line_error(tmp_path / "nowhere.tar.gz", tmp_path)


def test_truncated_archive(tmp_path):
    root = write_tree(tmp_path / "tree")
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "train", arcname="train")
        tar.add(root / "test", arcname="test")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    assert "truncated or corrupt" in one_line_error(archive, tmp_path)


def test_wrong_image_shape(tmp_path):
    root = write_tree(tmp_path / "tree", size=28)
    assert "expected 32x32x3" in one_line_error(root, tmp_path)


def test_wrong_count(tmp_path):
    root = write_tree(tmp_path / "tree", counts=(19, 10))
    assert "19 images, expected 20" in one_line_error(root, tmp_path)


def test_corrupt_image_file(tmp_path):
    root = write_tree(tmp_path / "tree")
    (root / "train" / "cat" / "0003.png").write_bytes(b"not a png")
    assert "0003.png: not a readable image" in one_line_error(root, tmp_path)


def test_folder_without_cifar_layout_and_unsupported_file(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "expected train/ and test/" in one_line_error(tmp_path / "empty", tmp_path)
    (tmp_path / "data.zip").write_bytes(b"x")
    assert "unsupported file" in one_line_error(tmp_path / "data.zip", tmp_path)


def test_missing_batch_file(tmp_path):
    folder = write_batches(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_3").unlink()
    assert "data_batch_3: missing" in one_line_error(folder, tmp_path, counts=(20, 4))
