"""The durable run store, shared by every study; and the study folders that count runs from it.

A store (default ``results/store``, ``--store DIR``)::

    store.json               format, and the method versions and data fingerprints of its runs
    runs/<key>.parquet       one finished run, written the moment it arrives
    packs/<id>.parquet       many finished runs, compacted from runs/ (read in bulk)
    failed/<key>.parquet     a run that kept failing, with its error (retried by the next campaign)
    .lock                    held by the one campaign writing to it (harness.store.lock)

A study folder (``--out``)::

    manifest.json            study, preset, seeds, data, versions, and the store it reads (``store``)
    keys.json                the runs it counts: key, cell, seed and factors of each
    test_labels.npy          labels of the evaluated test examples (aligned with predictions)
    report.md, figures/      written from the runs above

Every file is written under a temporary name, fsynced, renamed into place, and its folder fsynced,
so a crash never leaves half a record. Parquet pages carry checksums verified on every read, and
each row carries a CRC-32 of its predictions and one of its record, checked at load: a flipped bit
fails loudly, naming the file. No pickle anywhere. A folder written before the shared store
(``runs/`` inside the study folder, old keys) still loads as it is; ``python -m harness.store
migrate`` moves it into a store under current keys.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.spec.defaults import DEFAULT_STORE as DEFAULT_STORE  # re-exported: store.DEFAULT_STORE

STORE_FORMAT = 2
PRED_COLUMN = "predictions"  # fixed-size binary: 3 TTA levels x n
LEGACY_PRED_COLUMNS = ("pred_tta0", "pred_tta1", "pred_tta2")  # one binary per level (format 1)
LOGITS_COLUMN = "logits_f16"
PRED_CRC, RECORD_CRC = "pred_crc32", "record_crc32"
PAYLOAD_COLUMNS = (PRED_COLUMN, *LEGACY_PRED_COLUMNS, LOGITS_COLUMN, PRED_CRC, RECORD_CRC)
EMPTY_COLUMNS = (
    "key",
    "study",
    "cell",
    "seed",
    "acc_tta0",
    "acc_tta1",
    "acc_tta2",
    "method_version",
    "data_fingerprint",
)

P = ParamSpec("P")
R = TypeVar("R")
# A study folder's predictions: one uint8 array (runs, 3, examples); a store holding runs on several
# test sets: one such array per test set, by name ("n_test=1000").
Predictions = np.ndarray | dict[str, np.ndarray]
Loaded = tuple[pd.DataFrame, Predictions] | tuple[pd.DataFrame, Predictions, Predictions]


class StoreError(Exception):
    """A store problem a user must look at (a corrupt file, a mismatched folder); one line."""


# -- durable files ---------------------------------------------------------------------------------


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write under a temporary name in the same folder, fsync it, rename, fsync the folder: the
    final name holds either the previous file or the complete new one, never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise named_os_error(exc, path) from None  # pyarrow's OSErrors name no file: name it here
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def named_os_error(exc: OSError, path: Path) -> OSError:
    """The same error naming ``path``; errno and reason parsed from a library's message when it has
    only text ('... Detail: [errno 28] No space left on device')."""
    text = exc.strerror or str(exc)
    found = re.search(r"\[errno (\d+)\] ([^\n]*)", text)
    if found:
        return OSError(int(found.group(1)), found.group(2).strip(), str(path))
    return OSError(exc.errno or 0, text.splitlines()[0] if text else type(exc).__name__, str(path))


def remove_durably(paths: list[Path]) -> None:
    folders = {p.parent for p in paths}
    for p in paths:
        p.unlink(missing_ok=True)
    for folder in folders:
        fsync_folder(folder)


def write_table(path: Path, table: pa.Table) -> None:
    """Parquet with page checksums; the big payload columns without statistics or dictionaries."""
    small = [c for c in table.column_names if c not in (PRED_COLUMN, LOGITS_COLUMN, *LEGACY_PRED_COLUMNS)]
    atomic_write(
        path,
        lambda tmp: pq.write_table(
            table,
            tmp,
            compression="zstd",
            write_page_checksum=True,
            use_dictionary=small,
            write_statistics=small,
        ),
    )


# -- checksums -------------------------------------------------------------------------------------


def record_crc(row: dict[str, Any]) -> int:
    """CRC-32 of a record's non-null values in one canonical spelling (as read back from Parquet)."""
    values = {k: v for k, v in row.items() if v is not None and k not in PAYLOAD_COLUMNS}
    return zlib.crc32(json.dumps(values, sort_keys=True, default=str).encode())


