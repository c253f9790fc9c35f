"""A researcher's own experiment: a study file (harness.spec.studyfile) as a Study, its report, and the
adaptive-seed bookkeeping (harness.stats.sequential) read back from the store alone.

The manifest keeps the file's text and the ``--method``/``--set`` values, so ``harness.report``
rebuilds the same study later, even if the file has changed or moved since.
"""

from __future__ import annotations

from functools import partial

import tomllib

from harness.report.campaign import LoadedCampaign
from harness.report.page import Block, figure_block
from harness.report.sections import compare, comparison_table
from harness.run.adaptive import LEVEL, comparison_name, differences
from harness.spec import studyfile
from harness.spec.grid import Study
from harness.stats import sequential

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
        f"## Study file\n\n`{sf.path}`: {sf.description}. Method {sf.method}; "
        f"{len(sf.cells)} cells"
        + (
            f", baseline `{sf.baseline.label}`."
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
                "## Against the baseline (descriptive)\n\nTTA-2 accuracy, variant − baseline, paired by "
                "seed, over every run the adaptive campaign trained."
            )
        else:
            blocks.append("## Against the baseline\n\nTTA-2 accuracy, variant − baseline, paired by seed.")
        table = comparison_table(
            comparisons,
            family=f"every cell against the baseline at TTA {LEVEL}",
            primary=primary,
            optional_stopping=bool(adaptive),
        )
        blocks.append(table[0] + "\n\n" + forest_figure(c, comparisons, primary))
        blocks += table[1:]
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
    if adaptive:
        rule = sequential.Rule.from_record(adaptive)
        history = sequential.replay(differences(sf, c.runs), rule, int(adaptive.get("workers", 1)))
        if not history:
            return []
        return [
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
    out = []
    for cell, baseline in sf.comparisons:
        name = comparison_name(cell, baseline)
        a, b = c.mask(cell=cell.label), c.mask(cell=baseline.label)
        if name == primary and a.any() and b.any():
            out.append(from_comparison(compare(c, a, b, LEVEL, LEVEL, {}, name), "primary"))
    return out


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
        f"Each cell against the baseline ({baseline}): mean of per-seed differences in TTA-2 accuracy "
        "(points) with its 95% t-interval (unadjusted); zero line in black"
        + (f"; ★ and bold: the primary comparison ({primary})." if primary in set(rows["label"]) else ".")
        + (
            " Some intervals are missing: fewer than two pairs." if not np.isfinite(rows["low"]).all() else ""
        ),
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
