"""Test-set and distribution-wise variance of airbench94 as training gets longer."""

from __future__ import annotations

from harness.report import figures
from harness.report.campaign import LoadedCampaign
from harness.report.page import Block, figure_block, markdown_table
from harness.report.sections import (
    VARIANCE_NOTE,
    variance_frame,
    variance_precision,
    variance_row,
    variance_stats,
)
from harness.spec.grid import Base, Cell, Study

from .base import SMOKE_EPOCHS

EPOCHS = (2.0, 4.0, 6.0, 9.9, 16.0)


def grid(preset: str, base: Base) -> list[Cell]:
    epochs = EPOCHS if preset == "full" else SMOKE_EPOCHS
    return [Cell({"epochs": e}, base.config(preset, epochs=e)) for e in epochs]


def report(c: LoadedCampaign) -> list[Block]:
    items, rows, notes = [], [], []
    for e in sorted(c.runs["epochs"].unique()):
        v = variance_stats(c, c.mask(epochs=e), 2)
        items.append((float(e), v))
        rows.append({"epochs": f"{e:g}", **variance_row(v)})
        notes.append(variance_precision(v, f"{e:g} epochs, TTA 2"))
    n = min(v.runs for _, v in items)
    fig = figures.estimate_lines(
        variance_frame(items, "epochs"),
        "epochs",
        "training epochs",
        "standard deviation (percentage points)",
        c.figures,
        c.figure_name("variance_vs_epochs"),
        "variance across runs (TTA 2) by training length",
        c.stamp(f"n ≥ {n} runs per point"),
    )
    return [
        "## Variance as training gets longer (TTA 2)\n\n"
        + VARIANCE_NOTE
        + "\n\n"
        + markdown_table(rows)
        + "\n\n"
        + figure_block(
            fig,
            "Test-set std across runs (band: chi-square 95% CI), its independent-errors "
            "and Theorem-3 predictions, and the distribution-wise std (band: bootstrap "
            f"95% CI), against training epochs on a numeric axis; at least {n} runs per "
            "point, TTA 2.",
        ),
        *notes,
    ]


STUDY = Study("variance_vs_epochs", __doc__.strip(), grid, report)
