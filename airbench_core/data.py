"""Image-classification data from any of the sources a researcher has, decoded once into cached
uint8 arrays: CIFAR-10, CIFAR-100 (fine or coarse labels), SVHN and any labelled tree of 32x32 images.

A source is named ``[dataset:]location``. A plain location (a path, or ``download``) means CIFAR-10,
as it always has; ``cifar100:``, ``cifar100-coarse:``, ``svhn:`` and ``imagefolder:`` name the
others. CIFAR-10 comes from torchvision's download, a ``cifar-10-batches-py`` folder (or its
parent), an image tree ``train/<class>/*.png|jpg`` + ``test/<class>/...``, or a ``.tar``/``.tar.gz``
of either; CIFAR-100 from a ``cifar-100-python`` folder, its parent or its ``.tar.gz``; SVHN from a
folder holding ``train_32x32.mat`` and ``test_32x32.mat``; an image folder from a tree (or a tar of
one) whose K class folders (2 <= K <= 255) give the classes, in sorted order. Every problem with
the data becomes one :class:`DataError` whose message names the path.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .batch_pickle import Refused, load_batch

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_COUNTS = (50_000, 10_000)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DATA_ENV = "AIRBENCH_DATA"
CACHE_ENV = "AIRBENCH_CACHE"
_CACHE_FORMAT = "v2"  # v2: keyed by content (v1 was keyed by path, size and mtime)
# CIFAR-10's published per-channel statistics (of its training set): kept for CIFAR-10, so that
# every existing run trains exactly as before; every other dataset's come from its own training set.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
MAX_CLASSES = 255  # predictions are stored as uint8
MAX_FILE_BYTES = 512 << 20  # one pickled batch or .mat file: CIFAR-100's train is 155 MB, SVHN's 182 MB

# name -> (train, test) image counts (None: any), what a plain source means, and its description
DATASETS: dict[str, tuple[tuple[int, int] | None, str]] = {
    "cifar10": (CIFAR_COUNTS, "CIFAR-10"),
    "cifar100": ((50_000, 10_000), "CIFAR-100"),
    "cifar100-coarse": ((50_000, 10_000), "CIFAR-100 (20 coarse classes)"),
    "svhn": ((73_257, 26_032), "SVHN"),
    "imagefolder": (None, "image folder"),
}
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
CIFAR100_FILES = ("train", "test")


_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # everything str.splitlines() splits on


class DataError(Exception):
    """A problem with the data a user pointed us at; its message is one line naming the path.

    Line breaks in the message (a file named with a newline, say) are escaped, so that it stays one
    line whatever the path holds."""

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if any(ch in text for ch in _LINE_BREAKS):
            text = "".join(repr(ch)[1:-1] if ch in _LINE_BREAKS else ch for ch in text)
        super().__init__(text)


@dataclass(frozen=True)
class Dataset:
    """Decoded data: images are uint8 (N, 32, 32, 3), labels int64 (N,) in 0..K-1.

    ``name`` is one of :data:`DATASETS`; ``classes`` names the K classes in label order; ``mean`` and
    ``std`` are the per-channel statistics inputs are normalised with (recorded in every manifest)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    description: str
    name: str = "cifar10"
    classes: tuple[str, ...] = CLASSES
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    @property
    def num_classes(self) -> int:
        """K: what the network's head, the predictions and every class-wise statistic range over."""
        return len(self.classes)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the decoded arrays themselves (not of the path): two sources that decode to the
        same images and labels share it, and any changed pixel or label changes it. Any dataset but
        CIFAR-10 (whose fingerprints stay what they were) also hashes its name and class names, so
        the same pixels read as two datasets never share a fingerprint."""
        h = hashlib.blake2b(digest_size=8)
        if self.name != "cifar10":
            h.update(repr((self.name, self.classes)).encode())
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            a = np.ascontiguousarray(array)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.data.cast("B"))
        return h.hexdigest()


Cifar10 = Dataset  # the name every caller used before there were other datasets


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "airbench_harness")


def resolve_source(source: str | os.PathLike | None) -> str:
    """The flag wins, then $AIRBENCH_DATA, then torchvision's download."""
    if source:
        return str(source)
    return os.environ.get(DATA_ENV) or "download"


def parse_source(source: str) -> tuple[str, str]:
    """(dataset, location) of a ``--data`` value: ``cifar100:/path`` -> ("cifar100", "/path"); a
    plain path or ``download`` -> ("cifar10", it), so every existing command means what it did."""
    head, sep, rest = source.partition(":")
    if sep and head.lower() in DATASETS:
        return head.lower(), rest
    return "cifar10", source


