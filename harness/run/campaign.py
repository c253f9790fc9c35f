"""A campaign: study grid x seeds -> skip finished keys -> train the rest -> store each on arrival."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections import deque
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from airbench_core.method import config_dict
from harness import store
from harness.run.checks import checked
from harness.spec.defaults import MAX_SEEDS, SCREEN_CELLS
from harness.spec.grid import RunSpec, Study, check_size, expand
from harness.spec.identity import method_family, method_version
from harness.spec.methods import find_method
from harness.store.compact import compact
from harness.store.lock import hold
from harness.store.record import base_record, code_version, run_record


class MixedStoreError(store.StoreError):
    """The store holds runs of other data or another method version; one line naming both."""


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
        for label, (todo, done) in list(cells.items())[:SCREEN_CELLS]:
            lines.append(f"{label:<48} {todo + done:>5} {done:>5} {todo:>6}")
        if len(cells) > SCREEN_CELLS:
            rest = list(cells.values())[SCREEN_CELLS:]
            lines.append(
                f"... and {len(rest):,} more cells: {sum(t + d for t, d in rest):,} runs, "
                f"{sum(d for _, d in rest):,} done, {sum(t for t, _ in rest):,} to do"
            )
        todo = len(self.todo)
        lines.append(
            f"{len(cells)} cells, {len(self.specs)} runs, {len(self.specs) - todo} already done, "
            f"{todo} to do"
            + (
                f" ({len(self.failed_before & {s.key for s in self.todo})} failed before)"
                if self.failed_before
                else ""
            )
        )
        return "\n".join(lines)


@dataclass
class Summary:
    planned: int
    skipped: int
    trained: int = 0
    failed: int = 0
    retries: int = 0  # failed attempts that were put back in the queue
    recovered: int = 0  # runs stored after at least one failed attempt
    mismatched: int = 0  # runs refused: the worker's method version or data differ from the campaign's
    restarts: int = 0  # workers that died and were restarted (by Ray) or replaced (by the backend)
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
        refused = (
            (
                f" ({self.mismatched} refused: the worker's method version or data differ from the "
                f"campaign's, see the failures)"
            )
            if self.mismatched
            else ""
        )
        return (
            f"{state}: {self.trained} trained, {self.skipped} already done, {self.failed} failed{refused}, "
            f"{self.retries} retries ({self.recovered} runs recovered), {self.restarts} worker restarts, "
            f"{self.wall_seconds:.1f}s wall, {rate:.1f} runs/min, "
            f"{self.overhead_per_run:.2f}s per run beyond training ({self.slots} slots)"
        )


def test_size(specs: list[RunSpec]) -> int | None:
    """All runs of a campaign are evaluated on one test set, so their predictions align."""
    sizes = {s.cell.config.n_test for s in specs}
    if len(sizes) > 1:
        raise ValueError(f"a study's cells must share n_test, found {sorted(sizes, key=str)}")
    return sizes.pop() if sizes else None


def most_seeds(seeds: int | Mapping[str, int]) -> int:
    return max(seeds.values(), default=0) if isinstance(seeds, Mapping) else seeds


def plan(study: Study, preset: str, seeds: int | Mapping[str, int], root: Path) -> Plan:
    """The grid x seeds (or seeds per cell label) against what the store ``root`` already holds."""
    if most_seeds(seeds) > MAX_SEEDS:
        raise ValueError(f"--seeds {most_seeds(seeds)} is above the bound of {MAX_SEEDS:,} per cell")
    cells = study.cells(preset)
    check_size(len(cells), most_seeds(seeds))
    specs = expand(cells, seeds)
    root = Path(root)
    mine = {s.key for s in specs}  # the store's other studies' runs are not this study's count
    return Plan(
        specs,
        done_here(specs, store.done_versions(root)) if root.exists() else set(),
        store.failed_keys(root) & mine if root.exists() else set(),
    )


def done_here(specs: list[RunSpec], stored: Mapping[str, set[str]]) -> set[str]:
    """Keys of ``specs`` the store holds a run of at the version of the code here: an edited method's
    runs are new runs (the same seeds train again under the new version, stored beside the old). A
    record that names no version (written before records did) counts for any."""
    versions = method_versions(specs) if specs else {}
    return {s.key for s in specs if s.key in stored and ({versions[s.cell.method_spec], ""} & stored[s.key])}


def method_versions(specs_or_cells) -> dict[str, str]:
    """{method spec: version} of the methods a campaign's cells (or run specs) train."""
    cells = [getattr(x, "cell", x) for x in specs_or_cells]
    return {spec: method_version(find_method(spec)) for spec in dict.fromkeys(c.method_spec for c in cells)}


