"""Compaction: many single-run files into a few columnar packs the loader reads in bulk.

A run is never held in only one place: each pack is written durably (fsync, rename, fsync folder)
before the files it replaces are removed. A compaction killed at any point leaves every run in at
least one file; the loader counts a key once, and the next compaction removes the leftovers.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.store import runs as store

# What runs must share to sit in one pack: the predictions' Arrow type and whether logits are kept.
Payload = tuple[pa.DataType, bool]

PACK_ROWS = 2048  # ~60 MB of predictions per pack at 10,000 test examples


@dataclass
class Compaction:
    runs: int = 0  # runs moved into new packs
    packs: int = 0  # packs written
    removed: int = 0  # files removed (single runs, small packs, leftovers)

    def line(self) -> str:
        return f"compacted {self.runs} runs into {self.packs} pack(s), removed {self.removed} file(s)"


def clean_temporary(root: Path) -> int:
    """Half-written files of writers that were killed (only call while holding the store lock)."""
    stale = [p for folder in ("runs", "packs", "failed") for p in (Path(root) / folder).glob(".*.tmp*")]
    store.remove_durably(stale)
    return len(stale)


def normalized(path: Path) -> pa.Table:
    """A file's rows in the current format, checksums verified (format-1 files are rebuilt)."""
    table = store._read(path)
    if store.PRED_COLUMN in table.column_names and store.PRED_CRC in table.column_names:
        store.verify(path, table)
        return table
    records = store._records(path).to_pylist()
    preds = store._predictions(path)
    n = preds.shape[2]
    logits = store._logits(path, n) if store.LOGITS_COLUMN in table.column_names else None
    return pa.concat_tables(
        [
            store.run_table(
                r, preds[i], None if logits is None or np.isnan(logits[i].astype(float)).all() else logits[i]
            )
            for i, r in enumerate(records)
        ],
        promote_options="default",
    )


def _payload(table: pa.Table) -> Payload:
    """What runs must share to sit in one pack: the predictions' width and whether logits are kept."""
    return table.schema.field(store.PRED_COLUMN).type, store.LOGITS_COLUMN in table.column_names


def _merged(group: list[pa.Table]) -> list[pa.Table]:
    """Tables of one payload as few tables as their columns allow (missing columns become nulls,
    outside every checksum; types that cannot be promoted stay apart)."""
    try:
        return [pa.concat_tables(group, promote_options="default")]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        by_schema: dict[pa.Schema, list[pa.Table]] = {}
        for t in group:
            by_schema.setdefault(t.schema, []).append(t)
        return [pa.concat_tables(ts) for ts in by_schema.values()]


READ_AHEAD = 64  # files decoded ahead of the writer: memory stays ~ one pack per payload


def compact(root: Path, pack_rows: int = PACK_ROWS) -> Compaction:
    """Fold single-run files and small packs into packs of up to ``pack_rows`` runs. Call it while
    holding the store's lock (``harness.store.lock.hold(root, 'store')``): it is the store's writer.
    Streams: a pack is written as soon as it is full, so memory does not grow with the store."""
    root = Path(root)
    done = Compaction(removed=clean_temporary(root))
    packs = sorted((root / "packs").glob("*.parquet"))
    # a campaign's batch-* files (runs that finished together) are small by construction: no need to open them
    big = {
        p for p in packs if p.name.startswith("pack-") and store._open(p).metadata.num_rows >= pack_rows // 2
    }
    sources = [p for p in packs if p not in big] + sorted((root / "runs").glob("*.parquet"))
    if not sources:
        return done
    seen = {i for p in big for i in store.run_ids(p)}  # a key's runs of two method versions are two runs
    pending: dict[Payload, list[pa.Table]] = {}

    def write(payload: Payload, final: bool) -> None:
        rest = []
        for table in _merged(pending.pop(payload)):
            full = len(table) if final else len(table) - len(table) % pack_rows
            for start in range(0, full, pack_rows):
                part = table.slice(start, min(pack_rows, full - start))
                store.write_table(root / "packs" / f"pack-{uuid.uuid4().hex[:16]}.parquet", part)
                done.packs += 1
                done.runs += len(part)
            if full < len(table):
                rest.append(table.slice(full))
        if rest:
            pending[payload] = rest

    with ThreadPoolExecutor(4) as pool:  # Parquet decoding and CRCs release the GIL
        for first in range(0, len(sources), READ_AHEAD):
            for table in pool.map(normalized, sources[first : first + READ_AHEAD]):
                keys = store.table_ids(table)
                new = [i for i, k in enumerate(keys) if k not in seen]
                seen.update(keys)
                if not new:
                    continue
                payload = _payload(table)
                pending.setdefault(payload, []).append(
                    table.take(pa.array(new)) if len(new) < len(keys) else table
                )
                if sum(map(len, pending[payload])) >= pack_rows:
                    write(payload, final=False)
    for payload in list(pending):
        write(payload, final=True)
    store.remove_durably(sources)  # only now: every run of these files is in a durable pack
    done.removed += len(sources)
    return done
