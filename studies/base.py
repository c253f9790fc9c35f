"""What the built-in studies share: the epochs of their smoke grids (their full grids are their own),
and the accuracy-against-epochs figure of the flip modes that the flip and datasets studies draw."""

from __future__ import annotations

from harness.report import figures
from harness.report.campaign import LoadedCampaign
from harness.report.sections import curve_frame

SMOKE_EPOCHS = (1.0, 2.0)


def flip_accuracy_figure(c: LoadedCampaign, name: str, title: str) -> tuple[str, int]:
    """Mean test accuracy against epochs per flip mode (a panel per TTA level, 95% t-bands), and the
    fewest runs behind any point."""
    curve = curve_frame(c, "flip")
    n = int(curve["n"].min())
    fig = figures.lines_with_bands(
        curve,
        "epochs",
        "flip",
        "level",
        "training epochs",
        "test accuracy (%)",
        c.figures,
        c.figure_name(name),
        title,
        c.stamp(f"n ≥ {n} runs per point"),
    )
    return fig, n