def family_versions(versions: Mapping[str, str]) -> dict[str, str]:
    """{method family (the name its keys hash): version} from {method spec: version}."""
    return {method_family(find_method(spec)): v for spec, v in versions.items()}


def check_identity(
    root: Path, version: str | Mapping[str, str], fingerprint: str, allow_mixed_versions: bool = False
) -> None:
    """Stop before training when the store holds runs on other data, or (unless allowed) runs of one
    of this campaign's methods at another version: pooling them would be silent. ``version`` is
    {method spec: version} (one string: airbench94's)."""
    versions = dict(version) if isinstance(version, Mapping) else {"airbench94": version}
    ident = store.read_identity(root)
    other_data = sorted(set(ident["data_fingerprints"]) - {fingerprint})
    if other_data:
        raise MixedStoreError(
            f"store {root} holds runs on data {', '.join(other_data)}, but this campaign's data "
            f"is {fingerprint}; use another --store for this data"
        )
    held = store.versions_by_method(ident)
    for spec, v in versions.items():
        family = method_family(find_method(spec))
        other_versions = sorted(held.get(family, set()) - {v})
        if other_versions and not allow_mixed_versions:
            raise MixedStoreError(
                f"store {root} holds runs of {family} at method version {', '.join(other_versions)}, "
                f"but the code of method {spec} here is version {v}; use another --store, or pass "
                f"--allow-mixed-versions to train this version's runs beside the old (verdicts count the current version)"
            )


def identity_mismatch(worker: dict, version: str, fingerprint: str) -> str | None:
    """Why a finished run cannot be stored as this campaign's: its worker ran another method version
    (airbench_core edited mid-campaign) or saw other data (a node's copy differs); None when it matches."""
    problems = []
    if worker.get("method_version", version) != version:
        problems.append(f"method version {worker['method_version']} (the campaign's is {version})")
    if worker.get("data_fingerprint", fingerprint) != fingerprint:
        problems.append(f"data fingerprint {worker['data_fingerprint']} (the campaign's is {fingerprint})")
    if not problems:
        return None
    where = f" on {worker.get('worker_host', '?')} pid {worker.get('worker_pid', '?')}"
    return f"IdentityMismatch: the worker{where} ran {' and '.join(problems)}; run not stored"


def worker_columns(worker: dict) -> dict:
    """A worker's fields for a failure record: its identity as worker_* columns, so a failure record's
    method_version and data_fingerprint stay the campaign's (the values store.json lists)."""
    return {
        (f"worker_{k}" if k in ("method_version", "data_fingerprint") else k): v for k, v in worker.items()
    }


def study_keys(specs: list[RunSpec]) -> list[dict]:
    return [{"key": s.key, "cell": s.cell.label, "seed": s.seed, "factors": s.cell.factors} for s in specs]


def data_identity(data) -> dict:
    """What every run record and manifest says of its data: the dataset's name and K (its number of
    classes; every label and prediction is below it, and result checks read it from here)."""
    return {"dataset": getattr(data, "name", "cifar10"), "num_classes": int(getattr(data, "num_classes", 10))}


def data_normalisation(data) -> dict:
    """The per-channel statistics the inputs were normalised with, and the class names (manifest)."""
    if not hasattr(data, "mean"):
        return {}
    return {
        "data_mean": [float(v) for v in data.mean],
        "data_std": [float(v) for v in data.std],
        "data_classes": list(data.classes),
    }