def run_table(record: dict[str, Any], predictions: np.ndarray, logits: np.ndarray | None = None) -> pa.Table:
    """One run as a one-row table: its record, predictions (3, n) uint8 as one fixed-size value,
    optional float16 logits, and the two checksums."""
    preds = np.ascontiguousarray(predictions, dtype=np.uint8)
    if preds.ndim != 2 or preds.shape[0] != 3:
        raise ValueError(f"predictions must be (3, n), got {preds.shape}")
    table = pa.table({k: [v] for k, v in record.items() if k not in PAYLOAD_COLUMNS})
    blob = preds.tobytes()
    table = table.append_column(PRED_COLUMN, pa.array([blob], type=pa.binary(len(blob))))
    if logits is not None:
        table = table.append_column(
            LOGITS_COLUMN, pa.array([np.ascontiguousarray(logits, np.float16).tobytes()])
        )
    table = table.append_column(PRED_CRC, pa.array([zlib.crc32(blob)], pa.int64()))
    return table.append_column(
        RECORD_CRC, pa.array([record_crc(table.slice(0, 1).to_pylist()[0])], pa.int64())
    )


def batch_table(
    records: list[dict[str, Any]], predictions: list[np.ndarray], logits: list[np.ndarray | None]
) -> pa.Table:
    """Runs as one table built column by column (what ``run_table`` gives each, concatenated, at a
    fraction of the cost); ValueError when their payloads differ in shape."""
    preds = [np.ascontiguousarray(p, dtype=np.uint8) for p in predictions]
    if any(p.ndim != 2 or p.shape != preds[0].shape or p.shape[0] != 3 for p in preds):
        raise ValueError("predictions of different shapes")
    if len({lg is None for lg in logits}) > 1:
        raise ValueError("some runs have logits, some not")
    names = list(dict.fromkeys(k for r in records for k in r if k not in PAYLOAD_COLUMNS))
    table = pa.table({k: [r.get(k) for r in records] for k in names})
    blobs = [p.tobytes() for p in preds]
    table = table.append_column(PRED_COLUMN, pa.array(blobs, type=pa.binary(len(blobs[0]))))
    if logits[0] is not None:
        table = table.append_column(
            LOGITS_COLUMN, pa.array([np.ascontiguousarray(lg, np.float16).tobytes() for lg in logits])
        )
    table = table.append_column(PRED_CRC, pa.array([zlib.crc32(b) for b in blobs], pa.int64()))
    rows = table.select(names).to_pylist()
    return table.append_column(RECORD_CRC, pa.array([record_crc(r) for r in rows], pa.int64()))


# -- writing runs ----------------------------------------------------------------------------------


def write_run(
    root: Path, record: dict[str, Any], predictions: np.ndarray, logits: np.ndarray | None = None
) -> Path:
    """Store one finished run; a later success replaces any failure record of the same key."""
    path = Path(root) / "runs" / f"{record['key']}.parquet"
    write_table(path, run_table(record, predictions, logits))
    failed = Path(root) / "failed" / f"{record['key']}.parquet"
    if failed.exists():
        remove_durably([failed])
    return path


