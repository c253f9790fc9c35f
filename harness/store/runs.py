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
import math
import os
import re
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

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
EXTERNAL = "external"  # imported runs: records only, no predictions (test set "external")
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


def _encoded(values: list[Any]) -> list[str | None]:
    """Each value as json.dumps(default=str) writes it (what record_crc hashes); None stays None."""
    if all(type(v) is float and math.isfinite(v) for v in values):
        return [float.__repr__(v) for v in values]
    seen: dict[Any, str] = {}
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        key = (type(v), v) if not isinstance(v, float) or math.isfinite(v) else (float, repr(v))
        try:
            out.append(seen[key] if key in seen else seen.setdefault(key, json.dumps(v, default=str)))
        except TypeError:  # unhashable (a list): encode it each time
            out.append(json.dumps(v, default=str))
    return out


def record_crcs(table: pa.Table) -> list[int]:
    """``record_crc`` of every row of a table of records (payload columns ignored), built column by
    column: a row's sorted-key JSON as json.dumps(sort_keys=True) writes it, without a json.dumps
    per row (100,000 rows in well under a second, where that took seconds)."""
    columns = table.to_pydict()
    parts = []
    for name in sorted(columns):
        if name in PAYLOAD_COLUMNS:
            continue
        head = json.dumps(name) + ": "
        parts.append([None if e is None else head + e for e in _encoded(columns[name])])
    if not parts:
        return [zlib.crc32(b"{}")] * table.num_rows
    return [
        zlib.crc32(("{" + ", ".join(p for p in row if p is not None) + "}").encode()) for row in zip(*parts)
    ]


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
    """Store one finished run; a later success replaces any failure record of the same key. A run of
    another method version than the one stored under its key goes beside it (``<key>@<version>``)."""
    path = Path(root) / "runs" / f"{record['key']}.parquet"
    version = record.get("method_version") or ""
    if path.exists() and version not in {v for _, v in run_ids(path)}:
        path = path.with_name(f"{record['key']}@{version}.parquet")
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
    """Compacted packs first, then single runs: where a key is in both, the pack's copy is read;
    then imported runs (``external/``: records without predictions, harness.store.external)."""
    root = Path(root)
    return (
        sorted((root / "packs").glob("*.parquet"))
        + sorted((root / "runs").glob("*.parquet"))
        + sorted((root / EXTERNAL).glob("*.parquet"))
    )


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
        records = table.drop_columns([c for c in PAYLOAD_COLUMNS if c in table.column_names])
        for i, crc in enumerate(record_crcs(records)):
            if crc != stored[i]:
                key = records.column("key")[i].as_py() if "key" in records.column_names else None
                raise corrupt(path, f"record checksum mismatch in row {i}, key {key}")
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
    if EXTERNAL in names and RECORD_CRC in names and not {PRED_COLUMN, PRED_CRC} & set(names):
        return  # imported runs: records and their checksums, no predictions
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
def _logits(path: Path, n: int, classes: int = 10) -> np.ndarray:
    names = _open(path).schema_arrow.names
    rows = _open(path).metadata.num_rows
    out = np.full((rows, 3, n, classes), np.nan, dtype=np.float16)
    if LOGITS_COLUMN in names:
        for i, blob in enumerate(_read(path, [LOGITS_COLUMN]).column(LOGITS_COLUMN).to_pylist()):
            if blob is not None:
                out[i] = np.frombuffer(blob, dtype=np.float16).reshape(3, n, classes)
    return out


def classes_of(frame: pd.DataFrame) -> int:
    """K of the runs in ``frame`` (their records' ``num_classes``; 10 for runs recorded before
    datasets had names, all CIFAR-10)."""
    if "num_classes" not in frame.columns or not len(frame):
        return 10
    values = pd.to_numeric(frame["num_classes"], errors="coerce").dropna()
    return int(values.max()) if len(values) else 10


def dataset_mask(frame: pd.DataFrame, dataset: str) -> np.ndarray:
    """Rows of runs on ``dataset`` (a record without a ``dataset`` column is CIFAR-10's)."""
    if "dataset" not in frame.columns:
        return np.full(len(frame), dataset == "cifar10")
    return (frame["dataset"].fillna("cifar10").astype(str) == dataset).to_numpy()


@guarded
def keys_in(path: Path) -> list[str]:
    """The run keys a file holds: a pack's key column, or a single run's file name."""
    if path.parent.name == "runs":
        return [path.stem.partition("@")[0]]
    return [str(k) for k in _read(path, ["key"]).column("key").to_pylist()]