def manifest(
    study: Study,
    preset: str,
    seeds: int | Mapping[str, int],
    data,
    backend_name: str,
    old: dict | None,
    out: Path,
    root: Path,
    extra: dict | None = None,
) -> dict:
    torch = sys.modules.get("torch")  # imported by the workers' code when it trains here; else not needed
    cells = study.cells(preset)
    per_cell = dict(seeds) if isinstance(seeds, Mapping) else None
    versions = method_versions(cells)
    return {
        "methods": versions,
        "study": study.name,
        "description": study.description,
        "preset": preset,
        "base": study.base.describe(),
        "seeds": most_seeds(seeds) if per_cell else max(seeds, (old or {}).get("seeds", 0)),
        "seeds_per_cell": per_cell,
        **(extra or {}),
        "grid": [
            {"label": c.label, "factors": c.factors, "method": c.method_spec, "config": config_dict(c.config)}
            for c in cells
        ],
        "data_source": data.source,
        "data_description": data.description,
        "data_fingerprint": data.fingerprint,
        **data_identity(data),
        **data_normalisation(data),
        "store": os.path.relpath(Path(root).resolve(), Path(out).resolve()),
        "backend": backend_name,
        "code_version": code_version(),
        "method_version": ", ".join(dict.fromkeys(versions.values())),
        "python": platform.python_version(),
        "torch": torch.__version__ if torch else None,
        "created_at": (old or {}).get("created_at") or datetime.now(timezone.utc).isoformat(),
        "updated_at": datetime.now(timezone.utc).isoformat(),
    }


def locked(out: Path, root: Path) -> ExitStack:
    """The study folder's lock and the store's writer lock (one lock when they are one folder)."""
    stack = ExitStack()
    stack.enter_context(hold(out, "study folder"))
    if Path(root).resolve() != Path(out).resolve():
        stack.enter_context(hold(root, "store"))
    return stack


def run(
    study: Study,
    preset: str,
    seeds: int | Mapping[str, int],
    out: Path,
    data,
    backend,
    retries: int = 2,
    progress: bool = True,
    on_outcome=None,
    store_root: Path | None = None,
    allow_mixed_versions: bool = False,
    compact_at_end: bool = True,
    take_locks: bool = True,
    stop_backend: bool = True,
    manifest_extra: dict | None = None,
    progress_desc: str | None = None,
) -> Summary:
    """Train every run of the grid the store lacks; each finished run is in the store before the next
    is read. ``out`` is the study folder, ``store_root`` the store (default: ``out`` itself).

    ``data`` is the loaded Cifar10 (the driver validates the source and writes the test labels);
    the workers load it themselves. Ctrl-C stops cleanly: finished runs stay, the rest can resume.
    Raises LockHeld when another driver holds the folder or store, MixedStoreError when the store
    holds runs of other data or another method version; both before anything is trained.
    ``take_locks=False`` when the caller already holds both locks (see ``locked``).
    ``seeds`` per cell label (a mapping) trains exactly those seeds of each cell, as an adaptive
    campaign's rounds do; ``stop_backend=False`` keeps the workers for the next round.
    """
    out = Path(out)
    root = Path(store_root) if store_root is not None else out
    with locked(out, root) if take_locks else ExitStack():
        try:
            return _run_locked(
                study,
                preset,
                seeds,
                out,
                root,
                data,
                backend,
                retries,
                progress,
                on_outcome,
                allow_mixed_versions,
                compact_at_end,
                stop_backend,
                manifest_extra,
                progress_desc,
            )
        finally:
            if stop_backend:
                backend.stop()


