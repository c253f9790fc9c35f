"""Move a study folder of the old layout (its own ``runs/``, old run keys) into a shared store.

Each run is re-keyed from its stored config and seed, written to the store (a key the store
already holds is kept, not written twice), and the folder becomes a study folder that reads its
runs from the store. Old files are removed only after every run is durably in the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airbench_core import TrainConfig
from harness.store import runs as store


def migrate(old: Path, root: Path, data_fingerprint: str, method_version: str) -> int:
    """Returns how many runs were written to the store."""
    old, root = Path(old), Path(root)
    manifest = store.read_manifest(old)
    if "store" in manifest:
        raise store.StoreError(f"{old} already reads its runs from {store.store_path(old, manifest)}")
    files = store.run_files(old)
    present = store.done_keys(root) if root.exists() else set()
    factors = {g["label"]: g.get("factors", {}) for g in manifest.get("grid", [])}
    entries, written = [], 0
    for path in files:
        records = store._records(path).to_pylist()
        preds = store._predictions(path)
        for row, pred in zip(records, preds):
            config = TrainConfig.from_dict(json.loads(row["config_json"]))
            row["key"] = config.key(row["seed"])
            row.setdefault("method_version", method_version)
            row["method_version"] = row["method_version"] or method_version
            row["data_fingerprint"] = row.get("data_fingerprint") or data_fingerprint
            entries.append(
                {
                    "key": row["key"],
                    "cell": row["cell"],
                    "seed": int(row["seed"]),
                    "factors": factors.get(row["cell"], {}),
                }
            )
            if row["key"] not in present:
                store.write_run(root, row, pred)
                present.add(row["key"])
                written += 1
            store.note_identity(root, row["method_version"], row["data_fingerprint"])
    store.write_study_keys(old, entries)
    store.write_manifest(old, {**manifest, "store": os.path.relpath(root.resolve(), old.resolve())})
    store.remove_durably(files + sorted((old / "failed").glob("*.parquet")))  # failures retrain anyway
    return written


def legacy_method_version(manifest: dict[str, Any]) -> str:
    return f"legacy-{manifest.get('code_version', 'unknown')}"
