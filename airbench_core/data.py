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
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_COUNTS = (50_000, 10_000)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DATA_ENV = "AIRBENCH_DATA"
CACHE_ENV = "AIRBENCH_CACHE"
_CACHE_FORMAT = "v2"  # v2: keyed by content (v1 was keyed by path, size and mtime)


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
            h.update(a.data.cast("B"))
        return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "airbench_harness")


def resolve_source(source: str | os.PathLike | None) -> str:
    """The flag wins, then $AIRBENCH_DATA, then torchvision's download."""
    if source:
        return str(source)
    return os.environ.get(DATA_ENV) or "download"


def load_cifar10(
    source: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    expected_counts: tuple[int, int] = CIFAR_COUNTS,
) -> Cifar10:
    """Load CIFAR-10 from ``source``; the second load of the same file comes from the cache."""
    source = resolve_source(source)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if source == "download":
        path = _download(cache)
    else:
        path = Path(source).expanduser().absolute()  # workers started elsewhere find it too
        if not path.exists():
            raise DataError(
                f"{path}: no such file or folder (expected a CIFAR-10 tree, .tar.gz, "
                f"cifar-10-batches-py folder, or 'download')"
            )
    try:
        key = _fingerprint(path)
        cached = cache / "decoded" / f"{path.name}-{key}-{_CACHE_FORMAT}.npz"
        from_cache = _read_cache(cached)
        fresh = from_cache is None
        arrays = _decode(path) if from_cache is None else from_cache
        _validate(arrays, path, expected_counts)
        # Only data that passed validation is cached, and only under the key of what was decoded:
        # a source that changed while it was decoded is not cached under its old content's key.
        if fresh and _fingerprint(path) == key:
            _write_cache(cached, arrays)
    except OSError as exc:
        raise DataError(
            f"{exc.filename or path}: cannot read ({exc.strerror or type(exc).__name__})"
        ) from None
    jpeg = bool(arrays.pop("is_jpeg", np.zeros(1))[0])
    description = "CIFAR-10 (JPEG copy)" if jpeg else "CIFAR-10"
    return Cifar10(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
        source=str(path),
        description=description,
    )


def _validate(arrays: dict, path: Path, expected_counts: tuple[int, int]) -> None:
    for split, expected in zip(("train", "test"), expected_counts):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        if images is None or labels is None:
            raise DataError(f"{path}: no {split} split found")
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise DataError(
                f"{path}: {split} images have shape {images.shape}, expected (N, 32, 32, 3) uint8"
            )
        if len(images) != expected or len(labels) != expected:
            raise DataError(f"{path}: {split} split has {len(images)} images, expected {expected}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(
                f"{path}: {split} labels are {labels.dtype} of shape {labels.shape}, expected integers (N,)"
            )
        bad = labels[(labels < 0) | (labels >= len(CLASSES))]
        if bad.size:
            raise DataError(f"{path}: {split} labels outside 0..{len(CLASSES) - 1} (e.g. {bad[0]})")


def _download(cache: Path) -> Path:
    try:
        import torchvision

        for train in (True, False):
            torchvision.datasets.CIFAR10(root=str(cache), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"{cache}: could not download CIFAR-10 ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); pass --data with a local copy"
        ) from None
    return cache / "cifar-10-batches-py"


def _fingerprint(path: Path) -> str:
    """Cache key of a source: a hash of the bytes the decoder reads, with their names for a folder.

    Content, not path, size and mtime: files extracted from a tar share one mtime, so two same-size
    images swapped between class folders would otherwise reuse the old decode. Hashing costs about
    0.06 s for the 19 MB JPEG tar (0.3 s per 150 MB), next to the half minute its decode takes."""
    h = hashlib.blake2b(digest_size=16, person=_CACHE_FORMAT.encode())
    if path.is_file():
        files = [(path.name, path)]
    else:
        files = [(str(rel), folder / rel) for folder, rel in _source_files(path)]
    for name, p in files:
        h.update(f"{len(name)}:{name}:".encode("utf-8", "surrogateescape"))
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.update(f"{size}:".encode())
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:32]


def _source_files(path: Path) -> list[tuple[Path, Path]]:
    """(folder, relative path) of every file the decoder of the folder ``path`` reads, sorted."""
    batches = _batches_folder(path)
    if batches is not None:
        return [(batches, Path(n)) for n in _BATCH_NAMES if (batches / n).is_file()]
    if not ((path / "train").is_dir() and (path / "test").is_dir()):
        return []  # no CIFAR-10 layout: _decode says so, without a walk of the whole folder
    return sorted(
        (path, p.relative_to(path))
        for p in path.rglob("*")
        if _split_member(str(p.relative_to(path))) and p.is_file()
    )


