import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from airbench_core import DataError, load_cifar10
from airbench_core import data as data_module
from airbench_core.data import CLASSES

SMALL = (20, 10)  # images per split in the synthetic sources (2 and 1 per class)


def write_tree(root: Path, counts=SMALL, size=32, suffix=".png") -> Path:
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), counts):
        for i in range(n):
            folder = root / split / CLASSES[i % 10]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                folder / f"{i:04d}{suffix}"
            )
    return root


def write_batches(folder: Path, per_batch=4, dump=pickle.dump, labels=None) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {
            b"batch_label": b"synthetic " + name.encode(),
            b"labels": list(range(per_batch)) if labels is None else labels,
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            dump(d, f)
    return folder


class Python2Pickler(pickle._Pickler):
    """Writes as python 2's cPickle wrote the real CIFAR-10 batches: protocol 2, bytes as BINSTRING
    (python 2's str, not python 3's ``_codecs.encode``), numpy under its old module name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        self.write(
            (pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n))
            + obj
        )
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def python2_dump(obj, f):
    buf = io.BytesIO()
    Python2Pickler(buf, protocol=2).dump(obj)
    f.write(buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


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
    monkeypatch.setattr(
        data_module, "_decode", lambda *a: pytest.fail("decoded again instead of using the cache")
    )
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
    monkeypatch.setattr(
        data_module, "_decode", lambda *a: pytest.fail("decoded again instead of using the cache")
    )
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


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_batches_pickled_with_any_protocol_load(tmp_path, protocol):
    folder = write_batches(
        tmp_path / "cifar-10-batches-py", dump=lambda d, f: pickle.dump(d, f, protocol=protocol)
    )
    d = load(folder, tmp_path, counts=(20, 4))
    assert d.train_images.shape == (20, 32, 32, 3) and list(d.test_labels) == [0, 1, 2, 3]


def test_batches_pickled_as_python_2_wrote_cifar10_load(tmp_path):
    folder = write_batches(tmp_path / "cifar-10-batches-py", dump=python2_dump)
    blob = (folder / "test_batch").read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct" in blob and b"_codecs" not in blob
    reference = pickle.loads(blob, encoding="bytes")
    d = load(folder, tmp_path, counts=(20, 4))
    assert np.array_equal(d.test_images, reference[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    # the same stream as python 3 code reading CIFAR-10 with encoding="latin1" sees it
    assert np.array_equal(pickle.loads(blob, encoding="latin1")["data"], reference[b"data"])


class Payload:
    """Unpickling this runs ``open(marker, "w")``: a stand-in for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class ShellPayload(Payload):
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [Payload, ShellPayload])
@pytest.mark.parametrize("protocol", [2, 4])
def test_a_tar_whose_batch_runs_code_is_refused_without_running_it(tmp_path, payload, protocol):
    marker = tmp_path / "ran"
    blob = pickle.dumps({b"data": payload(marker), b"labels": [0]}, protocol=protocol)
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    message = one_line_error(archive, tmp_path)
    assert message.startswith(f"refused: {archive}:cifar-10-batches-py/data_batch_1 asks to load ")
    assert (".open," if payload is Payload else ".system,") in message
    assert "which a CIFAR-10 batch never holds" in message
    assert not marker.exists()
    assert not (tmp_path / "cache" / "decoded").exists() or not any(
        (tmp_path / "cache" / "decoded").iterdir()
    )