def write_runs(
    root: Path,
    records: list[dict[str, Any]],
    predictions: list[np.ndarray],
    logits: list[np.ndarray | None] | None = None,
) -> Path:
    """Store runs that finished together in one file (group commit: one write and two fsyncs for
    all of them, where ``write_run`` pays that per run). Several runs go in a small pack, which the
    loader reads like any pack and compaction folds into a big one; a single run is ``write_run``."""
    logits = logits or [None] * len(records)
    if len(records) == 1:
        return write_run(root, records[0], predictions[0], logits[0])
    try:
        table = batch_table(records, predictions, logits)
    except (ValueError, pa.ArrowInvalid, pa.ArrowTypeError):  # payloads of different shapes, mixed types
        try:
            table = pa.concat_tables(
                [run_table(r, p, lg) for r, p, lg in zip(records, predictions, logits)],
                promote_options="default",
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # one file each
            return [write_run(root, r, p, lg) for r, p, lg in zip(records, predictions, logits)][-1]
    path = Path(root) / "packs" / f"batch-{uuid.uuid4().hex[:16]}.parquet"
    write_table(path, table)
    failed = [f for f in (Path(root) / "failed" / f"{r['key']}.parquet" for r in records) if f.exists()]
    if failed:
        remove_durably(failed)
    return path


def write_failure(root: Path, record: dict[str, Any], error: str) -> Path:
    table = pa.table({**{k: [v] for k, v in record.items()}, "error": [error]})
    path = Path(root) / "failed" / f"{record['key']}.parquet"
    write_table(path, table)
    return path


# -- reading ---------------------------------------------------------------------------------------


def reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def corrupt(path: Path, why: str) -> StoreError:
    return StoreError(f"{path}: corrupt Parquet file ({why}); move it away to retrain the runs it holds")


def guarded(read: Callable[Concatenate[Path, P], R]) -> Callable[Concatenate[Path, P], R]:
    """Whatever goes wrong reading a file (a flipped bit can surface as any error) names the file."""

    def wrapper(path: Path, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(path, *args, **kwargs)
        except (FileNotFoundError, StoreError):
            raise
        except Exception as exc:
            raise corrupt(path, reason(exc)) from None

    functools.update_wrapper(wrapper, read)
    return wrapper


def run_files(root: Path) -> list[Path]:
    """Compacted packs first, then single runs: where a key is in both, the pack's copy is read."""
    root = Path(root)
    return sorted((root / "packs").glob("*.parquet")) + sorted((root / "runs").glob("*.parquet"))


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise corrupt(path, reason(exc)) from None


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return _open(path).read(columns=columns)
    except (FileNotFoundError, StoreError):
        raise
    except Exception as exc:
        raise corrupt(path, reason(exc)) from None


@guarded
def verify(path: Path, table: pa.Table) -> None:
    """Check each row's record and predictions checksums (where the file has them)."""
    if RECORD_CRC in table.column_names:
        stored = table.column(RECORD_CRC).to_pylist()
        rows = table.drop_columns([c for c in PAYLOAD_COLUMNS if c in table.column_names]).to_pylist()
        for i, row in enumerate(rows):
            if record_crc(row) != stored[i]:
                raise corrupt(path, f"record checksum mismatch in row {i}, key {row.get('key')}")
    if PRED_CRC in table.column_names and PRED_COLUMN in table.column_names:
        rows = fixed_rows(table.column(PRED_COLUMN))
        for i, crc in enumerate(table.column(PRED_CRC).to_pylist()):
            if zlib.crc32(rows[i]) != crc:
                raise corrupt(path, f"predictions checksum mismatch in row {i}")


def fixed_rows(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-size binary column of predictions as uint8 (rows, 3, n), without a copy per row."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = column.type.byte_width
    if width % 3:
        raise ValueError(f"predictions of {width} bytes are not 3 TTA levels")
    flat = np.frombuffer(column.buffers()[1], np.uint8, len(column) * width, column.offset * width)
    return flat.reshape(len(column), 3, width // 3)


def check_layout(names: list[str]) -> None:
    """A current file has its payload and both checksums; an old one its three prediction columns.
    Anything in between is a damaged schema (a flipped bit in a column name)."""
    current = {PRED_COLUMN, PRED_CRC, RECORD_CRC}
    if current & set(names):
        if not current <= set(names):
            raise ValueError(f"missing {', '.join(sorted(current - set(names)))}")
    elif not set(LEGACY_PRED_COLUMNS) <= set(names):
        raise ValueError("no predictions column")


@guarded
def _records(path: Path) -> pa.Table:
    """A file's record columns (no payload), each row's record checksum verified."""
    names = _open(path).schema_arrow.names
    check_layout(names)
    table = _read(path, [c for c in names if c not in (PRED_COLUMN, *LEGACY_PRED_COLUMNS, LOGITS_COLUMN)])
    if "key" not in table.column_names:
        raise corrupt(path, "no key column")
    verify(path, table)
    return table.drop_columns([c for c in (PRED_CRC, RECORD_CRC) if c in table.column_names])


@guarded
def _predictions(path: Path) -> np.ndarray:
    """A file's predictions as uint8 (rows, 3, n), each row's checksum verified."""
    names = _open(path).schema_arrow.names
    if PRED_COLUMN in names:
        table = _read(path, [PRED_COLUMN] + ([PRED_CRC] if PRED_CRC in names else []))
        verify(path, table)
        return fixed_rows(table.column(PRED_COLUMN))
    table = _read(path, list(LEGACY_PRED_COLUMNS))
    levels = [
        np.stack([np.frombuffer(b, np.uint8) for b in table.column(c).to_pylist()])
        for c in LEGACY_PRED_COLUMNS
    ]
    return np.stack(levels, axis=1)


@guarded
def _logits(path: Path, n: int) -> np.ndarray:
    names = _open(path).schema_arrow.names
    rows = _open(path).metadata.num_rows
    out = np.full((rows, 3, n, 10), np.nan, dtype=np.float16)
    if LOGITS_COLUMN in names:
        for i, blob in enumerate(_read(path, [LOGITS_COLUMN]).column(LOGITS_COLUMN).to_pylist()):
            if blob is not None:
                out[i] = np.frombuffer(blob, dtype=np.float16).reshape(3, n, 10)
    return out


@guarded
def keys_in(path: Path) -> list[str]:
    """The run keys a file holds: a pack's key column, or a single run's file name."""
    if path.parent.name == "runs":
        return [path.stem]
    return [str(k) for k in _read(path, ["key"]).column("key").to_pylist()]


def done_keys(root: Path) -> set[str]:
    """Keys of finished runs; every file's footer is checked, so a corrupt one is named, not skipped."""
    files = run_files(root)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(_open, files))
        return {k for keys in pool.map(keys_in, files) for k in keys}


def failed_keys(root: Path) -> set[str]:
    return {p.stem for p in (Path(root) / "failed").glob("*.parquet")}


# -- study folders and stores ----------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a folder's runs live: the store root, and the keys it counts (None: all of them)."""

    root: Path
    study: pd.DataFrame | None  # key, cell, seed, factors...: the study's own labels per key
    study_name: str | None = None


def _manifest_or_empty(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    return read_manifest(folder) if path.exists() else {}


def store_path(out: Path, manifest: dict[str, Any]) -> Path:
    """The store a study folder reads, kept relative to the folder so both can move together."""
    return (Path(out) / str(manifest["store"])).resolve()


def source(folder: str | os.PathLike[str]) -> Source:
    """A study folder reads its keys from its store; any other folder (a store, or a study folder
    of the old layout that holds its runs itself) is read whole."""
    folder = Path(folder)
    manifest = _manifest_or_empty(folder)
    if "store" not in manifest:
        return Source(folder, None)
    return Source(store_path(folder, manifest), read_study_keys(folder), manifest.get("study"))


def write_study_keys(out: Path, entries: list[dict[str, Any]]) -> None:
    """The runs a study counts, [{key, cell, seed, factors}]: exactly its grid's keys, replacing what
    the file held, so a key scheme or grid that changed never leaves a (cell, seed) counted twice."""
    text = json.dumps({"keys": entries}, default=str)
    atomic_write(Path(out) / "keys.json", lambda tmp: tmp.write_text(text))


def read_study_keys(out: Path) -> pd.DataFrame:
    path = Path(out) / "keys.json"
    try:
        entries = json.loads(path.read_text())["keys"] if path.exists() else []
    except (json.JSONDecodeError, KeyError, OSError) as exc:
        raise StoreError(f"{path}: unreadable key list ({type(exc).__name__})") from None
    # as in a record, a factor never replaces the key, cell label or seed
    frame = pd.DataFrame(
        [{**e.get("factors", {}), "key": e["key"], "cell": e["cell"], "seed": e["seed"]} for e in entries]
    )
    return frame if len(frame) else pd.DataFrame(columns=["key", "cell", "seed"])


def _overlay(frame: pd.DataFrame, src: Source) -> pd.DataFrame:
    """A study sees its own cell labels and factors, whichever study trained the run."""
    if src.study is None:
        return frame
    labels = src.study.set_index("key").reindex(frame["key"])
    for column in labels.columns:
        frame[column] = labels[column].to_numpy()
    if src.study_name is not None:
        frame["study"] = src.study_name
    return frame


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype="int64" if c == "seed" else "float64" if c.startswith("acc") else "object")
            for c in EMPTY_COLUMNS
        }
    )


def test_set_name(n: int) -> str:
    """How records name the test set a run was evaluated on: the fixed subset of ``n`` test images
    that ``n_test`` selects (the same subset for every run with that ``n_test``)."""
    return f"n_test={int(n)}"


def _test_set_size(test_set: int | str) -> int:
    text = str(test_set)
    try:
        return int(text.split("=", 1)[1] if text.startswith("n_test=") else text)
    except ValueError:
        raise StoreError(
            f"unknown test set {test_set!r}: give n_test=N or the number of test examples"
        ) from None


@overload
def load(
    out: str | os.PathLike[str], with_logits: Literal[False] = False, test_set: int | str | None = None
) -> tuple[pd.DataFrame, Predictions]: ...
@overload
def load(
    out: str | os.PathLike[str], with_logits: Literal[True], test_set: int | str | None = None
) -> tuple[pd.DataFrame, Predictions, Predictions]: ...
@overload
def load(out: str | os.PathLike[str], with_logits: bool, test_set: int | str | None = None) -> Loaded: ...
def load(out: str | os.PathLike[str], with_logits: bool = False, test_set: int | str | None = None) -> Loaded:
    """Finished runs as a DataFrame (one row per key, sorted by key, column ``test_set`` naming the
    test set each was evaluated on, e.g. ``n_test=1000``) and their predictions, uint8 of shape
    (runs, 3 TTA levels, test examples), row-aligned with the frame.

    ``out`` is a study folder (its runs, labelled with its cells: one test set) or a store (all runs).
    A store holding runs on several test sets returns the predictions grouped per test set, a dict
    ``{test_set: array}`` whose array is row-aligned with ``frame[frame.test_set == test_set]``;
    ``test_set=`` (``"n_test=1000"`` or ``1000``) chooses one, and returns only its runs and one array.
    With ``with_logits`` also float16 logits (runs, 3, examples, 10), NaN where not saved, grouped
    the same way."""
    loaded = _retrying(source(out), with_logits, True, test_set)
    assert isinstance(loaded, tuple)  # with predictions: (frame, predictions[, logits])
    return loaded


def load_records(out: str | os.PathLike[str], test_set: int | str | None = None) -> pd.DataFrame:
    """Only the records (no predictions): what cost estimates and adaptive decisions need, cheaply."""
    frame = _retrying(source(out), False, False, test_set)
    assert isinstance(frame, pd.DataFrame)  # without predictions: the records alone
    return frame


def _retrying(
    src: Source, with_logits: bool, with_predictions: bool, test_set: int | str | None = None
) -> pd.DataFrame | Loaded:
    for attempt in range(3):  # a compaction may move a run from runs/ into a pack meanwhile
        try:
            return _load(src, with_logits, with_predictions, test_set)
        except FileNotFoundError:
            if attempt == 2:
                raise StoreError(
                    f"{src.root}: files keep vanishing while reading; is a compaction running?"
                ) from None
    raise AssertionError("unreachable: the third attempt returns or raises")


def _load(
    src: Source, with_logits: bool, with_predictions: bool = True, test_set: int | str | None = None
) -> pd.DataFrame | Loaded:
    files = run_files(src.root)
    wanted = None if src.study is None else set(src.study["key"])
    with ThreadPoolExecutor(4) as pool:
        records = list(pool.map(_records, files))
        sizes = list(pool.map(_file_test_size, files))
    # Where each file's rows go: sorted by key, one row per key, only the keys counted.
    keys = (
        np.concatenate([t.column("key").to_numpy(zero_copy_only=False) for t in records])
        if records
        else np.array([], dtype=object)
    )
    starts = np.cumsum([0] + [len(t) for t in records])
    row_sizes = (
        np.repeat(np.array(sizes, dtype=np.int64), np.diff(starts)) if records else np.array([], np.int64)
    )
    index = pd.Index(keys)
    first = index.duplicated(keep="first")
    keep = ~first if wanted is None else ~first & index.isin(list(wanted))  # a hash lookup: np.isin sorts
    if test_set is not None:
        keep &= row_sizes == _test_set_size(test_set)
    kept_keys = keys[keep]
    order = np.argsort(kept_keys, kind="stable")
    dest = np.full(len(keys), -1, dtype=np.int64)
    dest[np.flatnonzero(keep)[order]] = np.arange(len(order))
    frame = (
        _frame(
            [
                t.filter(pa.array(keep[a:b])).append_column(_DEST, pa.array(dest[a:b][keep[a:b]]))
                for t, a, b in zip(records, starts[:-1], starts[1:])
            ]
        )
        if len(order)
        else empty_frame()
    )
    size_of_row = np.empty(len(order), np.int64)
    size_of_row[dest[keep]] = row_sizes[keep]
    frame["test_set"] = (
        [test_set_name(int(n)) for n in size_of_row] if len(order) else pd.Series(dtype="object")
    )
    if not with_predictions:
        return _overlay(frame, src)
    if not len(order):
        n = _test_set_size(test_set) if test_set is not None else 0
        none = np.zeros((0, 3, n), np.uint8)
        if with_logits:
            return _overlay(frame, src), none, np.zeros((0, 3, n, 10), np.float16)
        return _overlay(frame, src), none
    groups = sorted(set(size_of_row.tolist()))
    if len(groups) > 1 and src.study is not None:
        raise StoreError(
            f"{src.root}: the runs this study counts were evaluated on different test sets (sizes {groups})"
        )
    local = np.empty(len(order), np.int64)  # each row's index within its test set's array
    for n in groups:
        rows = np.flatnonzero(size_of_row == n)
        local[rows] = np.arange(len(rows))
    preds = {n: np.empty((int((size_of_row == n).sum()), 3, n), np.uint8) for n in groups}
    logits: dict[int, np.ndarray] = (
        {n: np.full((len(preds[n]), 3, n, 10), np.nan, np.float16) for n in groups} if with_logits else {}
    )
    used = [i for i in range(len(files)) if keep[starts[i] : starts[i + 1]].any()]

    def fill(i: int) -> None:
        rows = dest[starts[i] : starts[i + 1]]
        mask = rows >= 0
        n = sizes[i]
        preds[n][local[rows[mask]]] = _predictions(files[i])[mask]
        if with_logits:
            logits[n][local[rows[mask]]] = _logits(files[i], n)[mask]

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(fill, used))
    frame = _overlay(frame, src)
    if len(groups) == 1:
        (n,) = groups
        return (frame, preds[n], logits[n]) if with_logits else (frame, preds[n])
    named = {test_set_name(n): preds[n] for n in groups}
    return (frame, named, {test_set_name(n): logits[n] for n in groups}) if with_logits else (frame, named)


