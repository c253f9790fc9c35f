"""A campaign: study grid x seeds -> skip finished keys -> train the rest -> store each on arrival."""
from __future__ import annotations

import platform
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from airbench_core.train import subset_indices

from . import store
from .grid import RunSpec, Study, expand
from .record import base_record, code_version, run_record


@dataclass
class Plan:
    """What a campaign would do: the dry run prints this, the campaign executes it."""

    specs: list[RunSpec]
    done: set[str]
    failed_before: set[str]

    @property
    def todo(self) -> list[RunSpec]:
        return [s for s in self.specs if s.key not in self.done]

    def describe(self) -> str:
        cells: dict[str, list[int]] = {}
        for s in self.specs:
            cells.setdefault(s.cell.label, [0, 0])[s.key in self.done] += 1
        lines = [f"{'cell':<48} {'runs':>5} {'done':>5} {'to do':>6}"]
        for label, (todo, done) in cells.items():
            lines.append(f"{label:<48} {todo + done:>5} {done:>5} {todo:>6}")
        todo = len(self.todo)
        lines.append(f"{len(cells)} cells, {len(self.specs)} runs, {len(self.specs) - todo} already done, "
                     f"{todo} to do" + (f" ({len(self.failed_before & {s.key for s in self.todo})} failed before)"
                                        if self.failed_before else ""))
        return "\n".join(lines)


@dataclass
class Summary:
    planned: int
    skipped: int
    trained: int = 0
    failed: int = 0
    interrupted: bool = False
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    slots: int = 1

    @property
    def overhead_per_run(self) -> float:
        """Slot-seconds each run cost beyond its training: start-up, scheduling, evaluation, storing."""
        return (self.slots * self.wall_seconds - self.train_seconds) / self.trained if self.trained else 0.0

    def line(self) -> str:
        rate = 60 * self.trained / self.wall_seconds if self.wall_seconds else 0.0
        state = "interrupted" if self.interrupted else "finished"
        return (f"{state}: {self.trained} trained, {self.skipped} already done, {self.failed} failed, "
                f"{self.wall_seconds:.1f}s wall, {rate:.1f} runs/min, "
                f"{self.overhead_per_run:.2f}s per run beyond training ({self.slots} slots)")


def test_size(specs: list[RunSpec]) -> int | None:
    """All runs of a campaign are evaluated on one test set, so their predictions align."""
    sizes = {s.cell.config.n_test for s in specs}
    if len(sizes) > 1:
        raise ValueError(f"a study's cells must share n_test, found {sorted(sizes, key=str)}")
    return sizes.pop() if sizes else None


def plan(study: Study, preset: str, seeds: int, out: Path) -> Plan:
    specs = expand(study.cells(preset), seeds)
    return Plan(specs, store.done_keys(out) if out.exists() else set(),
                store.failed_keys(out) if out.exists() else set())


def manifest(study: Study, preset: str, seeds: int, data, backend_name: str, old: dict | None) -> dict:
    import torch
    cells = study.cells(preset)
    return {
        "study": study.name, "description": study.description, "preset": preset,
        "seeds": max(seeds, (old or {}).get("seeds", 0)),
        "grid": [{"label": c.label, "factors": c.factors, "config": c.config.to_dict()} for c in cells],
        "data_source": data.source, "data_description": data.description,
        "backend": backend_name, "code_version": code_version(), "python": platform.python_version(),
        "torch": torch.__version__,
        "created_at": (old or {}).get("created_at") or datetime.now(timezone.utc).isoformat(),
        "updated_at": datetime.now(timezone.utc).isoformat(),
    }


def run(study: Study, preset: str, seeds: int, out: Path, data, backend, retries: int = 2,
        progress: bool = True, on_outcome=None) -> Summary:
    """Train every missing run of the grid; each finished run is in the store before the next is read.

    ``data`` is the loaded Cifar10 (the driver validates the source and writes the test labels);
    the workers load it themselves. Ctrl-C stops cleanly: finished runs stay, the rest can resume.
    """
    p = plan(study, preset, seeds, out)
    old = store.read_manifest(out) if (out / "manifest.json").exists() else None
    store.write_manifest(out, manifest(study, preset, seeds, data, backend.name, old))
    store.write_labels(out, data.test_labels[subset_indices(len(data.test_labels), test_size(p.specs)).numpy()])
    context = {"study": study.name, "preset": preset, "data_source": data.source,
               "data_description": data.description}
    summary = Summary(planned=len(p.specs), skipped=len(p.done), slots=backend.slots())
    queue, attempts = deque(p.todo), {}
    bar = tqdm(total=len(queue), desc=study.name, unit="run", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for outcome in backend.run(queue):
            key = outcome.spec.key
            if outcome.result is not None:
                store.write_run(out, run_record(outcome.spec, outcome.result, outcome.worker, context),
                                outcome.result.predictions, outcome.result.logits)
                summary.trained += 1
                summary.train_seconds += outcome.result.train_seconds
            else:
                attempts[key] = attempts.get(key, 0) + 1
                if attempts[key] <= retries:
                    queue.append(outcome.spec)
                    continue
                store.write_failure(out, {**base_record(outcome.spec, context), **outcome.worker}, outcome.error)
                summary.failed += 1
                bar.write(f"failed: {outcome.spec.cell.label} seed {outcome.spec.seed}: {outcome.error}")
            bar.update(1)
            elapsed = time.perf_counter() - t0
            bar.set_postfix_str(f"{60 * summary.trained / elapsed:.1f} runs/min, {summary.failed} failed")
            if on_outcome:
                on_outcome(outcome)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        summary.wall_seconds = time.perf_counter() - t0
        backend.stop()
    return summary
