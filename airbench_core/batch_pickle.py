"""A restricted unpickler for CIFAR's pickled batches: a pickle is a program, and ``--data`` must not
run one, nor allocate more than the file holds.

It allows only what CIFAR-10 and CIFAR-100 batches hold (dicts, lists, strings, byte strings, plain
numeric numpy arrays, protocols 0 to 5, python 2's and numpy 1/2's module names) and refuses every
other global before calling it: ``bytearray(N)``, ``bytes(N)`` and object dtypes included.
"""

from __future__ import annotations

import io
import pickle

import numpy as np


class Refused(Exception):
    """A batch asked for something no batch holds; the message names the file and the global."""


def _latin1_encode(text: object, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it to rebuild bytes, and for nothing else."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() not in (
        "latin1",
        "iso88591",
    ):
        raise pickle.UnpicklingError(f"_codecs.encode of {type(text).__name__} with {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args: object) -> bytes:
    """``bytes()`` as protocols 0-2 write an empty byte string; ``bytes(N)`` (N zero bytes) refused."""
    if args:
        raise pickle.UnpicklingError("bytes() with arguments")
    return b""


_ARRAY_KINDS = "biuf"  # bools, integers and floats: what a batch's arrays hold (no objects, no voids)
_MAX_ITEMSIZE = 16


def _plain_dtype(*args: object) -> np.dtype:
    """``numpy.dtype`` for the plain numeric types a batch holds; objects (which would let an
    array's state call anything) and huge records are refused."""
    name = args[0].decode("latin1") if args and isinstance(args[0], bytes) else (args or [None])[0]
    if not isinstance(name, str) or len(name) > 8:
        raise pickle.UnpicklingError("numpy.dtype of something other than a short type name")
    dtype = np.dtype(name)
    if dtype.kind not in _ARRAY_KINDS or dtype.itemsize > _MAX_ITEMSIZE:
        raise pickle.UnpicklingError(f"numpy.dtype {args[0]!r}")
    return dtype


def _allowed_globals() -> dict[tuple[str, str], object]:
    """What a CIFAR batch may ask the unpickler for: an empty ``bytes``, latin-1 ``_codecs.encode``
    and what numpy needs to rebuild a numeric ndarray or scalar (protocols 0 to 5, numpy 1 and 2
    module names). Dicts, lists and strings come from opcodes, not globals. Nothing here can
    allocate more than the pickle itself holds: ``bytearray(N)`` and ``bytes(N)`` are refused."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]  # numpy 1's names for them
    allowed: dict[tuple[str, str], object] = {
        ("builtins", "bytes"): _empty_bytes,
        ("_codecs", "encode"): _latin1_encode,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }

    def reconstruct(cls: object, shape: object, code: object) -> np.ndarray:
        if cls is not np.ndarray or shape != (0,) or code != b"b":
            raise pickle.UnpicklingError("numpy _reconstruct beyond an empty ndarray")
        empty = multiarray._reconstruct(np.ndarray, (0,), b"b")
        assert isinstance(empty, np.ndarray)
        return empty

    def scalar(dtype: object, data: object = b"") -> object:
        if not isinstance(dtype, np.dtype) or not isinstance(data, bytes) or len(data) > _MAX_ITEMSIZE:
            raise pickle.UnpicklingError("numpy scalar of an unexpected type")
        return multiarray.scalar(dtype, data)

    def frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
        if not isinstance(dtype, np.dtype) or not isinstance(buf, (bytes, bytearray, memoryview)):
            raise pickle.UnpicklingError("numpy _frombuffer of an unexpected type")
        # a view: bounded by the buffer (_frombuffer is private, absent from numpy's stubs; pickles name it)
        view: np.ndarray = numeric._frombuffer(buf, dtype, shape, order)  # type: ignore[attr-defined]
        return view

    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch and refuses every global a batch never holds, before calling it:
    a pickle is a program, and ``--data`` must not run one."""

    _RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # python 2's names

    def __init__(self, file: io.BytesIO, where: str) -> None:
        super().__init__(file, encoding="bytes")
        self.where = where
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> object:
        found = self.allowed.get((self._RENAMED.get(module, module), name))
        if found is None:
            raise Refused(
                f"refused: {self.where} asks to load {module}.{name}, which a CIFAR-10 batch never holds (nor a CIFAR-100 one)"
            )
        return found


def load_batch(blob: bytes, where: str) -> object:
    return _BatchUnpickler(io.BytesIO(blob), where).load()
