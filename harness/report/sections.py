"""Analysis tools the studies compose into their report sections: comparisons paired by seed with
Holm's adjustment, variance decompositions, calibration, equivalent epochs. Each returns markdown
and the precision notes the shared precision section prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness import stats
from harness.report.campaign import LoadedCampaign
from harness.report.page import (
    ComparisonPrecision,
    VariancePrecision,
    ci,
    markdown_table,
    n_text,
    p_text,
    pct,
)
from harness.stats.robust import diverged_mask
from harness.stats.text import plain

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; annotations here are never evaluated
    from typing import Unpack

# ----------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    labels: dict  # what the table shows to identify the comparison
    name: str  # one-line name for the precision section
    result: stats.Difference
    set_aside: tuple[int, ...] = ()  # seeds of runs flagged diverged and left out (harness.stats.robust)


PAIRING_RULE = (
    "paired t where the two sides hold exactly the same seeds, Welch's test on every run of both "
    "sides otherwise"
)


def pairing(seeds_a, seeds_b) -> tuple[bool, str]:
    """Whether two sets of runs are paired by seed (exactly the same seeds on both: runs with one seed
    share their init, data-order and augmentation streams), and how a row says it was compared.
    Pairing the shared seeds alone would silently drop the other runs: 100 runs a side sharing 3
    seeds would be judged on 3 pairs."""
    sa, sb = set(seeds_a), set(seeds_b)
    if sa == sb:
        return True, f"paired: both sides hold the same {len(sa)} seeds"
    shared = len(sa & sb)
    return False, (
        f"Welch on all {len(sa)} + {len(sb)} runs (the sides share {shared} of their seeds; "
        f"pairing them would drop {len(sa) + len(sb) - 2 * shared} runs)"
        if shared
        else f"Welch on all {len(sa)} + {len(sb)} runs (no shared seeds)"
    )


def compare(
    c: LoadedCampaign,
    mask_a: np.ndarray,
    mask_b: np.ndarray,
    level_a: int,
    level_b: int,
    labels: dict,
    name: str,
) -> Comparison:
    """mean(a) - mean(b) of TTA-level accuracies by PAIRING_RULE (two TTA levels of one cell are the
    same runs, so they pair); the table's test column says which was applied."""
    a = c.runs.loc[mask_a, ["seed", f"acc_tta{level_a}"]].set_axis(["seed", "a"], axis=1)
    b = c.runs.loc[mask_b, ["seed", f"acc_tta{level_b}"]].set_axis(["seed", "b"], axis=1)
    is_paired = pairing(a["seed"], b["seed"])[0]
    flag_a, flag_b = diverged_mask(a["a"].to_numpy()), diverged_mask(b["b"].to_numpy())
    out_a, out_b = set(a["seed"][flag_a]), set(b["seed"][flag_b])
    if is_paired:  # a pair goes with either of its runs, so the two sides keep the same seeds
        out_a = out_b = out_a | out_b
    a, b = a[~a["seed"].isin(out_a)], b[~b["seed"].isin(out_b)]
    if is_paired and len(a) >= 2:
        both = a.merge(b, on="seed")
        result = stats.paired(both["a"].to_numpy(), both["b"].to_numpy())
    else:
        result = stats.welch(a["a"].to_numpy(), b["b"].to_numpy())
    return Comparison(labels, name, result, tuple(sorted(int(x) for x in out_a | out_b)))


def precision_of(comp: Comparison) -> ComparisonPrecision:
    r = comp.result
    if r.paired:
        detectable = stats.minimum_detectable_difference(r.sd, r.n, paired=True)
    else:  # Welch's test on the group sizes it had (unequal groups: not the equal-n formula)
        detectable = stats.minimum_detectable_difference(
            r.sd, r.n_a or r.n // 2, paired=False, n_b=r.n_b or r.n // 2
        )
    return ComparisonPrecision(comp.name, r.n, r.paired, r.sd, r.diff.half_width, detectable)


AFTER_STOPPING = (
    "Fixed-n t-tests are **not valid after optional stopping**: the seeds were added until a "
    "confidence sequence decided, so a t-test on the runs that stopping left rejects a true null "
    "too often and overstates the differences it decides (winner's curse). The verdict is the "
    "confidence sequences; the differences here are descriptive only, with no p-values."
)


