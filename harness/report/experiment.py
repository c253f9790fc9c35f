"""A researcher's own experiment: a study file (harness.spec.studyfile) as a Study, its report, and the
adaptive-seed bookkeeping (harness.stats.sequential) read back from the store alone.

The manifest keeps the file's text and the ``--method``/``--set`` values, so ``harness.report``
rebuilds the same study later, even if the file has changed or moved since.
"""

from __future__ import annotations

from functools import partial

import tomllib

from harness.report import claims
from harness.report.campaign import LoadedCampaign
from harness.report.page import Block, figure_block
from harness.report.sections import PAIRING_RULE, compare, comparison_table
from harness.run.adaptive import LEVEL, comparison_name, differences
from harness.spec import studyfile
from harness.spec.grid import Study
from harness.stats import sequential
from harness.stats.claims import ClaimRule
from harness.stats.text import code, plain

FILE_PRESET = "file"  # a study file sets its own sizes: --preset applies to built-in studies


def as_study(sf: studyfile.StudyFile) -> Study:
    cells = list(sf.cells)
    return Study(
        sf.name,
        sf.description,
        grid=lambda preset, base: cells,
        report=partial(report, sf),
        presets=(FILE_PRESET,),
        verdicts=partial(verdicts, sf),
    )


def manifest_entry(sf: studyfile.StudyFile, text: str, overrides: dict, method: str | None) -> dict:
    """What the manifest keeps to rebuild this study: the file's text and the command-line changes."""
    return {"path": sf.path, "text": text, "set": overrides, "method": method}


def from_manifest(manifest: dict) -> Study | None:
    """The study a manifest's ``study_file`` entry describes, or None when it has none."""
    entry = manifest.get("study_file")
    if not entry:
        return None
    sf = studyfile.parse(
        tomllib.loads(entry["text"]), entry["path"], entry.get("set") or {}, entry.get("method")
    )
    return as_study(sf)


def report(sf: studyfile.StudyFile, c: LoadedCampaign) -> list[Block]:
    """Every cell against the baseline, paired by seed (Holm over the family, the primary unadjusted),
    and for an adaptive campaign the rule, each comparison's sequence and its decision."""
    blocks: list[Block] = [
        f"## Study file\n\n`{code(sf.path)}`: {plain(sf.description)}. Method {plain(sf.method)}; "
        f"{len(sf.cells)} cells"
        + (
            f", baseline `{code(sf.baseline.label)}`."
            if sf.baseline
            else "; no cell equals the base config, so no baseline."
        )
    ]
    comparisons = []
    for cell, baseline in sf.comparisons:
        a, b = c.mask(cell=cell.label), c.mask(cell=baseline.label)
        if a.any() and b.any():
            name = comparison_name(cell, baseline)
            comparisons.append(compare(c, a, b, LEVEL, LEVEL, {"comparison": name, "TTA": LEVEL}, name))
    adaptive = c.manifest.get("adaptive")
    claimed = adaptive and adaptive.get("kind") == "claim"
    if sf.claim is not None:
        blocks += claim_blocks(sf, c)
    if claimed:
        adaptive = None  # the claim's sequences are its verdict (above); no comparison was adaptive
    if adaptive:  # the verdict is the sequences, under the rule fixed at the first round
        rule = sequential.Rule.from_record(adaptive)
        history = sequential.replay(differences(sf, c.runs), rule, int(adaptive.get("workers", 1)))
        text = sequential.render(history, rule)
        if history and any(s.sequence for s in history[-1].values()):
            text += "\n\n" + sequences_figure(c, history[-1], rule)
        blocks.append(text)
    if comparisons:
        primary = (
            comparison_name(sf.primary, sf.baseline)
            if sf.primary is not None and sf.baseline is not None
            else None
        )
        if adaptive:
            blocks.append(
                "## Against the baseline (descriptive)\n\nTTA-2 accuracy, variant − baseline, over every "
                "run the adaptive campaign trained; the figure draws the verdict's sequences."
            )
        else:
            blocks.append(f"## Against the baseline\n\nTTA-2 accuracy, variant − baseline; {PAIRING_RULE}.")
        table = comparison_table(
            comparisons,
            family=f"every cell against the baseline at TTA {LEVEL}",
            primary=primary,
            optional_stopping=bool(adaptive),
        )
        if adaptive:  # after adaptive stopping the forest draws the verdict's sequences, never t-intervals
            figure = sequence_forest_figure(c, list(history[-1].values()), rule, primary) if history else ""
        else:
            figure = forest_figure(c, comparisons, primary)
        blocks.append(table[0] + ("\n\n" + figure if figure else ""))
        blocks += table[1:]
    if sf.claim is None:
        blocks += time_blocks(sf, c)
    return blocks