def _run_locked(
    study,
    preset,
    seeds,
    out,
    root,
    data,
    backend,
    retries,
    progress,
    on_outcome,
    allow_mixed_versions,
    compact_at_end,
    stop_backend,
    manifest_extra,
    progress_desc=None,
) -> Summary:
    versions = method_versions(study.cells(preset))
    check_identity(root, versions, data.fingerprint, allow_mixed_versions)
    p = plan(study, preset, seeds, root)
    old = store.read_manifest(out) if (out / "manifest.json").exists() else None
    m = manifest(study, preset, seeds, data, backend.name, old, out, root, manifest_extra)
    store.note_identity(root, family_versions(versions), data.fingerprint)
    store.write_manifest(out, m)
    store.write_study_keys(out, study_keys(expand(study.cells(preset), m["seeds_per_cell"] or m["seeds"])))
    n_test = test_size(p.specs)
    if n_test is None or n_test >= len(data.test_labels):
        labels = data.test_labels  # the whole test set, in source order (no torch needed)
    else:
        from airbench_core.train import (
            subset_indices,  # torch: imported by a campaign that trains, not by a plan
        )

        labels = data.test_labels[subset_indices(len(data.test_labels), n_test).numpy()]
    store.write_labels(out, labels)
    labels = np.asarray(labels)
    context = {
        "study": study.name,
        "preset": preset,
        "data_source": data.source,
        "data_description": data.description,
        "data_fingerprint": data.fingerprint,
        **data_identity(data),
    }

    def context_of(spec: RunSpec) -> dict:
        return {**context, "method_version": versions[spec.cell.method_spec]}

    summary = Summary(planned=len(p.specs), skipped=len(p.done), slots=backend.slots())
    queue: deque[RunSpec] = deque(p.todo)
    attempts: dict[str, int] = {}
    bar = tqdm(
        total=len(queue),
        desc=progress_desc or study.name,
        unit="run",
        disable=not progress or not queue,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    try:
        batches = (
            backend.run_batches(queue)
            if hasattr(backend, "run_batches")
            else ([outcome] for outcome in backend.run(queue))
        )
        for batch in batches:
            # a result that fails a check (shape, classes below K, accuracy, seconds) is a failed run
            batch = [checked(o, labels, context["num_classes"]) for o in batch]
            mismatch = {
                id(o): identity_mismatch(o.worker, versions[o.spec.cell.method_spec], data.fingerprint)
                for o in batch
                if o.result is not None
            }
            good = [o for o in batch if o.result is not None and not mismatch[id(o)]]
            if good:  # every run that finished together, in one durable file
                store.write_runs(
                    root,
                    [run_record(o.spec, o.result, o.worker, context_of(o.spec)) for o in good],
                    [o.result.predictions for o in good],
                    [o.result.logits for o in good],
                )
            for outcome in batch:
                key = outcome.spec.key
                refused = mismatch.get(id(outcome))
                if refused:  # never stored as a success, never retried
                    store.write_failure(
                        root,
                        {
                            **base_record(outcome.spec, context_of(outcome.spec)),
                            **worker_columns(outcome.worker),
                        },
                        refused,
                    )
                    summary.failed += 1
                    summary.mismatched += 1
                    bar.write(f"failed: {outcome.spec.cell.label} seed {outcome.spec.seed}: {refused}")
                elif outcome.result is not None:
                    summary.trained += 1
                    summary.recovered += key in attempts
                    summary.train_seconds += outcome.result.train_seconds
                else:
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] <= retries:
                        summary.retries += 1
                        queue.append(outcome.spec)
                        if on_outcome:
                            on_outcome(outcome)
                        continue
                    store.write_failure(
                        root,
                        {
                            **base_record(outcome.spec, context_of(outcome.spec)),
                            **worker_columns(outcome.worker),
                        },
                        outcome.error,
                    )
                    summary.failed += 1
                    bar.write(f"failed: {outcome.spec.cell.label} seed {outcome.spec.seed}: {outcome.error}")
                bar.update(1)
                if on_outcome:
                    on_outcome(outcome)
            if progress:
                elapsed = time.perf_counter() - t0
                bar.set_postfix_str(f"{60 * summary.trained / elapsed:.1f} runs/min, {summary.failed} failed")
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        summary.wall_seconds = time.perf_counter() - t0
        summary.restarts = getattr(backend, "restarts", 0)
    if compact_at_end and not summary.interrupted:
        if stop_backend:
            backend.stop()  # free the workers before the (single-threaded) compaction
        try:
            compact(root)  # safe to interrupt: every run stays in at least one file
        except KeyboardInterrupt:
            summary.interrupted = True
    return summary