def dataset_of(source: str | os.PathLike | None) -> str:
    """The dataset a ``--data`` value (or $AIRBENCH_DATA) names, without reading it."""
    return parse_source(resolve_source(source))[0]


def load_data(
    source: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    expected_counts: tuple[int, int] | None = None,
    verify: bool = False,
) -> Dataset:
    """Load the dataset ``source`` names; the second load of the same files comes from the cache.

    ``expected_counts`` (train, test) defaults to the dataset's own (any, for an image folder).
    ``verify`` re-hashes the content of a folder whose key the cache took from its files' stat."""
    name, location = parse_source(resolve_source(source))
    counts, description = DATASETS[name]
    expected = expected_counts if expected_counts is not None else counts
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if location in ("download", ""):
        path = _download(cache, name)
    else:
        path = Path(location).expanduser().absolute()  # workers started elsewhere find it too
        if not path.exists():
            head = location.partition(":")[0] if ":" in location else ""
            hint = (
                f"; {head!r} is no dataset name (choose from {', '.join(f'{d}:' for d in DATASETS)})"
                if head and "/" not in head
                else ""
            )
            raise DataError(
                f"{path}: no such file or folder (expected {_EXPECTED[name]}, or 'download'){hint}"
            )
    try:
        key = _fingerprint(path, name, cache, verify)
        prefix = "" if name == "cifar10" else f"{name}-"  # CIFAR-10's cache files keep their names
        cached = cache / "decoded" / f"{prefix}{path.name}-{key}-{_CACHE_FORMAT}.npz"
        from_cache = _read_cache(cached)
        fresh = from_cache is None
        arrays = _decode(path, name) if from_cache is None else from_cache
        if fresh and name != "cifar10":
            arrays["mean"], arrays["std"] = channel_statistics(arrays["train_images"])
        classes = _class_names(arrays, name)
        _validate(arrays, path, expected, len(classes))
        # Only data that passed validation is cached, and only under the key of what was decoded:
        # a source that changed while it was decoded is not cached under its old content's key.
        if fresh and _fingerprint(path, name, cache, verify=True) == key:
            _write_cache(cached, arrays)
    except OSError as exc:
        raise DataError(
            f"{exc.filename or path}: cannot read ({exc.strerror or type(exc).__name__})"
        ) from None
    jpeg = bool(arrays.pop("is_jpeg", np.zeros(1))[0])
    stats: dict[str, Any] = {}
    if name != "cifar10":
        stats = dict(mean=tuple(float(v) for v in arrays["mean"]), std=tuple(float(v) for v in arrays["std"]))
    if name == "imagefolder":
        description = f"image folder {path.name}"
    return Dataset(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
        source=str(path) if name == "cifar10" else f"{name}:{path}",
        description=description + (" (JPEG copy)" if jpeg else ""),
        name=name,
        classes=classes,
        **stats,
    )


load_cifar10 = load_data  # the name every caller used before there were other datasets

_EXPECTED = {
    "cifar10": "a CIFAR-10 tree, .tar.gz, cifar-10-batches-py folder",
    "cifar100": "a cifar-100-python folder or its .tar.gz",
    "cifar100-coarse": "a cifar-100-python folder or its .tar.gz",
    "svhn": "a folder holding train_32x32.mat and test_32x32.mat",
    "imagefolder": "a folder (or .tar.gz) of train/<class>/ and test/<class>/ images",
}


def channel_statistics(images: np.ndarray, chunk: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 NHWC images on the 0..1 scale, in chunks (no float copy of
    the whole set)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].reshape(-1, 3).astype(np.float64)
        total += part.sum(0)
        squares += (part * part).sum(0)
    n = max(1, len(images) * images.shape[1] * images.shape[2])
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 1e-12))
    return mean / 255, std / 255


def _class_names(arrays: dict, name: str) -> tuple[str, ...]:
    if name == "cifar10":
        return CLASSES
    if "classes" in arrays:
        return tuple(str(c) for c in arrays["classes"])
    raise DataError("decoded data without class names")  # pragma: no cover - every decoder sets them


