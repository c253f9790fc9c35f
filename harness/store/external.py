"""Runs made outside the harness (a speedrun's log table, another lab's results), imported into a
store so that their claims get the same statistics.

An imported run is a record marked ``external``: accuracy at one TTA level (a fraction, as the
store keeps every accuracy), seconds per run, the seed when the file has one, the GPU model, the
method and its version (``--version``, or a hash of the imported rows), and the data as the user
names it. It carries no predictions: it lives in ``external/<id>.parquet`` (records and their
checksums only), and analyses that need per-example predictions say so. Its key hashes what the row
says, so importing the same file twice adds nothing. Every row is checked before anything is
written: one bad row stops the import with one line naming the row and column.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from harness.store import runs as store

FOLDER = "external"
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
SCALES = ("fraction", "percent")


class ImportError_(store.StoreError):
    """A file that cannot be imported as it is: one line naming the file, row and column."""


@dataclass(frozen=True)
class ImportSpec:
    """What the command line says about the file: which columns hold what, and what they mean."""

    method: str
    accuracy: str  # column of accuracies
    seconds: str | None = None  # column of seconds per run (the paper's timer: train + eval)
    seed: str | None = None  # column of seeds; None: unseeded runs (analyses use Welch)
    gpu: str | None = None  # a column of GPU models, or the model itself as text
    tta_level: int = 2
    scale: str | None = None  # fraction or percent; None: detected from the values
    version: str | None = None  # method version; None: a hash of the imported rows
    data_name: str = "unnamed data"


@dataclass(frozen=True)
class Imported:
    added: int
    skipped: int  # rows already in the store (the same file imported before)
    scale: str
    version: str
    path: Path | None

    def line(self, source: str) -> str:
        where = f" into {self.path.parent.parent}" if self.path else ""
        return (
            f"imported {source}: {self.added} runs added{where}, {self.skipped} already there; "
            f"accuracy read as a {self.scale}, method version {self.version}"
        )


def read_file(path: Path) -> pd.DataFrame:
    """A CSV, JSONL or Parquet table of runs, as it is."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ImportError_(f"{path}: unknown format {path.suffix!r} (expected .csv, .jsonl or .parquet)")
    if not path.is_file():
        raise ImportError_(f"{path}: no such file")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_parquet(path)
    except (ValueError, OSError, pa.ArrowException) as exc:
        text = str(exc).strip().splitlines()
        raise ImportError_(
            f"{path}: unreadable {kind} ({text[0][:160] if text else type(exc).__name__})"
        ) from None


def _column(frame: pd.DataFrame, name: str, source: str, flag: str) -> pd.Series:
    if name not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise ImportError_(f"{source}: {flag} {name}: no such column (the file has: {shown})")
    return frame[name]


def _bad(source: str, row: int, column: str, why: str, scale: str | None = None) -> ImportError_:
    """Rows are counted from 1, as a spreadsheet shows them below the header."""
    tail = f" (scale: {scale})" if scale else ""
    return ImportError_(f"{source}: row {row + 1}, column {column}: {why}; nothing imported{tail}")


def _numbers(
    values: pd.Series, source: str, column: str, scale: str | None = None
) -> npt.NDArray[np.float64]:
    numeric = pd.to_numeric(values, errors="coerce")
    missing = values.isna().to_numpy()
    if missing.any():
        raise _bad(source, int(np.argmax(missing)), column, "missing value", scale)
    not_number = numeric.isna().to_numpy()
    if not_number.any():
        i = int(np.argmax(not_number))
        raise _bad(source, i, column, f"expected a number, got {values.iloc[i]!r}", scale)
    out = numeric.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise _bad(source, i, column, f"expected a finite number, got {out[i]}", scale)
    return out


def detect_scale(acc: npt.NDArray[np.float64], given: str | None) -> tuple[str, str]:
    """(scale, how it was chosen): a fraction when every value is at most 1, else percent."""
    if given is not None:
        return given, f"{given}, as --scale says"
    scale = "fraction" if len(acc) and float(acc.max()) <= 1.0 else "percent"
    return scale, f"{scale}, detected from the values"


def _accuracies(
    frame: pd.DataFrame, spec: ImportSpec, source: str
) -> tuple[npt.NDArray[np.float64], str, str]:
    values = _column(frame, spec.accuracy, source, "--accuracy")
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    scale, how = detect_scale(numeric[np.isfinite(numeric)], spec.scale)
    first = _numbers(values, source, spec.accuracy, how)
    top = 1.0 if scale == "fraction" else 100.0
    out = (first < 0) | (first > top)
    if out.any():
        i = int(np.argmax(out))
        raise _bad(source, i, spec.accuracy, f"{first[i]:g} is outside [0, {top:g}]", how)
    return first / top, scale, how


def _seconds(frame: pd.DataFrame, spec: ImportSpec, source: str, how: str) -> npt.NDArray[np.float64] | None:
    if spec.seconds is None:
        return None
    secs = _numbers(_column(frame, spec.seconds, source, "--seconds"), source, spec.seconds, how)
    bad = secs <= 0
    if bad.any():
        i = int(np.argmax(bad))
        raise _bad(source, i, spec.seconds, f"expected positive seconds, got {secs[i]:g}", how)
    return secs