_DEST = "__row"


def _frame(tables: list[pa.Table]) -> pd.DataFrame:
    """Record tables of possibly different columns as one frame, rows placed by their ``__row``."""
    groups: dict[pa.Schema, list[pa.Table]] = {}
    for t in tables:
        if len(t):
            groups.setdefault(t.schema, []).append(t)
    frames = [pa.concat_tables(ts).to_pandas() for ts in groups.values()]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return pd.DataFrame(frame.sort_values(_DEST).drop(columns=_DEST).reset_index(drop=True))


@guarded
def _file_test_size(path: Path) -> int:
    """Test examples per run in one file (every run of a file shares its test set)."""
    schema = _open(path).schema_arrow
    if PRED_COLUMN in schema.names:
        return int(schema.field(PRED_COLUMN).type.byte_width) // 3
    column = _read(path, [LEGACY_PRED_COLUMNS[0]]).column(0)
    return len(column[0].as_py()) if len(column) else 0


def load_failures(out: str | os.PathLike[str]) -> pd.DataFrame:
    """Failed runs (with their error) the folder counts; empty when none."""
    src = source(out)
    files = sorted((src.root / "failed").glob("*.parquet"))
    if src.study is not None:
        wanted = set(src.study["key"])
        files = [p for p in files if p.stem in wanted]
    tables = [_read(p) for p in files]
    if not tables:
        return pd.DataFrame(columns=["key", "cell", "seed", "error"])
    return _overlay(pa.concat_tables(tables, promote_options="default").to_pandas(), src)