def claim_reading(c: LoadedCampaign) -> tuple[str, ClaimRule | None]:
    """Runs added until decided (a claim's or a comparison's rule in the manifest): the sequence
    only, never a fixed-n p-value; seeds fixed in advance: the one-sided t-test."""
    adaptive = c.manifest.get("adaptive")
    if not adaptive:
        return claims.FIXED, None
    return claims.ADAPTIVE, ClaimRule.from_record(adaptive) if adaptive.get("kind") == "claim" else None


def reference_runs(sf: studyfile.StudyFile, c: LoadedCampaign):
    """The reference's runs: a variant of this file by name, else a method's runs in the store."""
    ref = sf.claimed[0].reference
    cells = c.runs["cell"].astype(str)
    if (cells == f"variant={ref}").any():
        return c.runs[(cells == f"variant={ref}").to_numpy()]
    from harness import store

    runs = store.read_records(store.store_path(c.out, c.manifest))
    return runs[(runs["method"].astype(str) == ref).to_numpy()] if "method" in runs else runs.iloc[:0]


def claim_blocks(sf: studyfile.StudyFile, c: LoadedCampaign) -> list[Block]:
    """The claim's verdict in the field's words, then time per run and accuracy against seconds."""
    reading, rule = claim_reading(c)
    claim, cell = sf.claimed
    claimed = c.runs[c.mask(cell=cell.label)]
    if rule is not None:  # the sequence reads seeds 0, 1, ... as they were added
        claimed = claimed[claimed["seed"].astype(int) < rule.max_seeds]
    reference = reference_runs(sf, c) if claim.reference else None
    verdict = claims.claim_verdict(claimed, claim, reading, rule, reference)
    how = (
        rule.describe() + "; fixed at the first round and kept in the manifest. A fixed-n p-value is not "
        "valid after adaptive stopping and is not printed."
        if rule is not None
        else 'The seeds were fixed in advance: a one-sided t-test of "mean ≤ target" and its lower bound.'
        if reading == claims.FIXED
        else "Runs were added adaptively: only the anytime-valid sequence is valid."
    )
    text = f"## Claim: {verdict.outcome}\n\n{how}\n\n```\n{verdict.text()}\n```"
    return [text] + time_blocks(sf, c)


def time_blocks(sf: studyfile.StudyFile, c: LoadedCampaign) -> list[Block]:
    baseline = sf.baseline.label if sf.baseline is not None else None
    level = sf.claim.tta_level if sf.claim else LEVEL
    frame = claims.accuracy_seconds_frame(c.runs, level)
    adaptive = bool(c.manifest.get("adaptive"))
    if adaptive:  # runs were added until decided: no accuracy t-interval is valid (the verdict's sequence is)
        frame = frame.assign(acc_low=float("nan"), acc_high=float("nan"))
    blocks: list[Block] = [claims.time_section(c.runs, baseline)]
    if len(frame):
        blocks.append(
            f"## Accuracy against seconds\n\n{claims.accuracy_seconds_table(frame, level, adaptive)}\n\n"
            + claims.accuracy_seconds_figure(
                frame,
                c.figures,
                c.figure_name("accuracy_vs_seconds"),
                c.stamp(f"n = {int(frame['n'].sum())} runs"),
                sf.claim,
                level,
                adaptive,
            )
        )
    return blocks


def verdicts(sf: studyfile.StudyFile, c: LoadedCampaign) -> list:
    """The primary comparison (fixed seeds) and, under --until decided, every comparison's decision."""
    from harness.report.verdicts import Verdict, from_comparison

    primary = (
        comparison_name(sf.primary, sf.baseline)
        if sf.primary is not None and sf.baseline is not None
        else None
    )
    adaptive = c.manifest.get("adaptive")
    out = claim_verdicts(sf, c)
    if adaptive and adaptive.get("kind") == "claim":
        return out
    if adaptive:
        rule = sequential.Rule.from_record(adaptive)
        history = sequential.replay(differences(sf, c.runs), rule, int(adaptive.get("workers", 1)))
        if not history:
            return out
        return out + [
            Verdict(
                s.name,
                "primary, adaptive" if s.name == primary else "adaptive",
                s.mean,
                s.lower,
                s.upper,
                s.outcome,
                s.seeds_used,
            )
            for s in history[-1].values()
        ]
    for cell, baseline in sf.comparisons:
        name = comparison_name(cell, baseline)
        a, b = c.mask(cell=cell.label), c.mask(cell=baseline.label)
        if name == primary and a.any() and b.any():
            out.append(from_comparison(compare(c, a, b, LEVEL, LEVEL, {}, name), "primary"))
    return out