def _seeds(frame: pd.DataFrame, spec: ImportSpec, source: str, how: str) -> npt.NDArray[np.int64] | None:
    if spec.seed is None:
        return None
    raw = _numbers(_column(frame, spec.seed, source, "--seed"), source, spec.seed, how)
    whole = (raw == np.round(raw)) & (raw >= 0)
    if not whole.all():
        i = int(np.argmax(~whole))
        raise _bad(source, i, spec.seed, f"expected a whole number of at least 0, got {raw[i]:g}", how)
    seeds = raw.astype(np.int64)
    first_row: dict[int, int] = {}
    for i, s in enumerate(seeds.tolist()):
        if s in first_row:
            raise _bad(
                source, i, spec.seed, f"seed {s} appears twice (rows {first_row[s] + 1} and {i + 1})", how
            )
        first_row[s] = i
    return seeds


def _gpus(frame: pd.DataFrame, spec: ImportSpec, source: str, how: str) -> list[str]:
    """A column of GPU models when ``--gpu`` names one, else ``--gpu`` is the model of every row."""
    if spec.gpu is None:
        return ["unknown"] * len(frame)
    if spec.gpu not in frame.columns:
        return [spec.gpu] * len(frame)
    values = frame[spec.gpu]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        raise _bad(source, int(np.argmax(missing)), spec.gpu, "missing value", how)
    return [str(v).strip() for v in values]


def external_records(
    frame: pd.DataFrame, spec: ImportSpec, source: str
) -> tuple[list[dict[str, object]], str]:
    """Every row as a store record (ImportError_ on the first bad row), and the scale read."""
    if not len(frame):
        raise ImportError_(f"{source}: no rows to import")
    acc, scale, how = _accuracies(frame, spec, source)
    secs = _seconds(frame, spec, source, how)
    seeds = _seeds(frame, spec, source, how)
    gpus = _gpus(frame, spec, source, how)
    rows = [
        (
            round(float(acc[i]), 12),
            None if secs is None else float(secs[i]),
            None if seeds is None else int(seeds[i]),
            gpus[i],
        )
        for i in range(len(frame))
    ]
    version = (
        spec.version
        or "ext-" + hashlib.sha256(json.dumps([spec.method, spec.tta_level, rows]).encode()).hexdigest()[:12]
    )
    occurrences: Counter[tuple[object, ...]] = Counter()
    prefix = json.dumps([spec.method, version, spec.data_name, spec.tta_level])
    records = []
    name = Path(source).name
    for i, (a, s, seed, gpu) in enumerate(rows):
        occurrences[rows[i]] += 1  # identical rows (unseeded runs that tie) stay distinct runs
        ident = f"{prefix}|{a!r}|{s!r}|{seed}|{gpu}|{occurrences[rows[i]]}"
        record: dict[str, object] = {
            "key": "ext-" + hashlib.sha256(ident.encode()).hexdigest()[:24],
            "study": "external",
            "cell": spec.method,
            "seed": seed,
            "method": spec.method,
            "external": True,
            "source_file": name,
            "source_row": i + 1,
            f"acc_tta{spec.tta_level}": a,
            "train_seconds": s,
            "eval_seconds": 0.0 if s is not None else None,
            "device_name": gpu,
            "device_model": gpu,
            "method_version": version,
            "data_fingerprint": f"external: {spec.data_name}",
            "data_source": spec.data_name,
        }
        records.append(record)
    return records, scale


def records_table(records: list[dict[str, object]]) -> pa.Table:
    """Records (no predictions) with each row's record checksum, as the loader verifies it."""
    names = list(dict.fromkeys(k for r in records for k in r))
    table = pa.table({k: [r.get(k) for r in records] for k in names})
    return table.append_column(store.RECORD_CRC, pa.array(store.record_crcs(table), pa.int64()))


def import_runs(root: Path, frame: pd.DataFrame, spec: ImportSpec, source: str) -> Imported:
    """Check every row, then write the rows the store lacks as one durable file (call it while
    holding the store's lock)."""
    records, scale = external_records(frame, spec, source)
    version = str(records[0]["method_version"])
    have = store.done_keys(root) if Path(root).exists() else set()
    new = [r for r in records if r["key"] not in have]
    if not new:
        return Imported(0, len(records), scale, version, None)
    path = Path(root) / FOLDER / f"import-{uuid.uuid4().hex[:16]}.parquet"
    store.write_table(path, records_table(new))
    note_external(Path(root), spec.method, version, spec.data_name)
    return Imported(len(new), len(records) - len(new), scale, version, path)


def note_external(root: Path, method: str, version: str, data_name: str) -> None:
    """List the import in store.json (which makes the folder a store for every command), apart from
    the harness's own method versions and data fingerprints: a campaign on this store is not refused
    for runs someone else made."""
    ident = store.read_identity(root)
    entry = {"method": method, "method_version": version, "data": data_name}
    listed = list(ident.get("external", []))
    if entry in listed and (root / "store.json").exists():
        return
    ident = {**ident, "external": [*listed, entry] if entry not in listed else listed}
    text = json.dumps(ident, indent=2)
    store.atomic_write(root / "store.json", lambda tmp: tmp.write_text(text))
