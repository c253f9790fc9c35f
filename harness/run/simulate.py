"""Simulated runs, for benchmarks and analysis tests: no training, known structure.

Each example has a difficulty, each run a skill: a run gets an example right when a uniform draw
(shared by the run's TTA levels) beats the difficulty less the skill. Skill grows with log
*effective* epochs (epochs times a factor per flip mode or ablation variant, so a variant with factor
f reaches the baseline's accuracy at e/f epochs), plus a per-seed effect shared by every cell
(runs with one seed share their random streams, so comparisons pair by seed), plus noise. TTA level
l adds 0.005 * l of skill.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness import store
from harness.spec.grid import RunSpec, Study, expand
from harness.store.record import base_record

FACTORS = {
    "flip": {"alternating": 1.0, "random": 0.8, "none": 0.6},
    "variant": {
        "baseline": 1.0,
        "no whitening": 0.45,
        "no identity init": 0.85,
        "no bias lr scaling": 0.9,
        "no lookahead": 0.8,
        "random flip": 0.8,
    },
}
SEED_SD, RUN_SD, TTA_SKILL = 0.002, 0.002, 0.005


def skill_factor(factors: dict) -> float:
    f = 1.0
    for name, table in FACTORS.items():
        if name in factors:
            f *= table.get(factors[name], 1.0)
    return f


def mean_skill(epochs: float, factors: dict) -> float:
    return 0.05 * np.log1p(epochs * skill_factor(factors))


def simulate(
    specs: list[RunSpec],
    labels: np.ndarray,
    difficulty: np.ndarray,
    rng: np.random.Generator,
    chunk: int = 500,
) -> np.ndarray:
    """Predictions, uint8 (runs, 3, n), generated in chunks of runs with byte-sized draws."""
    n = len(labels)
    seeds = np.array([s.seed for s in specs])
    seed_effect = rng.normal(0, SEED_SD, seeds.max() + 1 if len(seeds) else 1)
    skill = (
        np.array([mean_skill(s.cell.config.epochs, s.cell.factors) for s in specs])
        + seed_effect[seeds]
        + rng.normal(0, RUN_SD, len(specs))
    )
    out = np.empty((len(specs), 3, n), np.uint8)
    for start in range(0, len(specs), chunk):
        stop = min(start + chunk, len(specs))
        u = rng.integers(0, 256, (stop - start, n), dtype=np.uint8)
        shift = (1 + rng.integers(0, 9, (stop - start, n), dtype=np.uint8)).astype(np.uint8)
        wrong_class = ((labels[None, :] + shift) % 10).astype(np.uint8)
        for level in range(3):
            threshold = (difficulty[None, :] - skill[start:stop, None] - TTA_SKILL * level) * 256
            out[start:stop, level] = np.where(u < threshold, wrong_class, labels[None, :].astype(np.uint8))
    return out


def simulated_runs(
    study: Study,
    runs_per_cell: int,
    preset: str = "smoke",
    n: int = 1000,
    seed: int = 0,
    method_version: str = "simulated",
) -> tuple[dict, pd.DataFrame, np.ndarray, np.ndarray]:
    """(manifest, runs frame, predictions uint8 (runs, 3, n), labels), all in memory."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    difficulty = rng.beta(0.5, 3.0, n)
    cells = study.cells(preset)
    specs = expand(cells, runs_per_cell)
    preds = simulate(specs, labels, difficulty, rng)
    context = {"study": study.name, "preset": preset}
    records = []
    for i, spec in enumerate(specs):
        record = base_record(spec, context)
        record.update(
            {f"acc_tta{j}": float((preds[i, j] == labels).mean()) for j in range(3)},
            train_seconds=2.0,
            wall_seconds=2.5,
            device_name="simulated",
            method_version=method_version,
            data_fingerprint="simulated",
        )
        records.append(record)
    manifest = {
        "study": study.name,
        "preset": preset,
        "seeds": runs_per_cell,
        "description": study.description,
        "data_description": "simulated",
        "data_source": "simulated",
        "code_version": "simulated",
        "torch": "n/a",
        "grid": [{"label": c.label} for c in cells],
    }
    return manifest, pd.DataFrame(records), preds, labels


def simulated_campaign(
    out: Path,
    study: Study,
    runs_per_cell: int,
    preset: str = "smoke",
    n: int = 1000,
    seed: int = 0,
    method_version: str = "simulated",
) -> Path:
    """The same, written to a store folder through harness.store."""
    manifest, runs, preds, labels = simulated_runs(study, runs_per_cell, preset, n, seed, method_version)
    store.write_labels(out, labels)
    store.write_manifest(out, manifest)
    for record, p in zip(runs.to_dict("records"), preds):
        store.write_run(out, {str(k): v for k, v in record.items()}, p)
    return out