def claim_verdicts(sf: studyfile.StudyFile, c: LoadedCampaign) -> list:
    """The claim as a row of the terminal's verdicts table: mean accuracy minus the target, with the
    valid reading's bounds (one-sided: the other bound is open)."""
    from harness.report.verdicts import Verdict

    if sf.claim is None:
        return []
    reading, rule = claim_reading(c)
    claim, cell = sf.claimed
    claimed = c.runs[c.mask(cell=cell.label)]
    v = claims.claim_verdict(claimed, claim, reading, rule)
    t = claim.accuracy
    if v.sequence is not None:
        s = v.sequence
        acc = claims.accuracy_points(claimed, sf.claim.tta_level)
        return [
            Verdict(
                f"claim: mean > {t:g}%",
                "claim, adaptive",
                float(acc[: s.n].mean()) - t,
                s.lower - t,
                s.upper - t,
                s.outcome,
                s.n,
            )
        ]
    if v.fixed is None:
        return []
    f = v.fixed
    return [
        Verdict(
            f"claim: mean > {t:g}%",
            "claim, one-sided t",
            f.mean - t,
            f.lower - t,
            float("inf"),
            v.outcome,
            f.n,
        )
    ]


def forest_figure(c: LoadedCampaign, comparisons: list, primary: str | None) -> str:
    """Each comparison against the baseline: its paired difference with 95% CI, primary starred."""
    import numpy as np
    import pandas as pd

    from harness.report import figures

    rows = pd.DataFrame(
        [
            {
                "label": comp.name.split(" − ")[0],
                "diff": 100 * comp.result.diff.value,
                "low": 100 * comp.result.diff.low,
                "high": 100 * comp.result.diff.high,
            }
            for comp in comparisons
        ]
    )
    primary = primary.split(" − ")[0] if primary else None
    baseline = comparisons[0].name.split(" − ")[1]
    n = min(comp.result.n for comp in comparisons)
    path = figures.forest(
        rows,
        c.figures,
        c.figure_name("against_baseline"),
        "difference from the baseline (TTA 2)",
        c.stamp(f"baseline {baseline} · n ≥ {n} pairs per comparison"),
        "minus baseline (points, 95% CI)",
        primary=primary,
    )
    return figure_block(
        path,
        f"Each cell against the baseline ({baseline}): difference in mean TTA-2 accuracy (points) with its "
        f"95% interval (unadjusted; {PAIRING_RULE}); zero line in black"
        + (f"; ★ and bold: the primary comparison ({primary})." if primary in set(rows["label"]) else ".")
        + (
            " Some intervals are missing: fewer than two pairs." if not np.isfinite(rows["low"]).all() else ""
        ),
    )


def sequence_forest_figure(
    c: LoadedCampaign, states: list[sequential.ComparisonState], rule: sequential.Rule, primary: str | None
) -> str:
    """After adaptive stopping: each comparison's confidence sequence at its decision point (the
    verdict), since a t-interval on runs that stopping chose undercovers and overstates differences."""
    import pandas as pd

    from harness.report import figures

    rows = pd.DataFrame(
        [{"label": s.name.split(" − ")[0], "diff": s.mean, "low": s.lower, "high": s.upper} for s in states]
    )
    primary = primary.split(" − ")[0] if primary else None
    level = f"{100 * (1 - rule.sequence_alpha):.4g}%"
    path = figures.forest(
        rows,
        c.figures,
        c.figure_name("against_baseline"),
        "difference from the baseline (TTA 2): the verdict",
        c.stamp(f"adaptive · {rule.kind} sequence · α = {rule.alpha:g} over k = {rule.comparisons}"),
        f"minus baseline (points, {level} confidence sequence)",
        primary=primary,
    )
    return figure_block(
        path,
        "Each cell against the baseline after adaptive stopping: the mean paired difference in TTA-2 "
        f"accuracy (points) at the comparison's decision point, with its {level} confidence sequence there "
        f"(the verdict's {rule.kind} sequence, not a t-interval: t-intervals are not valid after adaptive "
        "stopping); zero line in black"
        + (f"; ★ and bold: the primary comparison ({primary})." if primary in set(rows["label"]) else "."),
    )


def sequences_figure(c: LoadedCampaign, states: dict, rule: sequential.Rule) -> str:
    from harness.report import figures

    path = figures.sequences(
        list(states.values()),
        rule.precision,
        c.figures,
        c.figure_name("confidence_sequences"),
        "confidence sequences over seeds (TTA 2)",
        c.stamp(f"α = {rule.alpha:g}, P = {rule.precision:g} points, M = {rule.max_seeds}"),
    )
    return figure_block(
        path,
        "Each comparison's 95% confidence sequence for the mean paired difference (band) and "
        "the running mean (line) against the seeds paired so far, one panel each; dashed "
        f"lines at ±P = ±{rule.precision:g} points; the dotted line marks the decision point, "
        "labelled with the outcome.",
    )
