"""A researcher's own experiment: a study file (harness.spec.studyfile) as a Study, its report, and the
adaptive-seed bookkeeping (harness.stats.sequential) read back from the store alone.

The manifest keeps the file's text and the ``--method``/``--set`` values, so ``harness.report``
rebuilds the same study later, even if the file has changed or moved since.
"""
from __future__ import annotations

import tomllib
from functools import partial


from harness.run.adaptive import LEVEL, comparison_name, differences
from harness.spec import studyfile
from harness.stats import sequential
from harness.spec.grid import Study
from harness.report.page import Block
from harness.report.campaign import LoadedCampaign
from harness.report.sections import compare, comparison_table

FILE_PRESET = "file"   # a study file sets its own sizes: --preset applies to built-in studies


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
    adaptive = c.manifest.get("adaptive")
    if adaptive:        # the verdict is the sequences, under the rule fixed at the first round
        rule = sequential.Rule.from_record(adaptive)
        history = sequential.replay(differences(sf, c.runs), rule, int(adaptive.get("workers", 1)))
        blocks.append(sequential.render(history, rule))
    if comparisons:
        primary = comparison_name(sf.primary, sf.baseline) if sf.primary is not None else None
        if adaptive:
            blocks.append("## Against the baseline (descriptive)\n\nTTA-2 accuracy, variant − baseline, paired by "
                          "seed, over every run the adaptive campaign trained.")
        else:
            blocks.append("## Against the baseline\n\nTTA-2 accuracy, variant − baseline, paired by seed.")
        blocks += comparison_table(comparisons, family=f"every cell against the baseline at TTA {LEVEL}",
                                   primary=primary, optional_stopping=bool(adaptive))
    return blocks