def test_a_batch_in_a_folder_that_runs_code_is_refused_and_names_the_file(tmp_path):
    folder = write_batches(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "ran"
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": ShellPayload(marker), b"labels": [0]}))
    message = one_line_error(folder, tmp_path, counts=(20, 4))
    assert message.startswith(f"refused: {folder / 'data_batch_2'} asks to load ") and not marker.exists()


def test_codecs_in_a_batch_serve_only_to_rebuild_bytes(tmp_path):
    folder = write_batches(tmp_path / "cifar-10-batches-py")
    # protocol 0 with a hand-written call of _codecs.encode on something that is not latin1 text
    (folder / "test_batch").write_bytes(b"c_codecs\nencode\n(Vx\nVrot13\ntR.")
    assert "unreadable CIFAR-10 batch" in one_line_error(folder, tmp_path, counts=(20, 4))


@pytest.mark.parametrize("bad", [10, -1, 255])
def test_batch_labels_outside_0_to_9_are_refused_naming_the_file(tmp_path, bad):
    folder = write_batches(tmp_path / "cifar-10-batches-py", labels=[0, 1, bad, 3])
    message = one_line_error(folder, tmp_path, counts=(20, 4))
    assert f"{folder / 'data_batch_1'}: label {bad} outside 0..9" in message


def test_batch_labels_that_are_not_integers_or_do_not_match_the_images_are_refused(tmp_path):
    folder = write_batches(tmp_path / "a" / "cifar-10-batches-py", labels=[0, 1, 2.5, 3])
    assert "expected a list of integers" in one_line_error(folder, tmp_path, counts=(20, 4))
    folder = write_batches(tmp_path / "b" / "cifar-10-batches-py", labels=[0, 1, 2])
    assert "4 images but 3 labels" in one_line_error(folder, tmp_path, counts=(20, 4))


def test_labels_outside_0_to_9_in_decoded_arrays_are_refused(tmp_path):
    """Whatever source decoded them (a cache, a future source), arrays with a label outside 0..9
    never reach training."""
    root = write_tree(tmp_path / "tree")
    arrays = data_module._decode(root)
    arrays["test_labels"][3] = 10
    with pytest.raises(DataError) as info:
        data_module._validate(arrays, root, SMALL)
    assert str(info.value) == f"{root}: test labels outside 0..9 (e.g. 10)"
    arrays["test_labels"][3] = -2
    with pytest.raises(DataError, match="test labels outside 0..9"):
        data_module._validate(arrays, root, SMALL)


def test_a_cache_holding_bad_labels_is_refused(tmp_path):
    root = write_tree(tmp_path / "tree")
    load(root, tmp_path)
    (cached,) = (tmp_path / "cache" / "decoded").iterdir()
    with np.load(cached) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train_labels"][0] = 11
    np.savez(cached, **arrays)
    assert "train labels outside 0..9 (e.g. 11)" in one_line_error(root, tmp_path)


def test_swapping_same_size_images_between_classes_with_mtimes_restored_is_decoded_again(tmp_path):
    """Files extracted from a tar share one mtime: the cache must see the content, not the stat."""
    root = write_tree(tmp_path / "tree")
    a, b = root / "train" / "airplane" / "0000.png", root / "train" / "cat" / "0003.png"
    # two different images of one size (uncompressed PNGs), then every file given one mtime
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(a, compress_level=0)
    pixels[0, 0] = 255
    Image.fromarray(pixels).save(b, compress_level=0)
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    assert len(blob_a) == len(blob_b) and blob_a != blob_b
    for p in root.rglob("*"):
        os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    first = load(root, tmp_path)
    a.write_bytes(blob_b)
    b.write_bytes(blob_a)
    for p in (a, b, a.parent, b.parent):
        os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    second = load(root, tmp_path)
    assert second.fingerprint != first.fingerprint
    ia, ib = list(second.train_labels).index(0), list(second.train_labels).index(3)
    assert np.array_equal(second.train_images[ia], first.train_images[list(first.train_labels).index(3)])
    assert second.train_images[ia][0, 0].tolist() == [255, 255, 255] and second.train_images[ib].max() == 0
    assert len(list((tmp_path / "cache" / "decoded").iterdir())) == 2
    third = load(root, tmp_path)  # unchanged content: the cache serves it
    assert third.fingerprint == second.fingerprint


def test_the_cache_key_is_the_content_not_the_path(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "tree")
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname="cifar")
    load(archive, tmp_path)
    copy = tmp_path / "elsewhere" / "tree.tar"
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    monkeypatch.setattr(
        data_module, "_decode", lambda *a: pytest.fail("decoded again instead of using the cache")
    )
    assert load(copy, tmp_path).source == str(copy)
    blob = bytearray(archive.read_bytes())
    blob[-2000] ^= 1  # inside the tar's padding: same size, new bytes
    archive.write_bytes(bytes(blob))
    with pytest.raises(pytest.fail.Exception):
        load(archive, tmp_path)


def test_messages_stay_one_line_whatever_the_file_names_hold(tmp_path):
    root = write_tree(tmp_path / "tree")
    bad = root / "train" / "cat" / "evil\nname.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError) as info:
        load(root, tmp_path)
    message = str(info.value)
    assert message.splitlines() == [message] and "evil\\nname.png: not a readable image" in message
    assert str(DataError("a\rb\u2028c")).splitlines() == ["a\\rb\\u2028c"]


def test_an_unreadable_file_is_one_line_naming_it(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    root = write_tree(tmp_path / "tree")
    locked = root / "test" / "dog" / "0005.png"
    locked.chmod(0)
    try:
        message = one_line_error(root, tmp_path)
    finally:
        locked.chmod(0o644)
    assert message.startswith(f"{locked}: cannot read")


def test_a_tar_holding_two_copies_of_a_batch_is_refused(tmp_path):
    folder = write_batches(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "two.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname="a/cifar-10-batches-py")
        tar.add(folder / "test_batch", arcname="b/test_batch")
    assert "holds two test_batch" in one_line_error(archive, tmp_path, counts=(20, 4))


def test_a_missing_batch_in_a_tar_names_the_tar(tmp_path):
    folder = write_batches(tmp_path / "src" / "cifar-10-batches-py")
    (folder / "data_batch_4").unlink()
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    assert f"{archive}:data_batch_4: missing CIFAR-10 batch file" in one_line_error(
        archive, tmp_path, counts=(20, 4)
    )
