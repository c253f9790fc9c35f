"""Each feature of airbench94 turned off in turn, and the epochs each variant needs to reach the target."""

from __future__ import annotations

import pandas as pd

from harness import stats
from harness.report import figures
from harness.report.campaign import LoadedCampaign
from harness.report.page import Block, figure_block, markdown_table, pct
from harness.report.sections import compare, comparison_table, differences_frame, epochs_text
from harness.spec.grid import Base, Cell, Study

from .base import SMOKE_EPOCHS

TARGET_EPOCHS = 9.9  # the target: the baseline's mean TTA-2 accuracy at airbench94's length
DEFAULT_EPOCHS = (8.0, 9.9, 12.0, 16.0, 20.0)
# Each variant's grid reaches past the epochs it needs to match the target (whitening is worth the
# most, TTA next); the baseline's own grid also serves the "no TTA" variant (its TTA-0 accuracy).
EPOCHS = {"baseline": (6.0, 8.0, 9.9, 12.0, 16.0, 20.0), "no whitening": (9.9, 12.0, 16.0, 20.0, 24.0, 32.0)}
VARIANTS: dict[str, dict[str, object]] = {
    "baseline": {},
    "no whitening": {"whiten": False},
    "no identity init": {"identity_init": False},
    "no bias lr scaling": {"bias_scaler": 1.0},
    "no lookahead": {"lookahead": False},
    "random flip": {"flip": "random"},
}
NO_TTA = "no TTA"


def grid(preset: str, base: Base) -> list[Cell]:
    def epochs(name: str) -> tuple[float, ...]:
        return EPOCHS.get(name, DEFAULT_EPOCHS) if preset == "full" else SMOKE_EPOCHS

    return [
        Cell({"variant": name, "epochs": e}, base.config(preset, epochs=e, **changes))
        for name, changes in VARIANTS.items()
        for e in epochs(name)
    ]


def target_epochs(baseline: pd.DataFrame) -> float:
    return TARGET_EPOCHS if (baseline["epochs"] == TARGET_EPOCHS).any() else float(baseline["epochs"].max())


def variant_runs(c: LoadedCampaign) -> dict[str, pd.DataFrame]:
    """Per variant: epochs, seed, accuracy (TTA 2; the baseline's TTA 0 for 'no TTA')."""
    present = set(c.runs["variant"])
    order = [v for v in VARIANTS if v in present] + sorted(present - set(VARIANTS))
    out = {
        v: c.runs.loc[c.runs["variant"] == v, ["epochs", "seed", "acc_tta2"]].rename(
            columns={"acc_tta2": "acc"}
        )
        for v in order
    }
    if "baseline" in out:
        out[NO_TTA] = c.runs.loc[c.runs["variant"] == "baseline", ["epochs", "seed", "acc_tta0"]].rename(
            columns={"acc_tta0": "acc"}
        )
    return out


def report(c: LoadedCampaign) -> list[Block]:
    if "baseline" not in set(c.runs["variant"]):
        return ["## Ablation\n\n_no baseline runs yet_"]
    runs = variant_runs(c)
    base = runs["baseline"]
    t_epochs = target_epochs(base)
    target = base[base["epochs"] == t_epochs]
    rows, curves = [], []
    for variant, part in runs.items():
        groups = {float(str(e)): g for e, g in part.groupby("epochs")}
        row = {"variant": variant, **{f"{e:g} ep %": pct(g["acc"].mean()) for e, g in sorted(groups.items())}}
        if variant == "baseline":
            row["epochs to reach target [95% CI]"] = f"{t_epochs:g} (the target)"
        elif len(groups) >= 2 and len(target) >= 2:
            eq = stats.equivalent_epochs(
                {e: g["acc"].to_numpy() for e, g in groups.items()},
                target["acc"].to_numpy(),
                curve_seeds={e: g["seed"].to_numpy() for e, g in groups.items()},
                target_seeds=target["seed"].to_numpy(),
            )
            row["epochs to reach target [95% CI]"] = epochs_text(eq)
            row[f"cost vs {t_epochs:g} ep [95% CI]"] = epochs_text(eq, reference=t_epochs)
        rows.append(row)
        for e, g in groups.items():
            m = stats.mean_ci(g["acc"].to_numpy())
            curves.append(
                {
                    "variant": variant,
                    "epochs": e,
                    "mean": 100 * m.value,
                    "low": 100 * m.low,
                    "high": 100 * m.high,
                }
            )
    comps = []
    for variant in runs:
        if variant == "baseline":
            continue
        for e in sorted(set(runs[variant]["epochs"]) & set(base["epochs"])):
            level_a, mask_a = (
                (0, c.mask(variant="baseline", epochs=e))
                if variant == NO_TTA
                else (2, c.mask(variant=variant, epochs=e))
            )
            comps.append(
                compare(
                    c,
                    mask_a,
                    c.mask(variant="baseline", epochs=e),
                    level_a,
                    2,
                    {"variant": variant, "epochs": f"{e:g}", "panel": "variant − baseline"},
                    f"{variant} − baseline, {e:g} epochs",
                )
            )
    table = comparison_table(comps, "variants × epochs shared with the baseline")
    n = int(min(len(g) for p in runs.values() for _, g in p.groupby("epochs")))
    target_pct = 100 * target["acc"].mean()
    fig = figures.small_multiples(
        pd.DataFrame(curves),
        "epochs",
        "variant",
        "baseline",
        target_pct,
        t_epochs,
        "training epochs",
        "test accuracy (%)",
        c.figures,
        c.figure_name("ablation"),
        "each feature removed in turn (TTA 2; 'no TTA': TTA 0), 95% CI bands",
        c.stamp(f"n ≥ {n} runs per point"),
    )
    text = (
        f"## Ablation: epochs each variant needs to reach the baseline\n\n"
        f"Target: the baseline's mean TTA-2 accuracy at {t_epochs:g} epochs ({target_pct:.2f}%, "
        f"{len(target)} runs). Each variant's curve made monotone and interpolated linearly in log-epochs; 95% "
        f"bootstrap interval over seeds; '> E' where the bootstrap leaves the grid. Cost: epochs needed / "
        f"{t_epochs:g}.\n\n"
        + markdown_table(rows)
        + "\n\n"
        + figure_block(
            fig,
            f"One panel per removed feature: its mean accuracy against training epochs (colour, "
            f"95% CI band) beside the baseline's (grey), and the target (dashed, baseline at "
            f"{t_epochs:g} epochs); each panel with its own y-axis; at least {n} runs per point.",
        )
    )
    diffs = differences_frame(comps, "epochs", "variant", "panel")
    text += (
        "\n\n### Each variant against the baseline at the same epochs (paired by seed, TTA 2)\n\n" + table[0]
    )
    if len(diffs):
        diffs["epochs"] = diffs["epochs"].astype(float)
        dfig = figures.paired_differences(
            diffs,
            "epochs",
            "variant",
            "panel",
            "training epochs",
            c.figures,
            c.figure_name("ablation_differences"),
            "variant − baseline at equal epochs, 95% CI",
            c.stamp(f"n ≥ {n} pairs"),
        )
        text += "\n\n" + figure_block(
            dfig,
            "Accuracy of each variant minus the baseline's at the same epochs "
            "(percentage points), mean of per-seed differences with its 95% "
            "t-interval; one colour per variant.",
        )
    return [text, *table[1:]]


STUDY = Study("ablation", __doc__.strip(), grid, report)
