"""The verdicts a campaign ends with, for the terminal: the primary comparison and every adaptive
comparison, each with its difference, interval, decision and n, read back from the store's records
alone (no predictions), so the table costs nothing beside the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import store
from harness.report.campaign import LoadedCampaign, campaign_from, versions_line


@dataclass(frozen=True)
class Verdict:
    name: str
    kind: str  # "primary", "adaptive" (a comparison under --until decided), or both
    diff: float  # points
    low: float
    high: float
    decision: str
    n: int  # pairs (or runs, unpaired) behind it

    @property
    def interval(self) -> str:
        if np.isnan(self.low) or np.isnan(self.high) or (np.isinf(self.low) and np.isinf(self.high)):
            return "n/a"
        low = f"[{self.low:+.3f}" if np.isfinite(self.low) else "(−∞"
        high = f"{self.high:+.3f}]" if np.isfinite(self.high) else "+∞)"
        return f"{low}, {high}"  # one-sided (a claim's bound) where one side is open


def fixed_decision(low: float, high: float) -> str:
    """A fixed-seed comparison's 95% interval read plainly (unadjusted)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "too few runs"
    return "better" if low > 0 else "worse" if high < 0 else "undecided (interval holds 0)"


def from_comparison(comp, kind: str) -> Verdict:
    r = comp.result
    low, high = 100 * r.diff.low, 100 * r.diff.high
    return Verdict(comp.name, kind, 100 * r.diff.value, low, high, fixed_decision(low, high), int(r.n))


def records_campaign(out: Path) -> LoadedCampaign:
    """A study folder's records as a campaign without predictions (what comparisons need)."""
    runs = store.read_records(out)
    return campaign_from(
        out,
        store.read_manifest(out),
        runs,
        np.zeros((len(runs), 3, 0), np.uint8),
        np.zeros(0, np.int64),
        store.empty_frame().iloc[:0],
    )


def table(verdicts: list[Verdict], campaign: LoadedCampaign | None = None) -> str:
    """A short aligned text table for the terminal, naming the method versions it counts."""
    if not verdicts:
        return ""
    head = ("comparison", "kind", "difference", "95% interval", "decision", "n")
    rows = [(v.name, v.kind, f"{v.diff:+.3f}", v.interval, v.decision, str(v.n)) for v in verdicts]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r):
        return "  ".join(c.ljust(w) if i != 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join(
        [
            "verdicts (TTA-2 accuracy, points):",
            line(head),
            line(tuple("-" * w for w in widths)),
            *map(line, rows),
            *([f"method versions: {versions_line(campaign)}"] if campaign is not None else []),
        ]
    )
