"""Adaptive seeds: train in rounds until every comparison against the baseline is decided.

After each round the driver reads the study's runs back from the store, rebuilds every
comparison's confidence sequence (harness.stats.sequential) from the paired TTA-2 differences in seed
order, and gives the next round's seeds only to comparisons still running. Everything it decides
is a function of the store alone, so a killed driver resumes to the same decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields

import numpy as np
import pandas as pd

from harness import store
from harness.run.campaign import Summary
from harness.spec.errors import UserError
from harness.spec.grid import Cell
from harness.spec.studyfile import StudyFile
from harness.stats import sequential

LEVEL = 2  # comparisons and decisions use TTA-2 accuracy, the method's headline number


def comparison_name(cell: Cell, baseline: Cell) -> str:
    return f"{cell.label} − {baseline.label}"


def accuracy_by_seed(runs: pd.DataFrame, cell: Cell) -> dict[int, float]:
    """TTA-2 accuracy in points of one cell's runs, by seed."""
    part = runs.loc[runs["cell"] == cell.label, ["seed", f"acc_tta{LEVEL}"]] if len(runs) else runs
    return (
        {int(s): 100 * float(a) for s, a in zip(part["seed"], part[f"acc_tta{LEVEL}"])} if len(part) else {}
    )


def differences(sf: StudyFile, runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per comparison, variant − baseline per seed (points), seeds 0, 1, ... while both exist."""
    if not sf.comparisons:
        return {}
    base = accuracy_by_seed(runs, sf.compared_baseline)
    return {
        comparison_name(cell, baseline): sequential.paired_differences(base, accuracy_by_seed(runs, cell))
        for cell, baseline in sf.comparisons
    }


def recorded_rule(out) -> sequential.Rule | None:
    """The rule the study folder's manifest fixed at its first adaptive round, if any."""
    if not (out / "manifest.json").exists():
        return None
    entry = store.read_manifest(out).get("adaptive")
    return sequential.Rule.from_record(entry) if entry else None


def check_rule(out, rule: sequential.Rule) -> None:
    """The stopping rule (α, P, min, max, ρ, k) is fixed at the first round: a resume that asks for
    another one is refused (UserError, exit 2), since the sequences' guarantee needs the rule chosen
    before the data; the workers may change."""
    kept = recorded_rule(out)
    if kept is not None and kept.record() != rule.record():
        raise UserError(
            f"{out} was started with the rule {kept.short()}; this run asks for {rule.short()}: "
            f"the stopping rule is fixed at the first round (rerun with the first rule, or start a new "
            f"study folder with --out)"
        )


def seeds_per_cell(sf: StudyFile, counts: Mapping[str, int]) -> dict[str, int]:
    """Seeds each cell needs so that every comparison has ``counts[name]`` paired seeds."""
    per_cell = {sf.compared_baseline.label: max(counts.values(), default=0)}
    for cell, baseline in sf.comparisons:
        per_cell[cell.label] = counts[comparison_name(cell, baseline)]
    return per_cell


def add(total: Summary, part: Summary) -> None:
    """Fold one round's summary into the campaign's, counting each run once: a round's grid holds
    every earlier round's, so its skipped runs include those earlier rounds trained or skipped; only
    the rest were in the store before the campaign."""
    already = total.trained + total.skipped
    for f in fields(Summary):
        if f.name in ("interrupted", "slots", "planned", "skipped"):
            continue
        setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
    total.skipped += max(0, part.skipped - already)
    total.planned = max(total.planned, part.planned)
    total.interrupted |= part.interrupted
    total.slots = part.slots


def run_adaptive(
    sf: StudyFile,
    rule: sequential.Rule,
    out,
    workers: int,
    train_round: Callable[[dict[str, int]], Summary],
    on_round=None,
) -> Summary:
    """Rounds until no comparison is running. ``train_round(seeds per cell)`` trains whatever of that
    grid the store lacks (a campaign), ``on_round(states)`` reports progress."""
    check_rule(out, rule)
    total = Summary(planned=0, skipped=0, slots=workers)
    previous: dict[str, int] | None = None
    while True:
        runs = store.load_records(out) if (out / "keys.json").exists() else None
        diffs = differences(sf, runs if runs is not None else store.empty_frame())
        baseline = len(accuracy_by_seed(runs, sf.compared_baseline)) if runs is not None else 0
        states, extra = sequential.plan_round(diffs, rule, workers, baseline_seeds=baseline)
        if on_round:
            on_round(states)
        if not extra:
            return total
        counts = {name: s.seeds + extra.get(name, 0) for name, s in states.items()}
        grid = seeds_per_cell(sf, counts)
        if grid == previous:  # the last round asked for these seeds and they did not all arrive
            return total
        part = train_round(grid)
        add(total, part)
        previous = grid
        if part.interrupted or part.failed:  # a failed run leaves a gap no later round fills
            return total


def worst_case_runs(states: Mapping[str, sequential.ComparisonState], rule: sequential.Rule) -> int:
    """Runs still to train if every open comparison runs to the maximum seeds: each open variant to
    M, and the baseline to M while any is open."""
    open_ = [s for s in states.values() if s.running] if states else []
    if not open_:
        return 0
    return (
        sum(rule.max_seeds - s.seeds for s in open_) + rule.max_seeds - max(s.seeds for s in states.values())
    )


def progress_line(states: Mapping[str, sequential.ComparisonState]) -> str:
    parts = []
    for s in states.values():
        interval = f" [{s.lower:+.3f}, {s.upper:+.3f}]" if s.seeds >= 2 else ""
        parts.append(f"{s.name}: {s.outcome} at {s.seeds_used} seeds{interval}")
    return "adaptive: " + "; ".join(parts)