def table_ids(table: pa.Table) -> list[tuple[str, str]]:
    """(key, method version) of each row: one run of a key per version of its method ('' for a record
    written before records named their version)."""
    keys = table.column("key").to_pylist()
    if "method_version" not in table.column_names:
        return [(k, "") for k in keys]
    return [(k, v or "") for k, v in zip(keys, table.column("method_version").to_pylist())]


def run_ids(path: Path) -> list[tuple[str, str]]:
    """(key, method version) of every run a file holds."""
    ids: list[tuple[str, str]] = _guarded_ids(path)
    return ids


@guarded
def _guarded_ids(path: Path) -> list[tuple[str, str]]:
    names = _open(path).schema_arrow.names
    return table_ids(_read(path, [c for c in ("key", "method_version") if c in names]))


def done_versions(root: Path) -> dict[str, set[str]]:
    """{key: the method versions it has finished runs of}; every file's footer is checked, so a
    corrupt one is named, not skipped."""
    files = run_files(root)
    out: dict[str, set[str]] = {}
    with ThreadPoolExecutor(8) as pool:
        for ids in pool.map(run_ids, files):
            for key, version in ids:
                out.setdefault(key, set()).add(version)
    return out


def done_keys(root: Path) -> set[str]:
    """Keys of finished runs (of any method version)."""
    return set(done_versions(root))


def failed_keys(root: Path) -> set[str]:
    return {p.stem for p in (Path(root) / "failed").glob("*.parquet")}


# -- shapes of the JSON files ----------------------------------------------------------------------

STRINGS = ("list", "str")
MANIFEST_SHAPE: dict[str, Any] = {
    "": "dict",
    "store": "str",
    "study": "str",
    "preset": "str",
    "grid": ("list", "dict"),
    "grid[]": ("label",),
    "seeds_per_cell": "dict",
    "study_file": "dict",
    "adaptive": "dict",
}
KEYS_SHAPE: dict[str, Any] = {"": "dict", "keys": ("list", "dict"), "keys[]": ("key", "cell", "seed")}
IDENTITY_SHAPE: dict[str, Any] = {
    "": "dict",
    "method_versions": STRINGS,
    "data_fingerprints": STRINGS,
    "methods": "dict",
}
_TYPES = {"dict": dict, "list": list, "str": str}


def json_shape(value: object, shape: dict[str, Any]) -> str | None:
    """What is wrong with a JSON file's value (valid JSON of the wrong type: a list for an object, a
    number for a name), as one phrase; None when it has the shape the code reads. ``shape`` maps ""
    to the value's type and each top-level key to its type, or to (list, element type); an absent or
    null key is fine; "NAME[]" names the fields every element of the list NAME must have."""
    if not isinstance(value, _TYPES[shape[""]]):
        return f"expected a JSON {'object' if shape[''] == 'dict' else shape['']}, got {type(value).__name__}"
    assert isinstance(value, dict)
    for key, want in shape.items():
        if key == "" or key.endswith("[]") or value.get(key) is None:
            continue
        kind, element = want if isinstance(want, tuple) else (want, None)
        item = value[key]
        if not isinstance(item, _TYPES[kind]):
            return f'"{key}" should be a {kind}, got {type(item).__name__}'
        if element and not all(isinstance(x, _TYPES[element]) for x in item):
            return f'every entry of "{key}" should be a {element}'
    for key, needed in shape.items():
        for field in needed if key.endswith("[]") else ():
            if not all(field in e for e in value.get(key[:-2]) or []):
                return f'an entry of "{key[:-2]}" has no "{field}"'
    return None


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


def check_source(folder: str | os.PathLike[str]) -> None:
    """Refuse a study folder whose runs cannot be read, rather than read it as empty: its store
    (named by manifest.json) is missing, for example an unmounted disk or a folder sent without its
    store, or holds none of the runs the folder counts, finished or failed. A folder that counts no
    run yet, a store and a folder of the old layout pass. Reports, checks, exports and comparisons
    call it before writing anything."""
    folder = Path(folder)
    manifest = _manifest_or_empty(folder)
    if "store" not in manifest:
        return
    root = store_path(folder, manifest)
    if not root.is_dir():
        raise StoreError(
            f'{folder}: its store {root} (manifest.json\'s "store") is missing; mount or restore it, '
            "or fix the manifest"
        )
    wanted = set(read_study_keys(folder)["key"])
    if wanted and not wanted & (done_keys(root) | failed_keys(root)):
        raise StoreError(
            f"{folder}: its store {root} holds none of the {len(wanted)} runs this study counts; is it "
            'the right store (manifest.json\'s "store"), or was it emptied?'
        )