# -- the store's identity --------------------------------------------------------------------------

LEGACY_FAMILY = "airbench"  # a store written before methods were plugins held only the paper's methods


def read_identity(root: Path) -> dict[str, Any]:
    """{'method_versions': [...], 'data_fingerprints': [...], 'methods': {family: [versions]}} of the
    runs a store holds. ``methods`` names which method (key family) each version belongs to; a version
    it does not list is the paper's methods' (``airbench``), as every store before it was."""
    path = Path(root) / "store.json"
    if not path.exists():
        return {"format": STORE_FORMAT, "method_versions": [], "data_fingerprints": []}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, OSError) as exc:
        raise StoreError(f"{path}: unreadable ({type(exc).__name__})") from None


def versions_by_method(ident: dict[str, Any]) -> dict[str, set[str]]:
    """{method family: versions} of a store's identity (unattributed versions: the paper's methods)."""
    out = {family: set(v) for family, v in (ident.get("methods") or {}).items()}
    attributed = set().union(*out.values()) if out else set()
    legacy = set(ident.get("method_versions", [])) - attributed
    if legacy:
        out.setdefault(LEGACY_FAMILY, set()).update(legacy)
    return out


def note_identity(root: Path, method_version: str | dict[str, str], data_fingerprint: str) -> None:
    """Record that the store now holds (or will hold) runs of these method versions ({family:
    version}, or one version of the paper's methods) and data."""
    versions = method_version if isinstance(method_version, dict) else {LEGACY_FAMILY: method_version}
    ident = read_identity(root)
    mv = set(ident["method_versions"]) | set(versions.values())
    fp = set(ident["data_fingerprints"]) | {data_fingerprint}
    methods = {family: set(v) for family, v in (ident.get("methods") or {}).items()}
    for family, version in versions.items():
        methods.setdefault(family, set()).add(version)
    if (mv, fp, methods) == (
        set(ident["method_versions"]),
        set(ident["data_fingerprints"]),
        {f: set(v) for f, v in (ident.get("methods") or {}).items()},
    ) and (Path(root) / "store.json").exists():
        return
    text = json.dumps(
        {
            "format": STORE_FORMAT,
            "method_versions": sorted(mv),
            "data_fingerprints": sorted(fp),
            "methods": {f: sorted(v) for f, v in sorted(methods.items())},
        },
        indent=2,
    )
    atomic_write(Path(root) / "store.json", lambda tmp: tmp.write_text(text))


# -- study-folder files ----------------------------------------------------------------------------


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    atomic_write(Path(out) / "manifest.json", lambda tmp: tmp.write_text(text))


def read_manifest(out: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(out) / "manifest.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise StoreError(f"{path}: no manifest (is {out} a campaign's output folder?)") from None
    except (json.JSONDecodeError, OSError) as exc:
        raise StoreError(f"{path}: unreadable manifest ({type(exc).__name__})") from None


def write_labels(out: Path, labels: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, labels.astype(np.int64), allow_pickle=False)

    atomic_write(Path(out) / "test_labels.npy", write)


def load_labels(out: str | os.PathLike[str]) -> np.ndarray:
    path = Path(out) / "test_labels.npy"
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        raise StoreError(f"{path}: missing test labels") from None
