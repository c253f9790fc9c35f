"""Random vs alternating vs no flipping, across training lengths (Jordan 2024, Sec. 3.6)."""

from __future__ import annotations

import itertools

from harness import stats
from harness.report import figures
from harness.report.campaign import LoadedCampaign
from harness.report.claims import time_to_target_section
from harness.report.page import Block, figure_block, markdown_table
from harness.report.sections import compare, comparison_table, differences_frame, epochs_text
from harness.spec.grid import Base, Cell, Study

from .base import SMOKE_EPOCHS, flip_accuracy_figure

EPOCHS = (4.0, 6.0, 8.0, 9.9, 12.0, 16.0)
MODES = ("alternating", "random", "none")
PRIMARY_EPOCHS = 9.9  # the primary comparison: alternating - random at TTA 2, airbench94's length


def grid(preset: str, base: Base) -> list[Cell]:
    epochs = EPOCHS if preset == "full" else SMOKE_EPOCHS
    return [
        Cell({"flip": flip, "epochs": e}, base.config(preset, flip=flip, epochs=e))
        for flip in ("none", "random", "alternating")
        for e in epochs
    ]


def primary_epochs(epochs: list[float]) -> float:
    return PRIMARY_EPOCHS if PRIMARY_EPOCHS in epochs else max(epochs)


def comparisons(c: LoadedCampaign) -> tuple[list, str | None]:
    modes = [m for m in MODES if m in set(c.runs["flip"])]
    epochs = sorted(c.runs["epochs"].unique())
    out = []
    for e in epochs:
        for a, b in itertools.combinations(modes, 2):
            for level in (0, 2):
                ma, mb = c.mask(flip=a, epochs=e), c.mask(flip=b, epochs=e)
                if ma.any() and mb.any():
                    out.append(
                        compare(
                            c,
                            ma,
                            mb,
                            level,
                            level,
                            {"epochs": f"{e:g}", "comparison": f"{a} − {b}", "TTA": level},
                            f"{a} − {b}, TTA {level}, {e:g} epochs",
                        )
                    )
    primary = (
        f"alternating − random, TTA 2, {primary_epochs(epochs):g} epochs"
        if {"alternating", "random"} <= set(modes)
        else None
    )
    return out, primary


def primary_point(primary: str | None) -> dict | None:
    """Where the primary comparison sits in the differences figure."""
    if primary is None:
        return None
    name, tta, epochs = primary.split(", ")
    return {"comparison": name, "TTA": tta, "epochs": float(epochs.split()[0])}


def speedup_rows(c: LoadedCampaign) -> list[dict]:
    """Epochs random flipping needs to match alternating flipping at each of its lengths (TTA 2)."""
    rows = []
    epochs = sorted(c.runs["epochs"].unique())
    curve = {e: c.runs.loc[c.mask(flip="random", epochs=e), "acc_tta2"].to_numpy() for e in epochs}
    seeds = {e: c.runs.loc[c.mask(flip="random", epochs=e), "seed"].to_numpy() for e in epochs}
    curve = {e: v for e, v in curve.items() if len(v)}
    for e in epochs:
        m = c.mask(flip="alternating", epochs=e)
        if m.sum() < 2 or len(curve) < 2:
            continue
        eq = stats.equivalent_epochs(
            curve,
            c.runs.loc[m, "acc_tta2"].to_numpy(),
            resamples=1000,
            curve_seeds={k: seeds[k] for k in curve},
            target_seeds=c.runs.loc[m, "seed"].to_numpy(),
        )
        rows.append(
            {
                "alternating epochs": f"{e:g}",
                "alternating TTA 2 %": f"{100 * c.runs.loc[m, 'acc_tta2'].mean():.2f}",
                "random-flip epochs to match [95% CI]": epochs_text(eq),
                "speedup [95% CI]": epochs_text(eq, reference=float(e)),
            }
        )
    return rows


def report(c: LoadedCampaign) -> list[Block]:
    fig, n = flip_accuracy_figure(c, "accuracy_vs_epochs", "mean test accuracy by flip mode, 95% t-intervals")
    comps, primary = comparisons(c)
    table = comparison_table(
        comps, "3 flip-mode pairs × epochs × TTA 0/2", primary, declared_in="this built-in study's definition"
    )
    diffs = differences_frame(comps, "epochs", "comparison", "TTA")
    blocks: list[Block] = [
        "## Accuracy against epochs\n\n"
        + figure_block(
            fig,
            f"Mean test accuracy against training epochs for each flip mode, with 95% t-intervals (dodged); "
            f"left TTA 0, right TTA 2, each panel with its own y-axis; at least {n} runs per point.",
        )
    ]
    text = (
        "## Differences between flip modes (paired by seed)\n\n"
        "Mean of per-seed differences with its t-interval; r is the across-seed correlation of the two modes.\n\n"
    )
    if len(diffs):
        diffs["epochs"] = diffs["epochs"].astype(float)
        diffs["TTA"] = "TTA " + diffs["TTA"].astype(str)
        dfig = figures.paired_differences(
            diffs,
            "epochs",
            "comparison",
            "TTA",
            "training epochs",
            c.figures,
            c.figure_name("flip_differences"),
            "paired differences between flip modes, 95% CI",
            c.stamp(f"n ≥ {n} pairs per point"),
            primary=primary_point(primary),
        )
        text += (
            table[0]
            + "\n\n"
            + figure_block(
                dfig,
                "Differences in test accuracy between flip modes (percentage points), the mean of per-seed "
                "differences with its 95% t-interval, against training epochs; zero line in black; TTA 0 "
                "left, TTA 2 right, each with its own y-axis"
                + (f"; the star marks the primary comparison ({primary})." if primary else "."),
            )
        )
    else:
        text += table[0]
    blocks += [text, *table[1:]]
    speed = speedup_rows(c)
    blocks.append(
        "## Equivalent-epoch speedup of alternating over random flip (TTA 2)\n\n"
        "Epochs random flipping needs to match alternating flipping's mean accuracy: random flip's curve "
        "made monotone and interpolated linearly in log-epochs; 95% bootstrap interval over seeds "
        "(resampled jointly across cells); '> E' / '< E' where the bootstrap leaves the grid. "
        "Speedup = matching epochs / alternating epochs.\n\n" + markdown_table(speed)
    )
    seconds = time_to_target_section(c.runs, "flip", ["alternating", "random", "none"])
    if seconds:
        blocks.append(seconds)
    return blocks


def verdicts(c: LoadedCampaign) -> list:
    """The primary comparison, alternating − random at TTA 2 and the primary epochs."""
    from harness.report.verdicts import from_comparison

    comps, primary = comparisons(c)
    return [from_comparison(comp, "primary") for comp in comps if comp.name == primary]


STUDY = Study("flip_vs_alternating", __doc__.strip(), grid, report, verdicts=verdicts)