def write_study_keys(out: Path, entries: list[dict[str, Any]]) -> None:
    """The runs a study counts, [{key, cell, seed, factors}]: exactly its grid's keys, replacing what
    the file held, so a key scheme or grid that changed never leaves a (cell, seed) counted twice."""
    text = json.dumps({"keys": entries}, default=str)
    atomic_write(Path(out) / "keys.json", lambda tmp: tmp.write_text(text))


def read_study_keys(out: Path) -> pd.DataFrame:
    path = Path(out) / "keys.json"
    try:
        data = json.loads(path.read_text()) if path.exists() else {"keys": []}
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise StoreError(f"{path}: unreadable key list ({type(exc).__name__})") from None
    problem = json_shape(data, KEYS_SHAPE)
    if problem:
        raise StoreError(f"{path}: not a study's key list ({problem})")
    entries = data["keys"]
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
    that ``n_test`` selects (the same subset for every run with that ``n_test``); ``external`` for
    imported runs, which carry no predictions."""
    return EXTERNAL if int(n) == 0 else f"n_test={int(n)}"


def _test_set_size(test_set: int | str) -> int:
    text = str(test_set)
    if text == EXTERNAL:
        return 0
    try:
        return int(text.split("=", 1)[1] if text.startswith("n_test=") else text)
    except ValueError:
        raise StoreError(
            f"unknown test set {test_set!r}: give n_test=N or the number of test examples"
        ) from None


ACCURACY_COLUMNS = ("acc_tta0", "acc_tta1", "acc_tta2")


def load(
    out: str | os.PathLike[str],
    with_logits: bool = False,
    test_set: int | str | None = None,
    dataset: str | None = None,
) -> Any:
    """Finished runs as a DataFrame (one row per key and method version, sorted by key, column
    ``test_set`` naming the test set each was evaluated on, e.g. ``n_test=1000``) and their
    predictions, uint8 of shape (runs, 3 TTA levels, test examples), row-aligned with the frame.
    Accuracies (``acc_tta0/1/2``) are in percent, as every report prints them (the store keeps
    fractions; ``read_runs`` gives those).

    ``out`` is a study folder (its runs, labelled with its cells: one test set) or a store (all runs).
    A store holding runs on several test sets returns the predictions grouped per test set, a dict
    ``{test_set: array}`` whose array is row-aligned with ``frame[frame.test_set == test_set]``;
    ``test_set=`` (``"n_test=1000"`` or ``1000``) chooses one, and returns only its runs and one array.
    With ``with_logits`` also float16 logits (runs, 3, examples, K), NaN where not saved, grouped
    the same way. ``dataset=`` ("cifar100", ...) keeps only the runs on that dataset (records
    written before datasets had names are CIFAR-10's), so runs of two datasets are never pooled."""
    loaded = read_runs(out, with_logits, test_set, dataset)
    return (in_percent(loaded[0]), *loaded[1:])


def load_records(out: str | os.PathLike[str], test_set: int | str | None = None) -> pd.DataFrame:
    """Only the records (no predictions), accuracies in percent: see ``load``."""
    return in_percent(read_records(out, test_set))


def in_percent(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame of records with its accuracy columns as percent (the one scale users see)."""
    columns = [c for c in ACCURACY_COLUMNS if c in frame.columns]
    return frame.assign(**{c: 100 * frame[c].astype(float) for c in columns}) if columns else frame


def read_runs(
    out: str | os.PathLike[str],
    with_logits: bool = False,
    test_set: int | str | None = None,
    dataset: str | None = None,
) -> Any:
    """``load`` with accuracies as the store keeps them, fractions in [0, 1]: what the harness's own
    statistics read."""
    loaded = _retrying(source(out), with_logits, True, test_set)
    assert isinstance(loaded, tuple)  # with predictions: (frame, predictions[, logits])
    if dataset is None:
        return loaded
    frame: pd.DataFrame = loaded[0]
    arrays: list[Predictions] = list(loaded[1:])
    keep = dataset_mask(frame, dataset)
    kept: list[Predictions] = []
    for a in arrays:
        if isinstance(a, dict):
            names = frame["test_set"].to_numpy()
            kept.append({t: v[keep[names == t]] for t, v in a.items() if keep[names == t].any()})
        else:
            kept.append(a[keep])
    return (frame[keep].reset_index(drop=True), *kept)


def read_records(out: str | os.PathLike[str], test_set: int | str | None = None) -> pd.DataFrame:
    """``load_records`` with accuracies as fractions (what cost estimates and adaptive decisions
    need, cheaply)."""
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
    # one row per key and method version: an edited method's runs of the same seeds sit beside the old
    ids = pd.MultiIndex.from_tuples([i for t in records for i in table_ids(t)]) if len(keys) else index
    first = ids.duplicated(keep="first")
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
    names = {n: test_set_name(n) for n in set(size_of_row.tolist())}  # a name per test set, not per run
    frame["test_set"] = [names[n] for n in size_of_row.tolist()] if len(order) else pd.Series(dtype="object")
    if not with_predictions:
        return _overlay(frame, src)
    k = classes_of(frame)
    if not len(order):
        n = _test_set_size(test_set) if test_set is not None else 0
        none = np.zeros((0, 3, n), np.uint8)
        if with_logits:
            return _overlay(frame, src), none, np.zeros((0, 3, n, k), np.float16)
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
        {n: np.full((len(preds[n]), 3, n, k), np.nan, np.float16) for n in groups} if with_logits else {}
    )
    used = [i for i in range(len(files)) if keep[starts[i] : starts[i + 1]].any()]

    def fill(i: int) -> None:
        rows = dest[starts[i] : starts[i + 1]]
        mask = rows >= 0
        n = sizes[i]
        if n == 0:  # imported runs: no predictions to read
            return
        preds[n][local[rows[mask]]] = _predictions(files[i])[mask]
        if with_logits:
            logits[n][local[rows[mask]]] = _logits(files[i], n, k)[mask]

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
    if EXTERNAL in schema.names and PRED_COLUMN not in schema.names:
        return 0  # imported runs carry no predictions
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
        return identity_from_records(root)
    try:
        ident = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise StoreError(f"{path}: unreadable ({type(exc).__name__})") from None
    problem = json_shape(ident, IDENTITY_SHAPE)
    if problem:
        raise StoreError(
            f"{path}: not a store's identity ({problem}); move it away to rebuild it from the runs"
        )
    return dict(ident)


def identity_from_records(root: Path) -> dict[str, Any]:
    """The identity of the runs a store holds, read from their records, for a store whose store.json
    is gone (deleted, or lost with a disk): the guard against mixing data and method versions must
    not start over empty. A version is attributed to its method's family where the record's method
    is one this checkout can name without importing a user's file; other versions count as the paper's
    methods' (the guard then refuses more, never less, for them)."""
    from harness.spec.identity import method_family
    from harness.spec.methods import BUILTINS, find_method

    ident: dict[str, Any] = {"format": STORE_FORMAT, "method_versions": [], "data_fingerprints": []}
    files = run_files(root) + sorted((Path(root) / "failed").glob("*.parquet"))
    if not files:
        return ident
    columns = ("method", "method_version", "data_fingerprint", "external", "data_source")
    methods: dict[str, set[str]] = {}
    versions: set[str] = set()
    prints: set[str] = set()
    external: list[dict[str, str]] = []
    for path in files:
        names = _open(path).schema_arrow.names
        table = _read(path, [c for c in columns if c in names]).to_pylist()
        for row in table:
            version, data = row.get("method_version"), row.get("data_fingerprint")
            if row.get("external"):  # imported runs are listed apart: they never refuse a campaign
                entry = {"method": str(row.get("method")), "method_version": str(version)}
                entry["data"] = str(row.get("data_source"))
                if entry not in external:
                    external.append(entry)
                continue
            if data:
                prints.add(str(data))
            if not version:
                continue
            versions.add(str(version))
            spec = row.get("method")
            if spec in BUILTINS:
                methods.setdefault(method_family(find_method(spec)), set()).add(str(version))
    ident.update(
        method_versions=sorted(versions),
        data_fingerprints=sorted(prints),
        methods={f: sorted(v) for f, v in sorted(methods.items())},
    )
    if external:
        ident["external"] = external
    return ident


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
            **({"external": ident["external"]} if ident.get("external") else {}),  # imports kept
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
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: no manifest (is {out} a campaign's output folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise StoreError(f"{path}: unreadable manifest ({type(exc).__name__})") from None
    problem = json_shape(manifest, MANIFEST_SHAPE)
    if problem:
        raise StoreError(f"{path}: not a campaign's manifest ({problem})")
    return dict(manifest)


def write_labels(out: Path, labels: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, labels.astype(np.int64), allow_pickle=False)

    atomic_write(Path(out) / "test_labels.npy", write)


def load_labels(out: str | os.PathLike[str]) -> np.ndarray[Any, Any]:
    path = Path(out) / "test_labels.npy"
    try:
        labels = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing test labels") from None
    except (OSError, ValueError, EOFError) as exc:  # truncated, not .npy, an object array
        raise StoreError(f"{path}: unreadable test labels ({reason(exc)})") from None
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise StoreError(
            f"{path}: test labels must be one whole number per test example, got "
            f"{getattr(labels, 'dtype', type(labels).__name__)} of shape {getattr(labels, 'shape', '?')}"
        )
    return labels
