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
from harness.run.campaign import Summary, method_versions
from harness.spec.errors import UserError
from harness.spec.grid import Cell
from harness.spec.studyfile import StudyFile
from harness.stats import sequential
from harness.stats.claims import ClaimRule, SequentialClaim
from harness.store.scale import accuracy_points
from harness.store.versions import choose_versions

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


def current_runs(sf: StudyFile, out) -> pd.DataFrame | None:
    """The study's records of one version per method, the version of the code here: an edited
    method's old runs never decide (nor pad) the comparisons of its new version."""
    if not (out / "keys.json").exists():
        return None
    runs = store.read_records(out)
    cells = [c for pair in sf.comparisons for c in pair] or ([sf.baseline] if sf.baseline else [])
    here = method_versions(cells) if cells else {}
    return runs[choose_versions(runs, store.read_manifest(out), here).mask].reset_index(drop=True)


def rule_from_record(entry: Mapping) -> sequential.Rule | ClaimRule:
    """A manifest's adaptive rule: a claim's (``kind = "claim"``) or the comparisons'."""
    return (
        ClaimRule.from_record(entry) if entry.get("kind") == "claim" else sequential.Rule.from_record(entry)
    )


def recorded_rule(out) -> sequential.Rule | ClaimRule | None:
    """The rule the study folder's manifest fixed at its first adaptive round, if any."""
    if not (out / "manifest.json").exists():
        return None
    entry = store.read_manifest(out).get("adaptive")
    return rule_from_record(entry) if entry else None


def check_rule(out, rule: sequential.Rule | ClaimRule) -> None:
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
        runs = current_runs(sf, out)
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


def claim_accuracies(sf: StudyFile, runs: pd.DataFrame | None) -> np.ndarray:
    """The claimed cell's accuracies in points, seeds 0, 1, ... while they are contiguous (the order
    the sequence reads them in; a seed still missing ends the prefix)."""
    if runs is None or not len(runs) or sf.claim is None:
        return np.zeros(0)
    claim, cell = sf.claimed
    part = runs[np.asarray(runs["cell"] == cell.label)]
    by_seed = dict(zip(part["seed"].astype(int), accuracy_points(part, claim.tta_level)))
    out: list[float] = []
    while len(out) in by_seed:
        out.append(by_seed[len(out)])
    return np.asarray(out, float)


def run_claim_adaptive(
    sf: StudyFile,
    rule: ClaimRule,
    out,
    workers: int,
    train_round: Callable[[dict[str, int]], Summary],
    on_round: Callable[[SequentialClaim], None] | None = None,
) -> Summary:
    """Rounds of seeds for the claimed cell until its one-sided sequences decide the claim (holds or
    fails) or max_seeds runs leave it undecided; a pure function of the store, like ``run_adaptive``."""
    check_rule(out, rule)
    claim, cell = sf.claimed
    total = Summary(planned=0, skipped=0, slots=workers)
    previous = -1
    while True:
        runs = current_runs(sf, out)
        x = claim_accuracies(sf, runs)
        state = rule.decide(x, claim.accuracy)
        if on_round:
            on_round(state)
        if state.outcome != "running":
            return total
        want = rule.next_runs(len(x), workers)
        if want == previous:  # the last round asked for these seeds and they did not all arrive
            return total
        part = train_round({cell.label: want})
        add(total, part)
        previous = want
        if part.interrupted or part.failed:
            return total


def claim_progress_line(state: SequentialClaim) -> str:
    bounds = f" [{state.lower:.2f}, {state.upper:.2f}]" if state.n else ""
    return f"adaptive claim (mean > {state.target:g}%): {state.outcome} at {state.n} runs{bounds}"


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
