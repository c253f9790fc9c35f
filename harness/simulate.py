"""Stores of simulated runs, for benchmarks and analysis tests: no training, known structure.

Each example has a difficulty, each run a skill that improves with epochs plus noise; a run gets an
example right when a uniform draw beats the difficulty less the skill. TTA levels add a little skill.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import store
from .grid import Study, expand
from .record import base_record


def simulated_campaign(out: Path, study: Study, runs_per_cell: int, preset: str = "smoke", n: int = 1000,
                       seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    difficulty = rng.beta(0.5, 3.0, n)
    cells = study.cells(preset)
    store.write_labels(out, labels)
    store.write_manifest(out, {"study": study.name, "preset": preset, "seeds": runs_per_cell,
                               "description": study.description, "data_description": "simulated",
                               "data_source": "simulated", "code_version": "simulated", "torch": "n/a",
                               "grid": [{"label": c.label} for c in cells]})
    context = {"study": study.name, "preset": preset}
    for spec in expand(cells, runs_per_cell):
        skill = 0.05 * np.log1p(spec.cell.config.epochs) + rng.normal(0, 0.003)
        preds = np.empty((3, n), np.uint8)
        for level in range(3):
            right = rng.random(n) > np.clip(difficulty - skill - 0.005 * level, 0, 1)
            preds[level] = np.where(right, labels, (labels + rng.integers(1, 10, n)) % 10)
        record = base_record(spec, context)
        record.update({f"acc_tta{i}": float((preds[i] == labels).mean()) for i in range(3)},
                      train_seconds=2.0, wall_seconds=2.5, device_name="simulated")
        store.write_run(out, record, preds)
    return out