def _validate(
    arrays: dict, path: Path, expected_counts: tuple[int, int] | None, classes: int = len(CLASSES)
) -> None:
    if not 2 <= classes <= MAX_CLASSES:
        raise DataError(f"{path}: {classes} classes; expected between 2 and {MAX_CLASSES}")
    for i, split in enumerate(("train", "test")):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        if images is None or labels is None:
            raise DataError(f"{path}: no {split} split found")
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise DataError(
                f"{path}: {split} images have shape {images.shape}, expected (N, 32, 32, 3) uint8"
            )
        expected = expected_counts[i] if expected_counts else None
        if expected is not None and len(images) != expected:
            raise DataError(f"{path}: {split} split has {len(images)} images, expected {expected}")
        if len(labels) != len(images):
            raise DataError(f"{path}: {split} split has {len(images)} images but {len(labels)} labels")
        if not len(images):
            raise DataError(f"{path}: {split} split has no images")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(
                f"{path}: {split} labels are {labels.dtype} of shape {labels.shape}, expected integers (N,)"
            )
        bad = labels[(labels < 0) | (labels >= classes)]
        if bad.size:
            raise DataError(f"{path}: {split} labels outside 0..{classes - 1} (e.g. {bad[0]})")


def _download(cache: Path, name: str) -> Path:
    """torchvision's copy of ``name`` under ``cache`` (fetched when missing); the path to decode."""
    if name == "imagefolder":
        raise DataError("imagefolder:download: an image folder has no download; name its path")
    try:
        import torchvision

        if name == "svhn":
            for split in ("train", "test"):
                torchvision.datasets.SVHN(root=str(cache / "svhn"), split=split, download=True)
            return cache / "svhn"
        kind = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        for train in (True, False):
            kind(root=str(cache), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"{cache}: could not download {DATASETS[name][1]} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); pass --data with a local copy"
        ) from None
    return cache / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")


def _fingerprint(path: Path, name: str = "cifar10", cache: Path | None = None, verify: bool = False) -> str:
    """Cache key of a source: a hash of the bytes the decoder reads, with their names for a folder.

    Content, not path, size and mtime: files extracted from a tar share one mtime, so two same-size
    images swapped between class folders would otherwise reuse the old decode. Hashing costs about
    0.06 s for the 19 MB JPEG tar (0.3 s per 150 MB). A folder of many files (60,000 images) is
    hashed once: its content hash is remembered under the files' stat signature (name, size, mtime,
    and the ctime and inode that no ``touch`` or copy can restore), so a second load stats the files
    instead of reading them; ``verify`` (``store check``) hashes the content regardless."""
    files = [(path.name, str(path))] if path.is_file() else _source_files(path, name)
    remembered = None
    if path.is_dir() and cache is not None:
        remembered = cache / "stat" / f"{_stat_signature(files)}-{_CACHE_FORMAT}.txt"
        if not verify:
            try:
                text = remembered.read_text().strip()
                if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
                    return text
            except OSError:
                pass
    h = hashlib.blake2b(digest_size=16, person=_CACHE_FORMAT.encode())
    for rel, p in files:
        h.update(f"{len(rel)}:{rel}:".encode("utf-8", "surrogateescape"))
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.update(f"{size}:".encode())
            while chunk := f.read(1 << 20):
                h.update(chunk)
    key = h.hexdigest()[:32]
    if remembered is not None:
        _write_atomically(remembered, key.encode())
    return key


def _stat_signature(files: list[tuple[str, str]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for rel, p in files:
        st = os.stat(p)
        h.update(
            f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_dev}\n".encode(
                "utf-8", "surrogateescape"
            )
        )
    return h.hexdigest()


def _source_files(path: Path, name: str = "cifar10") -> list[tuple[str, str]]:
    """(relative name, full path) of every file the decoder of the folder ``path`` reads, sorted.
    Strings, not Paths: building 120,000 Path objects cost 2 s of a cached tree's load."""

    def listed(folder: Path, names: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(n, str(folder / n)) for n in names if (folder / n).is_file()]

    if name == "svhn":
        return listed(path, SVHN_FILES)
    if name.startswith("cifar100"):
        folder = _cifar100_folder(path)
        return [] if folder is None else listed(folder, (*CIFAR100_FILES, "meta"))
    batches = _batches_folder(path) if name == "cifar10" else None
    if batches is not None:
        return listed(batches, _BATCH_NAMES)
    if not ((path / "train").is_dir() and (path / "test").is_dir()):
        return []  # no tree layout: _decode says so, without a walk of the whole folder
    root = str(path)
    return [(rel, os.path.join(root, rel)) for rel in _tree_members(path)]


