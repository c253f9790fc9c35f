"""CIFAR-10 from any of the sources a researcher has, decoded once into cached uint8 arrays.

Sources: torchvision's download (``"download"``), a ``cifar-10-batches-py`` folder (or its parent),
an image tree ``train/<class>/*.png|jpg`` + ``test/<class>/...``, or a ``.tar``/``.tar.gz`` of
either. Every problem with the data becomes one :class:`DataError` whose message names the path.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_COUNTS = (50_000, 10_000)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DATA_ENV = "AIRBENCH_DATA"
CACHE_ENV = "AIRBENCH_CACHE"
_CACHE_FORMAT = "v1"


class DataError(Exception):
    """A problem with the data a user pointed us at; its message is one line naming the path."""


@dataclass(frozen=True)
class Cifar10:
    """Decoded CIFAR-10: images are uint8 (N, 32, 32, 3), labels int64 (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    description: str

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the decoded arrays themselves (not of the path): two sources that decode to the
        same images and labels share it, and any changed pixel or label changes it."""
        h = hashlib.blake2b(digest_size=8)
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            a = np.ascontiguousarray(array)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
        return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "airbench_harness")


def resolve_source(source: str | os.PathLike | None) -> str:
    """The flag wins, then $AIRBENCH_DATA, then torchvision's download."""
    if source:
        return str(source)
    return os.environ.get(DATA_ENV) or "download"


def load_cifar10(source: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 expected_counts: tuple[int, int] = CIFAR_COUNTS) -> Cifar10:
    """Load CIFAR-10 from ``source``; the second load of the same file comes from the cache."""
    source = resolve_source(source)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if source == "download":
        path = _download(cache)
    else:
        path = Path(source).expanduser().absolute()    # workers started elsewhere find it too
        if not path.exists():
            raise DataError(f"{path}: no such file or folder (expected a CIFAR-10 tree, .tar.gz, "
                            f"cifar-10-batches-py folder, or 'download')")
    cached = cache / "decoded" / f"{path.name}-{_fingerprint(path)}-{_CACHE_FORMAT}.npz"
    arrays = _read_cache(cached)
    fresh = arrays is None
    if fresh:
        arrays = _decode(path)
    _validate(arrays, path, expected_counts)
    if fresh:
        _write_cache(cached, arrays)     # only data that passed validation is cached
    jpeg = bool(arrays.pop("is_jpeg", np.zeros(1))[0])
    description = "CIFAR-10 (JPEG copy)" if jpeg else "CIFAR-10"
    return Cifar10(arrays["train_images"], arrays["train_labels"].astype(np.int64),
                   arrays["test_images"], arrays["test_labels"].astype(np.int64),
                   source=str(path), description=description)


def _validate(arrays: dict, path: Path, expected_counts: tuple[int, int]) -> None:
    for split, expected in zip(("train", "test"), expected_counts):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        if images is None or labels is None:
            raise DataError(f"{path}: no {split} split found")
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise DataError(f"{path}: {split} images have shape {images.shape}, expected (N, 32, 32, 3) uint8")
        if len(images) != expected or len(labels) != expected:
            raise DataError(f"{path}: {split} split has {len(images)} images, expected {expected}")
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise DataError(f"{path}: {split} labels outside 0..{len(CLASSES) - 1}")


def _download(cache: Path) -> Path:
    try:
        import torchvision
        for train in (True, False):
            torchvision.datasets.CIFAR10(root=str(cache), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"{cache}: could not download CIFAR-10 ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); pass --data with a local copy") from None
    return cache / "cifar-10-batches-py"


def _fingerprint(path: Path) -> str:
    """Identity of a source without reading it: resolved path, size and mtime of what it holds."""
    entries = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:200000]
    h = hashlib.sha1(str(path.resolve()).encode())
    for p in entries:
        st = p.stat()
        h.update(f"{p.relative_to(path) if p != path else p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _read_cache(cached: Path) -> dict | None:
    if not cached.exists():
        return None
    try:
        with np.load(cached, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:
        return None  # a damaged cache is rebuilt from the source, never trusted


def _write_cache(cached: Path, arrays: dict) -> None:
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache only costs the decode next time


def _decode(path: Path) -> dict:
    if path.is_dir():
        batches = path / "cifar-10-batches-py"
        if (path / "data_batch_1").exists():
            return _decode_batches(path)
        if batches.is_dir():
            return _decode_batches(batches)
        if (path / "train").is_dir() and (path / "test").is_dir():
            return _decode_tree(path)
        raise DataError(f"{path}: expected train/ and test/ class folders or a cifar-10-batches-py folder")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _decode_tar(path)
    raise DataError(f"{path}: unsupported file (expected a folder, .tar.gz, .tgz or .tar)")


def _decode_batches(folder: Path) -> dict:
    """The official python-pickle batches (the format CIFAR-10 is distributed in)."""
    def read(names):
        images, labels = [], []
        for name in names:
            f = folder / name
            if not f.exists():
                raise DataError(f"{f}: missing CIFAR-10 batch file")
            try:
                with open(f, "rb") as fh:
                    d = pickle.load(fh, encoding="bytes")
                images.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels.append(np.asarray(d[b"labels"], dtype=np.int64))
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"{f}: unreadable CIFAR-10 batch ({type(exc).__name__}); "
                                f"expected 10000 images of 3x32x32") from None
        return np.concatenate(images), np.concatenate(labels)

    tr_x, tr_y = read([f"data_batch_{i}" for i in range(1, 6)])
    te_x, te_y = read(["test_batch"])
    return dict(train_images=tr_x, train_labels=tr_y, test_images=te_x, test_labels=te_y,
                is_jpeg=np.zeros(1, dtype=bool))


def _decode_image(data: bytes, where: str) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8)
    except Exception as exc:
        raise DataError(f"{where}: not a readable image ({type(exc).__name__})") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"{where}: image is {'x'.join(map(str, arr.shape))}, expected 32x32x3 RGB")
    return arr