def comparison_table(
    comparisons: list[Comparison],
    family: str,
    primary: str | None = None,
    optional_stopping: bool = False,
    declared_in: str = "the study file",
) -> tuple[str, Unpack[tuple[ComparisonPrecision, ...]]]:
    """The table's text, then each comparison's precision block (none after optional stopping).
    A table of comparisons with Holm-adjusted p-values over the table's tests (the family, named);
    the study's primary comparison, if named here, is left out of the family and labelled unadjusted.
    ``declared_in`` says where the primary was fixed (a study file, or a built-in study's code), so
    the note never claims a file the user did not write."""
    is_primary = [primary is not None and comp.name == primary for comp in comparisons]
    p = np.array([comp.result.p if not prim else np.nan for comp, prim in zip(comparisons, is_primary)])
    adjusted = stats.holm(p)
    family_size = int(np.isfinite(p).sum())
    rows = []
    for comp, prim, adj in zip(comparisons, is_primary, adjusted):
        r = comp.result
        if optional_stopping:
            rows.append(
                {
                    **comp.labels,
                    "difference (pts), descriptive": f"{100 * r.diff.value:+.3f}"
                    if np.isfinite(r.diff.value)
                    else "n/a",
                    "runs": f"{n_text(r.n)} pairs" if r.paired else f"{n_text(r.n)} runs",
                }
            )
            continue
        rows.append(
            {
                **comp.labels,
                "difference (pts) [95% CI]": ci(r.diff, 3),
                "test": (
                    f"paired, {n_text(r.n)} pairs"
                    if r.paired
                    else f"Welch, {n_text(r.n)} runs (seed sets differ)"
                )
                + (
                    f"; diverged set aside: seeds {', '.join(map(str, comp.set_aside))}"
                    if comp.set_aside
                    else ""
                ),
                "r": f"{r.correlation:.2f}" if np.isfinite(r.correlation) else "–",
                "t": f"{r.t:.2f}" if np.isfinite(r.t) else "n/a",
                "p": p_text(r.p),
                "Holm p": "primary (unadjusted)" if prim else (p_text(adj) if family_size > 1 else "–"),
            }
        )
    pre = (
        f"the primary comparison ({plain(primary)}) was pre-registered (declared in {declared_in} before any run) and "
        "is reported unadjusted, outside the family"
    )
    note = f"Pairing: {PAIRING_RULE}. " + (
        (
            f"Holm-adjusted over the {family_size} tests of this table (family: {plain(family)})"
            + (f"; {pre}." if any(is_primary) else ".")
        )
        if family_size > 1
        else (
            ("One test in this table: no adjustment." if family_size == 1 else no_test_note(is_primary))
            + (f" {pre[0].upper()}{pre[1:]}." if any(is_primary) else "")
        )
    )
    if optional_stopping:
        return (markdown_table(rows) + "\n\n" + AFTER_STOPPING,)
    return (
        markdown_table(rows) + "\n\n" + note,
        *(precision_of(comp) for comp in comparisons if np.isfinite(comp.result.sd)),
    )


def no_test_note(is_primary: list[bool]) -> str:
    """What a table without a single p-value outside the primary says: nothing was adjusted."""
    other = " besides the primary" if any(is_primary) else ""
    return f"No test in this table{other} has a p-value (n too small): no adjustment."


def differences_frame(comparisons: list[Comparison], x: str, hue: str, panels: str) -> pd.DataFrame:
    """Rows for figures.paired_differences, in percentage points."""
    return pd.DataFrame(
        [
            {
                x: comp.labels[x],
                hue: comp.labels[hue],
                panels: comp.labels[panels],
                "diff": 100 * comp.result.diff.value,
                "low": 100 * comp.result.diff.low,
                "high": 100 * comp.result.diff.high,
            }
            for comp in comparisons
            if np.isfinite(comp.result.diff.low)
        ]
    )