def _tree_members(root: Path) -> list[str]:
    """Relative paths of a tree's image files, sorted: one ``os.walk`` with string operations (the
    file types come with the directory listing): 1.6 s for 60,000 files on a busy 2-core machine, where
    a ``Path.rglob`` with a stat per file took 7 s."""
    found: list[str] = []
    for folder, _, names in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        prefix = "" if rel_folder == "." else rel_folder + os.sep
        found.extend(prefix + n for n in names if _split_member(prefix + n))
    return sorted(found)


def _batches_folder(path: Path) -> Path | None:
    if (path / "data_batch_1").exists():
        return path
    if (path / "cifar-10-batches-py").is_dir():
        return path / "cifar-10-batches-py"
    return None


def _cifar100_folder(path: Path) -> Path | None:
    if (path / "train").is_file():
        return path
    if (path / "cifar-100-python").is_dir():
        return path / "cifar-100-python"
    return None


def _read_cache(cached: Path) -> dict | None:
    if not cached.exists():
        return None
    try:
        with np.load(cached, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:
        return None  # a damaged cache is rebuilt from the source, never trusted


def _write_atomically(target: Path, blob: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only cache only costs the decode (or the hash) next time


def _write_cache(cached: Path, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write_atomically(cached, buffer.getvalue())


def _decode(path: Path, name: str = "cifar10") -> dict:
    if name == "svhn":
        return _decode_svhn(path)
    if name.startswith("cifar100"):
        return _decode_cifar100(path, name)
    classes = CLASSES if name == "cifar10" else None
    if path.is_dir():
        batches = _batches_folder(path) if name == "cifar10" else None
        if batches is not None:
            return _decode_batches(batches)
        if (path / "train").is_dir() and (path / "test").is_dir():
            return _decode_tree(path, classes)
        also = " or a cifar-10-batches-py folder" if name == "cifar10" else ""
        raise DataError(f"{path}: expected train/ and test/ class folders{also}")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _decode_tar(path, classes)
    raise DataError(f"{path}: unsupported file (expected a folder, .tar.gz, .tgz or .tar)")


_BATCH_NAMES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def _unpickle(blob: bytes, where: str) -> object:
    """A batch through the restricted unpickler; what it refuses becomes a DataError."""
    try:
        return load_batch(blob, where)
    except Refused as exc:
        raise DataError(str(exc)) from None


def _read_bounded(path: Path) -> bytes:
    """A file's bytes, refused (naming it) when it is larger than any real batch or .mat file."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"{path}: {size} bytes, more than any CIFAR or SVHN file ({MAX_FILE_BYTES})")
    return path.read_bytes()


def _decode_batches(folder: Path) -> dict:
    """The official python-pickle batches (the format CIFAR-10 is distributed in)."""

    def read(name: str) -> tuple[str, bytes | None]:
        f = folder / name
        return str(f), (_read_bounded(f) if f.exists() else None)

    return _read_batches(read)


def _batch_arrays(
    where: str, blob: bytes | None, label_key: str, classes: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """(images NHWC uint8, labels int64) of one pickled batch, every problem one line naming it."""
    if blob is None:
        raise DataError(f"{where}: missing {what} file")
    try:
        d = _unpickle(blob, where)
        if not isinstance(d, dict):
            raise TypeError(type(d).__name__)
        raw_images = np.asarray(d[b"data"] if b"data" in d else d["data"])
        key = label_key.encode()
        raw_labels = np.asarray(d[key] if key in d else d[label_key])
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{where}: unreadable {what} ({type(exc).__name__}); expected rows of 3x32x32 bytes and {label_key}"
        ) from None
    if raw_images.dtype.kind not in "iu" or (
        raw_images.size and (raw_images.min() < 0 or raw_images.max() > 255)
    ):
        raise DataError(
            f"{where}: images are not bytes (dtype {raw_images.dtype}); expected uint8 rows of 3x32x32"
        )
    if raw_images.ndim != 2 or raw_images.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: images have shape {raw_images.shape}, expected (N, 3072)")
    if raw_labels.ndim != 1 or (raw_labels.size and raw_labels.dtype.kind not in "iu"):
        raise DataError(
            f"{where}: labels are {raw_labels.dtype} of shape {raw_labels.shape}, expected a list of integers"
        )
    if len(raw_labels) != len(raw_images):
        raise DataError(f"{where}: {len(raw_images)} images but {len(raw_labels)} labels")
    bad = raw_labels[(raw_labels < 0) | (raw_labels >= classes)]
    if bad.size:
        raise DataError(f"{where}: label {bad[0]} outside 0..{classes - 1}")
    images = raw_images.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, raw_labels.astype(np.int64)


def _read_batches(read: Callable[[str], tuple[str, bytes | None]]) -> dict:
    """Decode the six batches; ``read(name)`` gives the name to report for a batch and its bytes (None
    when it is missing)."""

    def split(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_batch_arrays(*read(name), "labels", len(CLASSES), "CIFAR-10 batch") for name in names]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    tr_x, tr_y = split(_BATCH_NAMES[:5])
    te_x, te_y = split(_BATCH_NAMES[5:])
    return dict(
        train_images=tr_x,
        train_labels=tr_y,
        test_images=te_x,
        test_labels=te_y,
        is_jpeg=np.zeros(1, dtype=bool),
    )


def _cifar100_arrays(read: Callable[[str], tuple[str, bytes | None]], name: str) -> dict:
    """CIFAR-100's ``train``/``test``/``meta`` pickles: fine (100) or coarse (20) labels, and their
    class names from ``meta`` (numbered names when it is missing)."""
    coarse = name == "cifar100-coarse"
    label_key, k = ("coarse_labels", 20) if coarse else ("fine_labels", 100)
    out: dict = {}
    for split in CIFAR100_FILES:
        images, labels = _batch_arrays(*read(split), label_key, k, "CIFAR-100 file")
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    names = [f"class_{i}" for i in range(k)]
    where, blob = read("meta")
    if blob is not None:
        try:
            meta = _unpickle(blob, where)
            key = ("coarse_label_names" if coarse else "fine_label_names").encode()
            listed = meta[key] if isinstance(meta, dict) else None
            if isinstance(listed, list) and len(listed) == k:
                names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in listed]
        except DataError:
            raise
        except Exception:
            raise DataError(f"{where}: unreadable CIFAR-100 meta file") from None
    out["classes"] = np.array(names)
    out["is_jpeg"] = np.zeros(1, dtype=bool)
    return out


def _decode_cifar100(path: Path, name: str) -> dict:
    if path.is_dir():
        folder = _cifar100_folder(path)
        if folder is None:
            raise DataError(f"{path}: expected {_EXPECTED[name]}")

        def read(member: str) -> tuple[str, bytes | None]:
            f = folder / member
            return str(f), (_read_bounded(f) if f.is_file() else None)

        return _cifar100_arrays(read, name)
    try:
        with tarfile.open(path, "r:*") as tar:
            members = _unique_members(tar, path, (*CIFAR100_FILES, "meta"))
            return _cifar100_arrays(_tar_reader(tar, path, members), name)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt archive ({type(exc).__name__})") from None


def _decode_svhn(path: Path) -> dict:
    """torchvision's SVHN files: ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) in 1..10, 10 meaning
    the digit 0 (labels become the digit itself, as torchvision maps them)."""
    import scipy.io

    if not path.is_dir():
        raise DataError(f"{path}: expected {_EXPECTED['svhn']}")
    out: dict = {}
    for split, fname in zip(("train", "test"), SVHN_FILES):
        f = path / fname
        if not f.is_file():
            raise DataError(f"{f}: missing SVHN file")
        if f.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"{f}: {f.stat().st_size} bytes, more than any SVHN file")
        try:
            mat = scipy.io.loadmat(str(f), variable_names=("X", "y"))
            x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
        except Exception as exc:
            raise DataError(f"{f}: unreadable SVHN .mat file ({type(exc).__name__})") from None
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
            raise DataError(f"{f}: X has shape {x.shape} ({x.dtype}), expected (32, 32, 3, N) uint8")
        y = y.reshape(-1)
        if y.dtype.kind not in "iuf" or len(y) != x.shape[3] or (y.size and (y.min() < 1 or y.max() > 10)):
            raise DataError(f"{f}: y must hold {x.shape[3]} labels in 1..10 (10 meaning the digit 0)")
        out[f"{split}_images"] = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
        out[f"{split}_labels"] = (y.astype(np.int64) % 10).astype(np.int64)
    out["classes"] = np.array([str(d) for d in range(10)])
    out["is_jpeg"] = np.zeros(1, dtype=bool)
    return out


def _decode_image(data: bytes, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (32, 32):  # before decoding: a huge image is refused without its pixels
                raise DataError(f"{where}: image is {im.size[0]}x{im.size[1]}, expected 32x32x3 RGB")
            arr = np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{where}: not a readable image ({type(exc).__name__})") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"{where}: image is {'x'.join(map(str, arr.shape))}, expected 32x32x3 RGB")
    return arr


def _split_member(name: str) -> tuple[str, str, str] | None:
    """('train'|'test', class, filename) for an image path inside a tree, at any depth."""
    parts = [p for p in name.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
        return None
    split, cls, fname = parts[-3], parts[-2], parts[-1]
    return (split, cls, fname) if split in ("train", "test") else None


def _assemble(items: list[tuple[str, str, str, bytes]], path: Path, classes: tuple[str, ...] | None) -> dict:
    """Stack decoded images in a stable order: split, class label order, file name. ``classes``:
    CIFAR-10's fixed names, or None for an image folder, whose train/ class folders (sorted) are
    its classes."""
    out: dict = {}
    is_jpeg = False
    if classes is None:
        classes = tuple(sorted({c for s, c, _, _ in items if s == "train"}))
        if not 2 <= len(classes) <= MAX_CLASSES:
            raise DataError(
                f"{path}: {len(classes)} class folders under train/; expected between 2 and {MAX_CLASSES}"
            )
        out["classes"] = np.array(classes)
    index = {c: i for i, c in enumerate(classes)}
    for split in ("train", "test"):
        chosen = sorted((index[c], f, data) for s, c, f, data in items if s == split and c in index)
        unknown = sorted({c for s, c, _, _ in items if s == split and c not in index})
        if unknown:
            raise DataError(
                f"{path}: unknown class folder {split}/{unknown[0]} (expected "
                + ("CIFAR-10's" if "classes" not in out else "train/'s")
                + f" {len(classes)} classes)"
            )
        if not chosen:
            raise DataError(f"{path}: no images under {split}/<class>/ (expected *.png or *.jpg)")
        is_jpeg |= any(f.lower().endswith((".jpg", ".jpeg")) for _, f, _ in chosen)
        out[f"{split}_images"] = np.stack(
            [_decode_image(d, f"{path}:{split}/{classes[y]}/{f}") for y, f, d in chosen]
        )
        out[f"{split}_labels"] = np.array([y for y, _, _ in chosen], dtype=np.int64)
    out["is_jpeg"] = np.array([is_jpeg])
    return out


def _decode_tree(root: Path, classes: tuple[str, ...] | None = CLASSES) -> dict:
    items = []
    for p in root.rglob("*"):
        key = _split_member(str(p.relative_to(root)))
        if key and p.is_file():
            items.append((*key, p.read_bytes()))
    return _assemble(items, root, classes)


def _decode_tar(path: Path, classes: tuple[str, ...] | None = CLASSES) -> dict:
    items = []
    try:
        with tarfile.open(path, "r:*") as tar:
            names = tar.getnames()
            if classes is not None and any(Path(n).name == "data_batch_1" for n in names):
                return _decode_tar_batches(tar, path)
            for member in tar:
                key = _split_member(member.name)
                if key and member.isfile():
                    items.append((*key, _member_bytes(tar, member)))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt archive ({type(exc).__name__}); "
            f"expected a complete .tar.gz of train/ and test/ class folders"
        ) from None
    return _assemble(items, path, classes)


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A tar member's bytes; a member that says it is larger than any real file is refused before
    anything is read (its header alone could otherwise make us allocate it)."""
    if member.size > MAX_FILE_BYTES:
        raise DataError(
            f"{os.fsdecode(tar.name or '')}:{member.name}: {member.size} bytes, more than any CIFAR file"
        )
    handle = tar.extractfile(member)
    return handle.read() if handle is not None else b""


def _unique_members(tar: tarfile.TarFile, path: Path, wanted: tuple[str, ...]) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        name = Path(member.name).name
        if member.isfile() and name in wanted:
            if name in members:
                raise DataError(f"{path}: holds two {name} ({members[name].name} and {member.name})")
            members[name] = member
    return members


def _tar_reader(
    tar: tarfile.TarFile, path: Path, members: dict[str, tarfile.TarInfo]
) -> Callable[[str], tuple[str, bytes | None]]:
    def read(name: str) -> tuple[str, bytes | None]:
        member = members.get(name)
        if member is None:
            return f"{path}:{name}", None
        return f"{path}:{member.name}", _member_bytes(tar, member)

    return read


def _decode_tar_batches(tar: tarfile.TarFile, path: Path) -> dict:
    """cifar-10-python.tar.gz as torchvision downloads it, read in memory; errors name the member."""
    return _read_batches(_tar_reader(tar, path, _unique_members(tar, path, _BATCH_NAMES)))
