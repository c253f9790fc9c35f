"""Derandomized augmentation beyond alternating flip, at the paper's 9.9 epochs: alternating
translation (each image walks its own permutation of the crop offsets), and the epoch k at which
flipping switches from random to alternating (k = 1, 2, 3, 5). Each variant against airbench94's
baseline (alternating flip, random translation): paired differences, and the epochs the baseline
needs to match it (equivalent epochs, from the baseline's curve over training lengths)."""

from __future__ import annotations

from harness import stats
from harness.report import figures
from harness.report.campaign import LoadedCampaign
from harness.report.page import Block, figure_block, markdown_table
from harness.report.sections import Comparison, compare, comparison_table, differences_frame, epochs_text
from harness.spec.grid import Base, Cell, Study

from .base import SMOKE_EPOCHS

PRIMARY_EPOCHS = 9.9
BASELINE_EPOCHS = (6.0, 8.0, 9.9, 12.0, 14.0)  # the baseline's curve, for equivalent epochs
SWITCH_EPOCHS = (1, 2, 3, 5)
SMOKE_SWITCH_EPOCHS = (1,)  # two smoke epochs: a later switch would be random flipping throughout


def variants(preset: str) -> list[dict]:
    """The factors of every variant (the baseline excluded)."""
    switches = SWITCH_EPOCHS if preset == "full" else SMOKE_SWITCH_EPOCHS
    return [
        {"variant": "alternating translation", "translate_mode": "alternating", "flip_switch_epoch": 0}
    ] + [
        {"variant": f"flip switch at epoch {k}", "translate_mode": "random", "flip_switch_epoch": k}
        for k in switches
    ]


def grid(preset: str, base: Base) -> list[Cell]:
    curve = BASELINE_EPOCHS if preset == "full" else SMOKE_EPOCHS
    at = PRIMARY_EPOCHS if preset == "full" else max(SMOKE_EPOCHS)
    baseline = {"translate_mode": "random", "flip_switch_epoch": 0, "flip": "alternating"}
    cells = [
        Cell({"variant": "baseline", "epochs": e}, base.config(preset, epochs=e, **baseline)) for e in curve
    ]
    for v in variants(preset):
        fields = {k: v[k] for k in ("translate_mode", "flip_switch_epoch")}
        cells.append(
            Cell(
                {"variant": v["variant"], "epochs": at},
                base.config(preset, epochs=at, flip="alternating", **fields),
            )
        )
    return cells


def primary_epochs(c: LoadedCampaign) -> float:
    epochs = sorted(c.runs.loc[c.runs["variant"] != "baseline", "epochs"].unique())
    return float(epochs[-1]) if epochs else PRIMARY_EPOCHS


def comparisons(c: LoadedCampaign) -> list[Comparison]:
    """Each variant − the baseline at the same length, paired by seed, at TTA 0 and 2."""
    e = primary_epochs(c)
    base = c.mask(variant="baseline", epochs=e)
    out = []
    for name in [v for v in dict.fromkeys(c.runs["variant"]) if v != "baseline"]:
        mine = c.mask(variant=name, epochs=e)
        if not (mine.any() and base.any()):
            continue
        for level in (0, 2):
            labels = {"variant": name, "comparison": f"{name} − baseline", "TTA": level}
            out.append(
                compare(c, mine, base, level, level, labels, f"{name} − baseline, TTA {level}, {e:g} epochs")
            )
    return out


def equivalent_rows(c: LoadedCampaign) -> list[dict]:
    """Epochs the baseline needs to match each variant's mean accuracy (TTA 2)."""
    rows: list[dict] = []
    curve_epochs = sorted(c.runs.loc[c.mask(variant="baseline"), "epochs"].unique())
    curve = {e: c.runs.loc[c.mask(variant="baseline", epochs=e), "acc_tta2"].to_numpy() for e in curve_epochs}
    seeds = {e: c.runs.loc[c.mask(variant="baseline", epochs=e), "seed"].to_numpy() for e in curve_epochs}
    if len(curve) < 2:
        return rows
    e = primary_epochs(c)
    for name in [v for v in dict.fromkeys(c.runs["variant"]) if v != "baseline"]:
        m = c.mask(variant=name, epochs=e)
        if m.sum() < 2:
            continue
        eq = stats.equivalent_epochs(
            curve,
            c.runs.loc[m, "acc_tta2"].to_numpy(),
            resamples=1000,
            curve_seeds=seeds,
            target_seeds=c.runs.loc[m, "seed"].to_numpy(),
        )
        rows.append(
            {
                "variant": name,
                f"TTA 2 % at {e:g} epochs": f"{100 * c.runs.loc[m, 'acc_tta2'].mean():.2f}",
                "baseline epochs to match [95% CI]": epochs_text(eq),
                "worth (x its epochs) [95% CI]": epochs_text(eq, reference=e),
            }
        )
    return rows


def report(c: LoadedCampaign) -> list[Block]:
    comps = comparisons(c)
    table = comparison_table(comps, "variants × TTA 0/2")
    blocks: list[Block] = [
        f"## {c.data_name}: each variant against the baseline (paired by seed)\n\n" + table[0]
    ]
    diffs = differences_frame(comps, "variant", "comparison", "TTA")
    if len(diffs):
        n = min(x.result.n for x in comps)
        diffs["TTA"] = "TTA " + diffs["TTA"].astype(str)
        fig = figures.paired_differences(
            diffs,
            "variant",
            "comparison",
            "TTA",
            "variant",
            c.figures,
            c.figure_name("derandomized_differences"),
            f"{c.data_name}: variant − baseline, 95% CI",
            c.stamp(f"n ≥ {n} pairs per point"),
            numeric_x=False,
        )
        blocks.append(
            figure_block(
                fig,
                "Difference in test accuracy of each variant from the baseline (percentage points), the mean "
                "of per-seed differences with its 95% t-interval; TTA 0 left, TTA 2 right.",
            )
        )
    blocks += table[1:]
    rows = equivalent_rows(c)
    blocks.append(
        "## Equivalent epochs of each variant (TTA 2)\n\n"
        "Epochs the baseline needs to match the variant's mean accuracy: the baseline's curve over "
        "training lengths made monotone and interpolated linearly in log-epochs; 95% bootstrap "
        "interval over seeds. Worth = matching epochs / the variant's epochs (above 1: the variant "
        "is worth more than its epochs of the baseline).\n\n"
        + (markdown_table(rows) if rows else "Not enough runs (or baseline lengths) for equivalent epochs.")
    )
    return blocks


def verdicts(c: LoadedCampaign) -> list:
    from harness.report.verdicts import from_comparison

    return [from_comparison(x, "secondary") for x in comparisons(c) if x.labels["TTA"] == 2]


STUDY = Study(
    "derandomized",
    "Alternating translation and random-to-alternating flip switch epochs (1, 2, 3, 5) against airbench94 at 9.9 epochs.",
    grid,
    report,
    verdicts=verdicts,
)
