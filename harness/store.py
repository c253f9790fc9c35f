"""The durable run store: one Parquet file per run, written atomically; the campaign's memory.

Layout of an output folder::

    manifest.json            study, grid, seeds, data source, versions
    test_labels.npy          labels of the evaluated test examples (aligned with predictions)
    runs/<key>.parquet       one finished run: its record plus predictions (uint8, no pickle)
    failed/<key>.parquet     a run that kept failing, with its error (retried on the next campaign)
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PRED_COLUMNS = ("pred_tta0", "pred_tta1", "pred_tta2")
LOGITS_COLUMN = "logits_f16"


class StoreError(Exception):
    """A store problem a user must look at (a corrupt file, a mismatched folder); one line."""


def atomic_write(path: Path, write) -> None:
    """Write under a temporary name in the same folder, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_run(out: Path, record: dict, predictions: np.ndarray, logits: np.ndarray | None = None) -> Path:
    """Store one finished run; a later success replaces any failure record of the same key."""
    row = {k: [v] for k, v in record.items()}
    for col, pred in zip(PRED_COLUMNS, predictions):
        row[col] = [np.ascontiguousarray(pred, dtype=np.uint8).tobytes()]
    if logits is not None:
        row[LOGITS_COLUMN] = [np.ascontiguousarray(logits, dtype=np.float16).tobytes()]
    table = pa.table(row)
    path = Path(out) / "runs" / f"{record['key']}.parquet"
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    (Path(out) / "failed" / f"{record['key']}.parquet").unlink(missing_ok=True)
    return path


def write_failure(out: Path, record: dict, error: str) -> Path:
    table = pa.table({**{k: [v] for k, v in record.items()}, "error": [error]})
    path = Path(out) / "failed" / f"{record['key']}.parquet"
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _files(out: Path, folder: str) -> list[Path]:
    return sorted((Path(out) / folder).glob("*.parquet"))


def _check(path: Path) -> None:
    try:
        pq.read_metadata(path)
    except Exception as exc:
        raise StoreError(f"{path}: corrupt Parquet file ({type(exc).__name__}); move it away to retrain that run") from None


def done_keys(out: Path) -> set[str]:
    """Keys of finished runs; every file's footer is checked so a corrupt one is named, not skipped."""
    files = _files(out, "runs")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(_check, files))
    return {p.stem for p in files}


def failed_keys(out: Path) -> set[str]:
    return {p.stem for p in _files(out, "failed")}


def _read(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise StoreError(f"{path}: corrupt Parquet file ({type(exc).__name__}); move it away to retrain that run") from None


def load(out: str | os.PathLike, with_logits: bool = False) -> tuple[pd.DataFrame, np.ndarray] | tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """All finished runs as a DataFrame (one row per run, sorted by key) and their predictions,
    uint8 of shape (runs, 3 TTA levels, test examples), row-aligned with the frame.
    With ``with_logits`` also float16 logits (runs, 3, examples, 10), NaN where not saved."""
    files = _files(Path(out), "runs")
    with ThreadPoolExecutor(8) as pool:
        tables = list(pool.map(_read, files))
    if not tables:
        empty = pd.DataFrame(columns=["key"])
        return (empty, np.zeros((0, 3, 0), np.uint8)) + ((np.zeros((0, 3, 0, 10), np.float16),) if with_logits else ())
    table = pa.concat_tables(tables, promote_options="default")
    blobs = {c: table.column(c).to_pylist() for c in PRED_COLUMNS}
    lengths = {len(b) for c in PRED_COLUMNS for b in blobs[c]}
    if len(lengths) != 1:
        raise StoreError(f"{out}: runs were evaluated on different test sets (sizes {sorted(lengths)})")
    n = lengths.pop()
    preds = np.frombuffer(b"".join(b for row in zip(*blobs.values()) for b in row), dtype=np.uint8)
    preds = preds.reshape(len(files), 3, n)
    logits = None
    if with_logits:
        logits = np.full((len(files), 3, n, 10), np.nan, dtype=np.float16)
        if LOGITS_COLUMN in table.column_names:
            for i, blob in enumerate(table.column(LOGITS_COLUMN).to_pylist()):
                if blob is not None:
                    logits[i] = np.frombuffer(blob, dtype=np.float16).reshape(3, n, 10)
    frame = table.drop_columns([c for c in (*PRED_COLUMNS, LOGITS_COLUMN) if c in table.column_names]).to_pandas()
    order = np.argsort(frame["key"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    preds = preds[order]
    return (frame, preds, logits[order]) if with_logits else (frame, preds)


def load_failures(out: str | os.PathLike) -> pd.DataFrame:
    tables = [_read(p) for p in _files(Path(out), "failed")]
    return pa.concat_tables(tables, promote_options="default").to_pandas() if tables else pd.DataFrame()


def write_manifest(out: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    atomic_write(Path(out) / "manifest.json", lambda tmp: tmp.write_text(text))


def read_manifest(out: str | os.PathLike) -> dict:
    path = Path(out) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: no manifest (is {out} a campaign's output folder?)") from None
    except (json.JSONDecodeError, OSError) as exc:
        raise StoreError(f"{path}: unreadable manifest ({type(exc).__name__})") from None


def write_labels(out: Path, labels: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, labels.astype(np.int64), allow_pickle=False)
    atomic_write(Path(out) / "test_labels.npy", write)


def load_labels(out: str | os.PathLike) -> np.ndarray:
    path = Path(out) / "test_labels.npy"
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing test labels") from None