def _batches_folder(path: Path) -> Path | None:
    if (path / "data_batch_1").exists():
        return path
    if (path / "cifar-10-batches-py").is_dir():
        return path / "cifar-10-batches-py"
    return None


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
        batches = _batches_folder(path)
        if batches is not None:
            return _decode_batches(batches)
        if (path / "train").is_dir() and (path / "test").is_dir():
            return _decode_tree(path)
        raise DataError(f"{path}: expected train/ and test/ class folders or a cifar-10-batches-py folder")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _decode_tar(path)
    raise DataError(f"{path}: unsupported file (expected a folder, .tar.gz, .tgz or .tar)")


_BATCH_NAMES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it to rebuild bytes, and for nothing else."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() not in (
        "latin1",
        "iso88591",
    ):
        raise pickle.UnpicklingError(f"_codecs.encode of {type(text).__name__} with {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """What a CIFAR-10 batch may ask the unpickler for: a few builtin containers and what numpy needs
    to rebuild an ndarray or scalar (protocols 0 to 5, numpy 1 and 2 module names)."""
    import builtins

    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]  # numpy 1's names for them
    allowed = {
        ("builtins", name): getattr(builtins, name)
        for name in (
            "bytearray",
            "bytes",
            "complex",
            "dict",
            "float",
            "frozenset",
            "int",
            "list",
            "set",
            "str",
            "tuple",
        )
    }
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]  # private, not in numpy's stubs; the pickles name it
    return allowed


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A member's bytes; a member that is no regular file is a damaged archive, said as TarError."""
    f = tar.extractfile(member)
    if f is None:
        raise tarfile.TarError(f"{member.name}: not a regular file")
    return f.read()


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch and refuses every global a batch never holds, before calling it:
    a pickle is a program, and ``--data`` must not run one."""

    _RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # python 2's names

    def __init__(self, file, where: str) -> None:
        super().__init__(file, encoding="bytes")
        self.where = where
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        found = self.allowed.get((self._RENAMED.get(module, module), name))
        if found is None:
            raise DataError(
                f"refused: {self.where} asks to load {module}.{name}, which a CIFAR-10 batch never holds"
            )
        return found


def _load_batch(blob: bytes, where: str) -> dict:
    return _BatchUnpickler(io.BytesIO(blob), where).load()


def _decode_batches(folder: Path) -> dict:
    """The official python-pickle batches (the format CIFAR-10 is distributed in)."""

    def read(name: str) -> tuple[str, bytes | None]:
        f = folder / name
        return str(f), (f.read_bytes() if f.exists() else None)

    return _read_batches(read)


def _read_batches(read: Callable[[str], tuple[str, bytes | None]]) -> dict:
    """Decode the six batches; ``read(name)`` gives the name to report for a batch and its bytes (None
    when it is missing)."""

    def one(name: str) -> tuple[np.ndarray, np.ndarray]:
        where, blob = read(name)
        if blob is None:
            raise DataError(f"{where}: missing CIFAR-10 batch file")
        try:
            d = _load_batch(blob, where)
            if not isinstance(d, dict):
                raise TypeError(type(d).__name__)
            raw_images = np.asarray(d[b"data"] if b"data" in d else d["data"])
            raw_labels = np.asarray(d[b"labels"] if b"labels" in d else d["labels"])
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"{where}: unreadable CIFAR-10 batch ({type(exc).__name__}); expected 10000 images of 3x32x32"
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
        bad = raw_labels[(raw_labels < 0) | (raw_labels >= len(CLASSES))]
        if bad.size:
            raise DataError(f"{where}: label {bad[0]} outside 0..{len(CLASSES) - 1}")
        images = raw_images.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, raw_labels.astype(np.int64)

    def split(names) -> tuple[np.ndarray, np.ndarray]:
        parts = [one(name) for name in names]
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
            raise DataError(
                f"{path}: unknown class folder {split}/{unknown[0]} (expected CIFAR-10's {len(CLASSES)} classes)"
            )
        if not chosen:
            raise DataError(f"{path}: no images under {split}/<class>/ (expected *.png or *.jpg)")
        is_jpeg |= any(f.lower().endswith((".jpg", ".jpeg")) for _, f, _ in chosen)
        out[f"{split}_images"] = np.stack(
            [_decode_image(d, f"{path}:{split}/{CLASSES[y]}/{f}") for y, f, d in chosen]
        )
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
                    items.append((*key, _member_bytes(tar, member)))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt archive ({type(exc).__name__}); "
            f"expected a complete .tar.gz of train/ and test/ class folders"
        ) from None
    return _assemble(items, path)


def _decode_tar_batches(tar: tarfile.TarFile, path: Path) -> dict:
    """cifar-10-python.tar.gz as torchvision downloads it, read in memory; errors name the member."""
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        name = Path(member.name).name
        if member.isfile() and name in _BATCH_NAMES:
            if name in members:
                raise DataError(f"{path}: holds two {name} ({members[name].name} and {member.name})")
            members[name] = member

    def read(name: str) -> tuple[str, bytes | None]:
        member = members.get(name)
        if member is None:
            return f"{path}:{name}", None
        return f"{path}:{member.name}", _member_bytes(tar, member)

    return _read_batches(read)