def _split_member(name: str) -> tuple[str, str, str] | None:
    """('train'|'test', class, filename) for an image path inside a tree, at any depth."""
    parts = Path(name).parts
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
        return None
    split, cls, fname = parts[-3], parts[-2], parts[-1]
    return (split, cls, fname) if split in ("train", "test") else None


def _assemble(items: list[tuple[str, str, str, bytes]], path: Path) -> dict:
    """Stack decoded images in a stable order: split, class label order, file name."""
    out: dict = {}
    is_jpeg = False
    for split in ("train", "test"):
        chosen = sorted((CLASSES.index(c), f, data) for s, c, f, data in items if s == split and c in CLASSES)
        unknown = sorted({c for s, c, _, _ in items if s == split and c not in CLASSES})
        if unknown:
            raise DataError(f"{path}: unknown class folder {split}/{unknown[0]} (expected CIFAR-10's {len(CLASSES)} classes)")
        if not chosen:
            raise DataError(f"{path}: no images under {split}/<class>/ (expected *.png or *.jpg)")
        is_jpeg |= any(f.lower().endswith((".jpg", ".jpeg")) for _, f, _ in chosen)
        out[f"{split}_images"] = np.stack([_decode_image(d, f"{path}:{split}/{CLASSES[y]}/{f}") for y, f, d in chosen])
        out[f"{split}_labels"] = np.array([y for y, _, _ in chosen], dtype=np.int64)
    out["is_jpeg"] = np.array([is_jpeg])
    return out


def _decode_tree(root: Path) -> dict:
    items = []
    for p in root.rglob("*"):
        key = _split_member(str(p.relative_to(root)))
        if key and p.is_file():
            items.append((*key, p.read_bytes()))
    return _assemble(items, root)


def _decode_tar(path: Path) -> dict:
    items = []
    try:
        with tarfile.open(path, "r:*") as tar:
            names = tar.getnames()
            if any(Path(n).name == "data_batch_1" for n in names):
                return _decode_tar_batches(tar, path)
            for member in tar:
                key = _split_member(member.name)
                if key and member.isfile():
                    items.append((*key, tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt archive ({type(exc).__name__}); "
                        f"expected a complete .tar.gz of train/ and test/ class folders") from None
    return _assemble(items, path)


def _decode_tar_batches(tar: tarfile.TarFile, path: Path) -> dict:
    """cifar-10-python.tar.gz as torchvision downloads it: unpack to a temporary folder and read."""
    with tempfile.TemporaryDirectory() as tmp:
        for member in tar.getmembers():
            if member.isfile() and Path(member.name).name.startswith(("data_batch_", "test_batch")):
                target = Path(tmp) / Path(member.name).name
                target.write_bytes(tar.extractfile(member).read())
        return _decode_batches(Path(tmp))
