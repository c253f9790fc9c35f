"""Test-set vs distribution-wise variance at each TTA level, from the same airbench94 runs."""

from __future__ import annotations

import itertools

import numpy as np

from harness import stats
from harness.report import figures
from harness.report.campaign import LEVELS, LoadedCampaign, cell_order
from harness.report.page import Block, figure_block, markdown_table, n_text, p_text
from harness.report.sections import (
    VARIANCE_NOTE,
    compare,
    comparison_table,
    differences_frame,
    variance_frame,
    variance_precision,
    variance_row,
    variance_stats,
)
from harness.spec.grid import Base, Cell, Study


def grid(preset: str, base: Base) -> list[Cell]:
    return [Cell({"epochs": base.config(preset).epochs}, base.config(preset))]


def std_comparisons(c: LoadedCampaign, mask: np.ndarray, cell: str) -> list[dict]:
    """Pitman-Morgan tests of equal variance between TTA levels of the same runs, Holm-adjusted within
    the cell (family: its three TTA-level pairs)."""
    pairs = list(itertools.combinations(LEVELS, 2))
    tests = [
        stats.pitman_morgan(
            c.runs.loc[mask, f"acc_tta{b}"].to_numpy(), c.runs.loc[mask, f"acc_tta{a}"].to_numpy()
        )
        for a, b in pairs
    ]
    adjusted = stats.holm(np.array([t.p for t in tests]))
    return [
        {
            "cell": cell,
            "comparison": f"std TTA {b} / std TTA {a}",
            "ratio": f"{t.ratio:.3f}",
            "runs": n_text(t.n),
            "p (Pitman–Morgan)": p_text(t.p),
            "Holm p": p_text(h),
        }
        for (a, b), t, h in zip(pairs, tests, adjusted)
    ]


def report(c: LoadedCampaign) -> list[Block]:
    blocks: list[Block] = []
    rows, comps, std_rows = [], [], []
    figs: list[str] = []
    for cell in cell_order(c):
        mask = c.mask(cell=cell)
        items = []
        for level in LEVELS:
            v = variance_stats(c, mask, level)
            items.append((level, v))
            rows.append({"cell": cell, "TTA": level, **variance_row(v)})
            blocks.append(variance_precision(v, f"{cell}, TTA {level}"))
        for a, b in itertools.combinations(LEVELS, 2):
            comps.append(
                compare(
                    c,
                    mask,
                    mask,
                    b,
                    a,
                    {"cell": cell, "comparison": f"TTA {b} − TTA {a}"},
                    f"{cell}: TTA {b} − TTA {a}",
                )
            )
        std_rows += std_comparisons(c, mask, cell)
        fig = figures.estimate_lines(
            variance_frame(items, "TTA level"),
            "TTA level",
            "TTA level",
            "standard deviation (percentage points)",
            c.figures,
            c.figure_name(f"variance_by_tta_{len(figs)}"),
            f"variance across runs, {cell}",
            c.stamp(f"n = {int(mask.sum())} runs"),
        )
        figs.append(
            figure_block(
                fig,
                f"{cell}: the test-set std across runs (band: chi-square 95% CI), the "
                f"independent-errors and Theorem-3 predictions, and the distribution-wise std "
                f"(band: bootstrap 95% CI) at TTA levels 0, 1, 2; {int(mask.sum())} runs.",
            )
        )
    table = comparison_table(comps, "TTA level pairs × cells")
    diffs = differences_frame(comps, "comparison", "cell", "cell")
    text = (
        "## Test-set and distribution-wise variance by TTA level\n\n"
        + VARIANCE_NOTE
        + "\n\n"
        + markdown_table(rows)
        + "\n\n"
        + "\n\n".join(figs)
    )
    diff_text = (
        "## TTA levels compared on the same runs\n\nMean accuracy: paired t on the same runs.\n\n" + table[0]
    )
    if len(diffs):
        dfig = figures.paired_differences(
            diffs,
            "comparison",
            "cell",
            "cell",
            "comparison",
            c.figures,
            c.figure_name("tta_differences"),
            "paired differences between TTA levels",
            c.stamp(f"n = {len(c.runs)} runs"),
            numeric_x=False,
        )
        diff_text += "\n\n" + figure_block(
            dfig,
            "Mean accuracy gained between TTA levels on the same runs (percentage "
            "points), with paired 95% t-intervals.",
        )
    diff_text += (
        "\n\nStandard deviations: Pitman–Morgan test of equal variances for paired samples, "
        "Holm-adjusted within each cell (family: the 3 TTA-level pairs of that cell's runs, not the whole table).\n\n"
        + markdown_table(std_rows)
    )
    return [text, diff_text, *table[1:], *blocks]


STUDY = Study("tta_variance", __doc__.strip(), grid, report)
