"""Pieces of a report page: number formatting, markdown tables, figure blocks with captions, and
the notes a study hands back for the shared precision section."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from harness.stats import Estimate
from harness.stats.text import cell, one_line

SMALL_N = 10  # cells below this many runs get a visible warning


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction shown in percentage points."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{100 * x:.{digits}f}"


def ci(e: Estimate, digits: int = 2, scale: float = 100.0) -> str:
    """'94.01 [93.99, 94.03]' (percentage points by default); one-sided bounds as '≤ x' / '≥ x'."""

    def num(v: float) -> str:
        return f"{scale * v:.{digits}f}"

    if not np.isfinite(e.value):
        return "n/a"
    if np.isnan(e.low) or np.isnan(e.high):  # refused: below the n where its coverage holds, or tied runs
        return f"{num(e.value)} [n too small]"
    low = "−∞" if e.low == -np.inf else num(e.low)
    high = "∞" if e.high == np.inf else num(e.high)
    return f"{num(e.value)} [{low}, {high}]"


def fraction_ci(e: Estimate, digits: int = 4) -> str:
    """A fraction (not points) with its interval."""
    return ci(e, digits, scale=1.0)


def p_text(p: float) -> str:
    return "n/a" if not np.isfinite(p) else ("<1e-300" if p < 1e-300 else f"{p:.2g}")


def n_text(n: int) -> str:
    """A run count, flagged when below SMALL_N."""
    return f"{n} ⚠" if n < SMALL_N else str(n)


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_no runs_"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def figure_block(path: str, caption: str) -> str:
    """A figure and its caption (each on one line, whatever names the caption holds); report.py
    numbers the captions in page order."""
    caption = one_line(caption)
    alt = re.sub(r"[\[\]()\\]", "", caption.split(".")[0])
    return f"![{alt}]({one_line(path)})\n\n*Figure: {caption}*"


def number_figures(text: str) -> str:
    counter = iter(range(1, 10_000))
    return re.sub(r"\*Figure: ", lambda m: f"*Figure {next(counter)}: ", text)


@dataclass(frozen=True)
class ComparisonPrecision:
    """What one comparison can resolve: CI half-width and the minimum detectable difference."""

    comparison: str
    n: int
    paired: bool
    sd: float  # sd of per-pair differences, or per-run sd when unpaired
    half_width: float
    detectable: float  # at 80% power, two-sided alpha 0.05


@dataclass(frozen=True)
class VariancePrecision:
    """What the runs can say about the distribution-wise std."""

    where: str
    std: Estimate  # signed std and its interval, as fractions
    runs: int
    runs_to_exclude_zero: float
    runs_for_power: float  # 80% power to exclude 0


Block = str | ComparisonPrecision | VariancePrecision
