"""The store benchmark: ``python -m harness.bench store --runs 60000 [--examples 10000]``.

Writes a store of ``runs`` simulated runs (records shaped like real ones, predictions of a model
that is right about 94% of the time) as compacted packs plus a tail of single-run files, then
loads it in a fresh process, as an analysis would, and reports the load time and that process's
peak memory. Goal (Paper B's scale): 60,000 runs x 10,000 examples in under 30 s within 4 GB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from airbench_core import TrainConfig
from harness import store
from harness.store.compact import PACK_ROWS

LOAD = """
import json, resource, sys, time
t0 = time.perf_counter()
from harness import store
frame, preds = store.load(sys.argv[1])
seconds = time.perf_counter() - t0
print(json.dumps({"runs": len(frame), "shape": list(preds.shape), "seconds": seconds,
                  "acc": float((preds[:, 2] == preds[0, 2]).mean())}))
"""


def simulated_records(start: int, rows: int, examples: int) -> list[dict]:
    config = TrainConfig(n_test=examples)
    base = {
        "study": "bench",
        "preset": "full",
        "cell": "flip=alternating, epochs=9.9",
        "config_json": json.dumps(config.to_dict(), sort_keys=True),
        **{k: ("x".join(map(str, v)) if k == "widths" else v) for k, v in config.to_dict().items()},
        "train_seconds": 2.2,
        "wall_seconds": 2.6,
        "epochs_trained": 9.9,
        "steps": 485,
        "n_test": examples,
        "device_name": "NVIDIA H200",
        "torch_version": "2.x",
        "cuda_version": "12.x",
        "code_version": "bench",
        "method_version": "bench",
        "data_fingerprint": "bench",
        "worker_pid": 1,
        "worker_host": "node",
        "worker_node": "n",
        "gpu_slot": "0",
    }
    return [
        {
            **base,
            "key": f"{i:020x}",
            "seed": i,
            "method": "airbench94",
            "acc_tta0": 0.93,
            "acc_tta1": 0.935,
            "acc_tta2": 0.94 + ((i * 7919) % 101 - 50) / 1e5,  # spread like runs: claims need an sd
        }
        for i in range(start, start + rows)
    ]


def simulated_pack(records: list[dict], labels: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """A pack built in bulk, with the same columns and checksums a compaction writes."""
    rows, n = len(records), len(labels)
    wrong = rng.random((rows, 3, n), dtype=np.float32) < 0.06
    preds = np.where(wrong, (labels + 1) % 10, labels).astype(np.uint8).reshape(rows, 3 * n)
    table = pa.Table.from_pylist(records)
    table = table.append_column(
        store.PRED_COLUMN,
        pa.FixedSizeBinaryArray.from_buffers(pa.binary(3 * n), rows, [None, pa.py_buffer(preds.tobytes())]),
    )
    table = table.append_column(
        store.PRED_CRC, pa.array([zlib.crc32(p.tobytes()) for p in preds], pa.int64())
    )
    return table.append_column(store.RECORD_CRC, pa.array([store.record_crc(r) for r in records], pa.int64()))


def build(root: Path, runs: int, examples: int, single: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, examples).astype(np.uint8)
    packed = runs - single
    for start in range(0, packed, PACK_ROWS):
        rows = min(PACK_ROWS, packed - start)
        store.write_table(
            root / "packs" / f"pack-{start:08d}.parquet",
            simulated_pack(simulated_records(start, rows, examples), labels, rng),
        )
    for record in simulated_records(packed, single, examples):
        wrong = rng.random((3, examples)) < 0.06
        store.write_run(root, record, np.where(wrong, (labels + 1) % 10, labels).astype(np.uint8))


def bench_store(runs: int, examples: int, single: int = 200, folder: str | None = None) -> dict:
    single = min(single, runs)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        root = Path(tmp) / "store"
        t0 = time.perf_counter()
        build(root, runs, examples, single)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        print(
            f"store: {runs} runs x {examples} examples ({runs - single} in packs, {single} single files), "
            f"{size / 2**30:.2f} GiB on disk, written in {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LOAD, str(root)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(done.stderr.strip().splitlines()[-1])
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = json.loads(done.stdout)
        result.update(process_seconds=wall, peak_rss_gb=max(peak, before) / 2**20)
    print(
        f"load: {result['runs']} runs, predictions {tuple(result['shape'])}, {result['seconds']:.1f}s in load() "
        f"({result['process_seconds']:.1f}s with interpreter start), peak RSS {result['peak_rss_gb']:.2f} GB "
        f"(goal: under 30 s within 4 GB)"
    )
    return result
