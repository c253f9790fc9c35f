"""The studies' report sections: each takes a LoadedCampaign and returns markdown blocks."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from . import figures, stats
from .report import LEVELS, LoadedCampaign, ci, markdown_table, pct


def _curve_table(c: LoadedCampaign, hue: str, levels=(0, 2)) -> pd.DataFrame:
    """Mean accuracy with 95% t-interval per (hue, epochs, TTA level), in percent."""
    rows = []
    for (h, e), part in c.runs.groupby([hue, "epochs"], sort=False):
        for level in levels:
            m = stats.mean_ci(part[f"acc_tta{level}"])
            rows.append({hue: h, "epochs": e, "level": f"TTA {level}", "mean": 100 * m.value,
                         "low": 100 * m.low, "high": 100 * m.high})
    return pd.DataFrame(rows)


def epochs_text(eq: stats.Estimate) -> str:
    """An equivalent-epochs estimate for a table; the interval only when the bootstrap bounds it."""
    if not np.isfinite(eq.value):
        return "not reached within the grid"
    if not np.isfinite(eq.low):
        return f"{eq.value:.2f} (interval leaves the grid)"
    return f"{eq.value:.2f} [{eq.low:.2f}, {eq.high:.2f}]"


def _runs(c: LoadedCampaign, level: int, **where) -> np.ndarray:
    mask = np.ones(len(c.runs), bool)
    for k, v in where.items():
        mask &= (c.runs[k] == v).to_numpy()
    return c.runs.loc[mask, f"acc_tta{level}"].to_numpy()


def flip_report(c: LoadedCampaign) -> list[str]:
    curve = _curve_table(c, "flip")
    fig = figures.lines_with_bands(curve, "epochs", "flip", "level", "training epochs", "test accuracy (%)",
                                   c.figures, "accuracy_vs_epochs", "mean test accuracy, 95% CI bands")
    modes = [m for m in ("alternating", "random", "none") if m in set(c.runs["flip"])]
    rows = []
    for e in sorted(c.runs["epochs"].unique()):
        for a, b in itertools.combinations(modes, 2):
            for level in (0, 2):
                xa, xb = _runs(c, level, flip=a, epochs=e), _runs(c, level, flip=b, epochs=e)
                if len(xa) > 1 and len(xb) > 1:
                    d = stats.welch(xa, xb)
                    rows.append({"epochs": e, "comparison": f"{a} − {b}", "TTA": level,
                                 "difference (pts) [95% CI]": ci(d.diff, 3), "Welch t": f"{d.t:.2f}",
                                 "p": f"{d.p:.2g}"})
    speed = []
    if {"alternating", "random"} <= set(modes):
        curve_random = {e: _runs(c, 2, flip="random", epochs=e) for e in sorted(c.runs["epochs"].unique())}
        for e in sorted(curve_random):
            target = _runs(c, 2, flip="alternating", epochs=e)
            if len(target) > 1:
                eq = stats.equivalent_epochs(curve_random, target, resamples=500)
                speed.append({"alternating epochs": e, "random-flip epochs to match [95% CI]": epochs_text(eq),
                              "speedup": f"{eq.value / e:.2f}x" if np.isfinite(eq.value) else "n/a"})
    return [f"## Accuracy against epochs\n\n![accuracy vs epochs]({fig})",
            "## Differences between flip modes (Welch's t-test)\n\n" + markdown_table(rows),
            "## Equivalent-epoch speedup of alternating over random flip (TTA 2)\n\n"
            "Epochs random flipping needs to match alternating flipping's mean accuracy, by linear "
            "interpolation of random flip's accuracy curve; 95% bootstrap interval over runs.\n\n"
            + markdown_table(speed)]


def variance_row(c: LoadedCampaign, mask: np.ndarray, level: int) -> dict:
    """Test-set std, independent-errors prediction, distribution-wise std and split-half r (points)."""
    correct = c.correct(mask, level)
    acc = correct.mean(1)
    sd = stats.std_ci(acc)
    dist = stats.distribution_variance(correct, resamples=300)
    return {"runs": len(acc), "mean %": pct(acc.mean()), "test-set std [95% CI]": ci(sd, 3),
            "independent-errors std": pct(np.sqrt(stats.independent_errors_variance(correct)), 3),
            "distribution-wise std [95% CI]": f"{pct(stats.signed_sqrt(dist.value), 3)} "
                                              f"[{pct(stats.signed_sqrt(dist.low), 3)}, {pct(stats.signed_sqrt(dist.high), 3)}]",
            "split-half r": f"{stats.split_half_correlation(correct):.2f}",
            "_sd": sd, "_pred": np.sqrt(stats.independent_errors_variance(correct)), "_dist": dist}


def _variance_figure(rows: list[dict], x: str, c: LoadedCampaign, name: str, title: str) -> str:
    bars = []
    for r in rows:
        bars += [{x: r[x], "estimate": "test-set std", "value": 100 * r["_sd"].value, "low": 100 * r["_sd"].low,
                  "high": 100 * r["_sd"].high},
                 {x: r[x], "estimate": "independent-errors prediction", "value": 100 * r["_pred"],
                  "low": np.nan, "high": np.nan},
                 {x: r[x], "estimate": "distribution-wise std", "value": 100 * stats.signed_sqrt(r["_dist"].value),
                  "low": 100 * stats.signed_sqrt(r["_dist"].low), "high": 100 * stats.signed_sqrt(r["_dist"].high)}]
    return figures.grouped_bars(pd.DataFrame(bars), x, "estimate", "standard deviation (percentage points)",
                                c.figures, name, title)


def _public(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def tta_variance_report(c: LoadedCampaign) -> list[str]:
    mask = np.ones(len(c.runs), bool)
    rows = [{"TTA": level, **variance_row(c, mask, level)} for level in LEVELS]
    fig = _variance_figure(rows, "TTA", c, "variance_by_tta", "variance across runs by TTA level")
    return ["## Test-set and distribution-wise variance by TTA level\n\n"
            "Distribution-wise variance: Jordan (2023) Eq. 3, unbiased and so possibly negative from noise "
            "(shown as a signed std); interval by bootstrap over runs.\n\n" + markdown_table(_public(rows))
            + f"\n\n![variance by TTA]({fig})"]


def variance_epochs_report(c: LoadedCampaign) -> list[str]:
    rows = [{"epochs": e, **variance_row(c, (c.runs["epochs"] == e).to_numpy(), 2)}
            for e in sorted(c.runs["epochs"].unique())]
    fig = _variance_figure(rows, "epochs", c, "variance_vs_epochs", "variance across runs (TTA 2) by training length")
    return ["## Variance as training gets longer (TTA 2)\n\n" + markdown_table(_public(rows))
            + f"\n\n![variance vs epochs]({fig})"]


def calibration_report(c: LoadedCampaign) -> list[str]:
    rows, bins = [], []
    for flip in sorted(c.runs["flip"].unique()):
        mask = (c.runs["flip"] == flip).to_numpy()
        if mask.sum() < 2:
            continue
        for level in LEVELS:
            preds = c.predictions[mask, level]
            cal = stats.classwise_calibration(preds, c.labels)
            rows.append({"flip": flip, "TTA": level, "runs": int(mask.sum()), "CACE (pts)": pct(cal.cace),
                         "mean error %": pct(stats.mean_error(preds, c.labels)),
                         "mean pairwise disagreement %": pct(stats.mean_pairwise_disagreement(preds))})
            bins += [{"flip": flip, "TTA": f"TTA {level}", **b} for b in cal.table]
    fig = figures.reliability(pd.DataFrame(bins), "TTA", "flip", c.figures, "reliability") if bins else ""
    return ["## Class-wise calibration of the ensemble of runs\n\n"
            "CACE = Σ_bins |fraction − mean q| · pairs/n; under class-wise calibration disagreement "
            "between two runs equals the mean error.\n\n" + markdown_table(rows)
            + (f"\n\n![reliability diagrams]({fig})" if fig else "")]


def ablation_report(c: LoadedCampaign) -> list[str]:
    runs = c.runs
    baseline = runs[runs["variant"] == "baseline"]
    target_epochs = 9.9 if (baseline["epochs"] == 9.9).any() else float(baseline["epochs"].max())
    target = baseline.loc[baseline["epochs"] == target_epochs, "acc_tta2"].to_numpy()
    curves = {v: {e: part["acc_tta2"].to_numpy() for e, part in runs[runs["variant"] == v].groupby("epochs")}
              for v in dict.fromkeys(runs["variant"])}
    curves["no TTA"] = {e: part["acc_tta0"].to_numpy() for e, part in baseline.groupby("epochs")}
    rows = []
    for variant, curve in curves.items():
        eq = stats.equivalent_epochs(curve, target, resamples=500)
        row = {"variant": variant}
        row.update({f"{e:g} ep %": pct(np.mean(a)) for e, a in sorted(curve.items())})
        row["epochs to reach target [95% CI]"] = epochs_text(eq)
        rows.append(row)
    table = pd.DataFrame([{"variant": v, "epochs": e, "level": "TTA 2" if v != "no TTA" else "TTA 0",
                           "mean": 100 * stats.mean_ci(a).value, "low": 100 * stats.mean_ci(a).low,
                           "high": 100 * stats.mean_ci(a).high} for v, cv in curves.items() for e, a in cv.items()])
    fig = figures.lines_with_bands(table, "epochs", "variant", None, "training epochs", "test accuracy (%)",
                                   c.figures, "ablation", "each feature removed in turn, 95% CI bands")
    return [f"## Ablation: epochs each variant needs to reach the baseline\n\n"
            f"Target: the baseline's mean TTA-2 accuracy at {target_epochs:g} epochs ({pct(np.mean(target))}%).\n\n"
            + markdown_table(rows) + f"\n\n![ablation]({fig})"]
