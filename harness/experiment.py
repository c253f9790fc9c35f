"""A researcher's own experiment: a study file (harness.studyfile) as a Study, its report, and the
adaptive-seed bookkeeping (harness.sequential) read back from the store alone.

The manifest keeps the file's text and the ``--method``/``--set`` values, so ``harness.report``
rebuilds the same study later, even if the file has changed or moved since.
"""
from __future__ import annotations

import tomllib
from functools import partial

import numpy as np
import pandas as pd

from . import sequential, studyfile
from .grid import Cell, Study
from .page import Block
from .report import LoadedCampaign
from .sections import compare, comparison_table

LEVEL = 2          # comparisons and decisions use TTA-2 accuracy, the method's headline number
FILE_PRESET = "file"   # a study file sets its own sizes: --preset applies to built-in studies


def comparison_name(cell: Cell, baseline: Cell) -> str:
    return f"{cell.label} − {baseline.label}"


def as_study(sf: studyfile.StudyFile) -> Study:
    cells = list(sf.cells)
    return Study(sf.name, sf.description, grid=lambda preset, base: cells, report=partial(report, sf),
                 presets=(FILE_PRESET,))


def manifest_entry(sf: studyfile.StudyFile, text: str, overrides: dict, method: str | None) -> dict:
    """What the manifest keeps to rebuild this study: the file's text and the command-line changes."""
    return {"path": sf.path, "text": text, "set": overrides, "method": method}


def from_manifest(manifest: dict) -> Study | None:
    """The study a manifest's ``study_file`` entry describes, or None when it has none."""
    entry = manifest.get("study_file")
    if not entry:
        return None
    sf = studyfile.parse(tomllib.loads(entry["text"]), entry["path"], entry.get("set") or {}, entry.get("method"))
    return as_study(sf)


def accuracy_by_seed(runs: pd.DataFrame, cell: Cell) -> dict[int, float]:
    """TTA-2 accuracy in points of one cell's runs, by seed."""
    part = runs.loc[runs["cell"] == cell.label, ["seed", f"acc_tta{LEVEL}"]] if len(runs) else runs
    return {int(s): 100 * float(a) for s, a in zip(part["seed"], part[f"acc_tta{LEVEL}"])} if len(part) else {}


def differences(sf: studyfile.StudyFile, runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per comparison, variant − baseline per seed (points), seeds 0, 1, ... while both exist."""
    if not sf.comparisons:
        return {}
    base = accuracy_by_seed(runs, sf.baseline)
    return {comparison_name(cell, baseline): sequential.paired_differences(base, accuracy_by_seed(runs, cell))
            for cell, baseline in sf.comparisons}


def report(sf: studyfile.StudyFile, c: LoadedCampaign) -> list[Block]:
    """Every cell against the baseline, paired by seed (Holm over the family, the primary unadjusted),
    and for an adaptive campaign the rule, each comparison's sequence and its decision."""
    blocks: list[Block] = [f"## Study file\n\n`{sf.path}`: {sf.description}. Method {sf.method}; "
                           f"{len(sf.cells)} cells" + (f", baseline `{sf.baseline.label}`." if sf.baseline else
                                                       "; no cell equals the base config, so no baseline.")]
    comparisons = []
    for cell, baseline in sf.comparisons:
        a, b = c.mask(cell=cell.label), c.mask(cell=baseline.label)
        if a.any() and b.any():
            name = comparison_name(cell, baseline)
            comparisons.append(compare(c, a, b, LEVEL, LEVEL, {"comparison": name, "TTA": LEVEL}, name))
    if comparisons:
        primary = comparison_name(sf.primary, sf.baseline) if sf.primary is not None else None
        blocks.append("## Against the baseline\n\nTTA-2 accuracy, variant − baseline, paired by seed.")
        blocks += comparison_table(comparisons, family=f"every cell against the baseline at TTA {LEVEL}", primary=primary)
    adaptive = c.manifest.get("adaptive")
    if adaptive:
        rule = sequential.Rule(adaptive["precision"], adaptive["max_seeds"], min_seeds=adaptive["min_seeds"])
        history = sequential.replay(differences(sf, c.runs), rule, int(adaptive.get("workers", 1)))
        blocks.append(sequential.render(history, rule))
    return blocks
