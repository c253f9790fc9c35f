"""A store filled with simulated runs of a study's smoke grid, for analysis tests and benchmarks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness import store
from harness.grid import Study, expand
from harness.record import base_record


def simulated_campaign(out: Path, study: Study, runs_per_cell: int, n: int = 1000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    difficulty = rng.beta(0.5, 3.0, n)
    specs = expand(study.cells("smoke"), runs_per_cell)
    store.write_labels(out, labels)
    store.write_manifest(out, {"study": study.name, "preset": "smoke", "seeds": runs_per_cell,
                               "description": study.description, "data_description": "simulated",
                               "data_source": "simulated", "code_version": "test", "torch": "n/a",
                               "grid": [{"label": c.label} for c in study.cells("smoke")]})
    for spec in specs:
        skill = 0.05 * spec.cell.config.epochs + rng.normal(0, 0.01)
        preds = np.empty((3, n), np.uint8)
        for level in range(3):
            right = rng.random(n) > np.clip(difficulty - skill - 0.01 * level, 0, 1)
            preds[level] = np.where(right, labels, (labels + rng.integers(1, 10, n)) % 10)
        record = base_record(spec, {"study": study.name, "preset": "smoke"})
        record.update({f"acc_tta{i}": float((preds[i] == labels).mean()) for i in range(3)},
                      train_seconds=1.0, wall_seconds=1.5, device_name="simulated")
        store.write_run(out, record, preds)
    return out