def curve_frame(c: LoadedCampaign, hue: str, levels=(0, 2), x: str = "epochs") -> pd.DataFrame:
    """Mean accuracy with 95% t-interval per (hue, x, TTA level), in percent."""
    rows = []
    for (h, e), part in c.runs.groupby([hue, x], sort=False):
        for level in levels:
            m = stats.mean_ci(part[f"acc_tta{level}"])
            rows.append(
                {
                    hue: h,
                    x: float(str(e)),
                    "level": f"TTA {level}",
                    "mean": 100 * m.value,
                    "low": 100 * m.low,
                    "high": 100 * m.high,
                    "n": len(part),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- variance


@dataclass(frozen=True)
class VarianceStats:
    runs: int
    mean_acc: float
    test_set_std: stats.Estimate
    independent_std: float  # unbiased independent-errors prediction, as a std
    theorem3_std: float  # Paper B Thm 3: √(err/2n)
    distribution: stats.DistributionVariance
    split_half: stats.Estimate


def variance_stats(
    c: LoadedCampaign, mask: np.ndarray, level: int, max_groups: int = 100, resamples: int = 1000
) -> VarianceStats:
    """Every variance estimate for one set of runs at one TTA level, in one counting pass."""
    r, n = int(np.sum(mask)), len(c.labels)
    acc, even, odd = np.empty(r), np.empty(r), np.empty(r)

    def wrong_chunks():
        half = (n + 1) // 2
        for rows, preds in c.chunks(mask, level):
            wrong = preds != c.labels[None, :]
            wrong_all, wrong_even = np.count_nonzero(wrong, 1), np.count_nonzero(wrong[:, 0::2], 1)
            acc[rows], even[rows] = 1 - wrong_all / n, 1 - wrong_even / half
            odd[rows] = 1 - (wrong_all - wrong_even) / max(n - half, 1)
            yield rows, wrong

    counts = stats.error_counts(wrong_chunks(), n, stats.run_groups(r, max_groups))
    correct_per_example = r - counts.example_errors.sum(0)
    return VarianceStats(
        r,
        float(acc.mean()),
        stats.std_ci(acc),
        np.sqrt(stats.independent_errors_from_counts(correct_per_example, r)),
        np.sqrt(stats.calibrated_variance_prediction(1 - acc.mean(), n)),
        stats.distribution_variance_from_counts(counts, resamples=resamples),
        stats.correlation_ci(even, odd),
    )


def signed_std(e: stats.Estimate) -> stats.Estimate:
    return stats.Estimate(*(stats.signed_sqrt(v) for v in (e.value, e.low, e.high)))


def variance_row(v: VarianceStats) -> dict:
    return {
        "runs": n_text(v.runs),
        "mean %": pct(v.mean_acc),
        "test-set std (pts) [95% CI]": ci(v.test_set_std, 3),
        "independent-errors std": pct(v.independent_std, 3),
        "Thm 3 std √(err/2n)": pct(v.theorem3_std, 3),
        "distribution-wise std [95% CI]": ci(signed_std(v.distribution.variance), 3),
        "split-half r [95% CI]": ci(v.split_half, 2, scale=1.0),
    }


def variance_precision(v: VarianceStats, where: str) -> VariancePrecision:
    return VariancePrecision(
        where,
        signed_std(v.distribution.variance),
        v.runs,
        v.distribution.runs_to_exclude_zero(),
        v.distribution.runs_to_exclude_zero(power=0.8),
    )


def variance_frame(items: Sequence[tuple[float, VarianceStats]], x: str) -> pd.DataFrame:
    """Rows for figures.estimate_lines, in percentage points."""
    rows = []
    for xv, v in items:
        d = signed_std(v.distribution.variance)
        rows += [
            {
                x: xv,
                "estimate": "test-set std (χ² CI)",
                "value": 100 * v.test_set_std.value,
                "low": 100 * v.test_set_std.low,
                "high": 100 * v.test_set_std.high,
            },
            {
                x: xv,
                "estimate": "independent-errors prediction",
                "value": 100 * v.independent_std,
                "low": np.nan,
                "high": np.nan,
            },
            {
                x: xv,
                "estimate": "Thm 3 prediction √(err/2n)",
                "value": 100 * v.theorem3_std,
                "low": np.nan,
                "high": np.nan,
            },
            {
                x: xv,
                "estimate": "distribution-wise std (bootstrap CI)",
                "value": 100 * d.value,
                "low": 100 * d.low,
                "high": 100 * d.high,
            },
        ]
    return pd.DataFrame(rows)


VARIANCE_NOTE = (
    "Test-set std: across runs, chi-square interval. Independent-errors std: what the test-set std "
    "would be if examples erred independently, (1/n²) Σ ε_i(1−ε_i) · R/(R−1) (unbiased). Thm 3: "
    "Paper B's prediction under class-wise calibration, √(err/(2n)). Distribution-wise std: Paper B "
    "Eq. 3, unbiased and so possibly negative from noise (shown as a signed std), percentile bootstrap "
    "over runs. Split-half r: correlation across runs of accuracy on even vs odd test examples, "
    "Fisher-z interval."
)


# ----------------------------------------------------------------------------- calibration


def calibration_stats(
    c: LoadedCampaign, mask: np.ndarray, level: int, max_groups: int = 64, resamples: int = 200
) -> stats.CalibrationResult:
    r = int(np.sum(mask))
    gp = stats.group_predictions(
        c.chunks(mask, level), c.labels, stats.run_groups(r, max_groups), classes=c.classes
    )
    return stats.calibration(gp, resamples=resamples)


# ----------------------------------------------------------------------------- equivalent epochs


def epochs_bound(x: float, grid: tuple[float, ...], scale: float = 1.0, unit: str = "") -> str:
    """A number of epochs (or a ratio, with ``scale``), '< first' / '> last' outside the grid."""
    if x == -np.inf:
        return f"< {grid[0] * scale:.3g}{unit}"
    if x == np.inf:
        return f"> {grid[-1] * scale:.3g}{unit}"
    return f"{x * scale:.2f}{unit}"


def epochs_text(eq: stats.EquivalentEpochs, reference: float | None = None) -> str:
    """Equivalent epochs (or, with ``reference``, the ratio epochs/reference) and its 95% interval,
    with one-sided bounds where the bootstrap leaves the grid."""
    scale, unit = (1.0 / reference, "x") if reference else (1.0, "")
    e = eq.epochs
    point = epochs_bound(e.value, eq.grid, scale, unit)
    if e.value == -np.inf:
        point = f"reached before the grid ({point})"
    elif e.value == np.inf:
        point = f"not reached within the grid ({point})"
    outside = (e.value == np.inf and e.low >= eq.grid[-1]) or (e.value == -np.inf and e.high <= eq.grid[0])
    if np.isnan(e.low):
        return (
            f"{point} [n too small: the interval needs {stats.MIN_RUNS_EQUIVALENT_EPOCHS} runs per cell, where its "
            f"measured coverage reaches 93%]"
        )
    if outside:
        return point
    return (
        f"{point} [{epochs_bound(e.low, eq.grid, scale, unit)}, {epochs_bound(e.high, eq.grid, scale, unit)}]"
    )
