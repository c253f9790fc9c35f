"""Flip none / random / alternating across training lengths on one dataset (CIFAR-10, CIFAR-100,
SVHN or an image folder, from --data): does flipping help at all here, and does alternating beat
random where it does? Run it once per dataset (its own --store and --out); the paper's claim for
alternating flip is conditional on flipping helping, which SVHN's digits may not satisfy."""

from __future__ import annotations

from harness.report.campaign import LoadedCampaign
from harness.report.page import Block, figure_block, markdown_table
from harness.report.sections import Comparison, compare, comparison_table
from harness.spec.grid import Base, Cell, Study

from .base import SMOKE_EPOCHS, flip_accuracy_figure

EPOCHS = (4.0, 6.0, 9.9, 16.0)
MODES = ("none", "random", "alternating")
# (a, b, what a − b asks) at TTA 0, where the test images are never flipped
QUESTIONS = (
    ("random", "none", "does flipping help at all?"),
    ("alternating", "none", "does alternating flipping help?"),
    ("alternating", "random", "does alternating beat random?"),
)


def grid(preset: str, base: Base) -> list[Cell]:
    epochs = EPOCHS if preset == "full" else SMOKE_EPOCHS
    return [
        Cell({"flip": flip, "epochs": e}, base.config(preset, flip=flip, epochs=e))
        for flip in MODES
        for e in epochs
    ]


def comparisons(c: LoadedCampaign) -> list[Comparison]:
    """Per epoch count, the three paired differences of QUESTIONS at TTA 0."""
    out = []
    for e in sorted(c.runs["epochs"].unique()):
        for a, b, question in QUESTIONS:
            ma, mb = c.mask(flip=a, epochs=e), c.mask(flip=b, epochs=e)
            if ma.any() and mb.any():
                labels = {"epochs": f"{e:g}", "comparison": f"{a} − {b}", "question": question}
                out.append(compare(c, ma, mb, 0, 0, labels, f"{a} − {b}, TTA 0, {e:g} epochs"))
    return out


def answer(comps: list[Comparison], name: str) -> str:
    """'yes' / 'no (worse)' / 'not resolved' from where the 95% interval of the difference lies."""
    found = [x for x in comps if x.labels["comparison"] == name]
    if not found:
        return "not measured"
    lows = [x.result.diff.low for x in found]
    highs = [x.result.diff.high for x in found]
    if all(lo > 0 for lo in lows):
        return "yes, at every length"
    if any(lo > 0 for lo in lows):
        return "yes, at " + ", ".join(x.labels["epochs"] for x in found if x.result.diff.low > 0) + " epochs"
    if any(hi < 0 for hi in highs):
        return (
            "no: worse at "
            + ", ".join(x.labels["epochs"] for x in found if x.result.diff.high < 0)
            + " epochs"
        )
    return "not resolved (every interval holds 0)"


def summary(c: LoadedCampaign, comps: list[Comparison]) -> str:
    helps = answer(comps, "random − none")
    beats = answer(comps, "alternating − random")
    conditional = (
        "Flipping helps here, so the paper's question applies: "
        if helps.startswith("yes")
        else "Flipping does not clearly help here, so a difference between random and alternating flipping "
        "says little about the paper's claim (which is conditional on flipping helping): "
    )
    return (
        f"## {c.data_name}: the answers (TTA 0, paired by seed)\n\n"
        + markdown_table(
            [
                {"question": "does flipping help at all? (random − none)", "answer": helps},
                {"question": "does alternating beat random? (alternating − random)", "answer": beats},
            ]
        )
        + f"\n\n{conditional}alternating − random is '{beats}'. TTA 0 throughout: TTA 1 and 2 flip "
        "the test images, which would mix the test-time effect of flipping into the training-time one."
    )


def report(c: LoadedCampaign) -> list[Block]:
    fig, n = flip_accuracy_figure(
        c, "datasets_accuracy", f"{c.data_name}: mean test accuracy by flip mode, 95% t-intervals"
    )
    comps = comparisons(c)
    table = comparison_table(comps, "3 flip questions × epochs, TTA 0")
    return [
        summary(c, comps),
        f"## {c.data_name}: accuracy against epochs\n\n"
        + figure_block(
            fig,
            f"{c.data_name}: mean test accuracy against training epochs for each flip mode, 95% "
            f"t-intervals; left TTA 0, right TTA 2; at least {n} runs per point.",
        ),
        f"## {c.data_name}: paired differences between flip modes (TTA 0)\n\n" + table[0],
        *table[1:],
    ]


def verdicts(c: LoadedCampaign) -> list:
    """Per epoch count: does flipping help (random − none), and alternating − random."""
    from harness.report.verdicts import from_comparison

    return [
        from_comparison(x, "flipping helps" if x.labels["comparison"] == "random − none" else "secondary")
        for x in comparisons(c)
        if x.labels["comparison"] != "alternating − none"
    ]


STUDY = Study(
    "datasets",
    "Flip none / random / alternating across epochs on the --data dataset: does flipping help at all, and does alternating beat random?",
    grid,
    report,
    verdicts=verdicts,
)
