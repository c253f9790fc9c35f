"""Paper-ready figures (seaborn), each saved as PNG and PDF and stamped with its provenance.

Every figure carries a stamp (preset, SMOKE in red, data, n) inside the image; panels get their
own y-axes, since the differences that matter are a fraction of a point; trends are lines on
numeric axes.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="paper", font_scale=0.95)
# Camera-ready by default: TrueType (Type 42) fonts in PDF and PS, which IEEE and ACM checkers accept
# (Type 3 fonts are rejected); a fixed page size, so PNG and PDF lay out identically.
matplotlib.rcParams.update(
    {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "savefig.bbox": None,
        "legend.frameon": False,
        "axes.titlesize": 9,
        "axes.labelsize": 8.5,
        "xtick.labelsize": 7.5,
        "ytick.labelsize": 7.5,
        "legend.fontsize": 7.5,
    }
)

# Column widths of two-column papers (IEEE, ACM): a figure is one or the other.
ONE_COLUMN, TWO_COLUMN = 3.5, 7.16  # inches
# Okabe & Ito's colour-blind-safe palette, each colour with its own marker (so grey print works too).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
REFERENCE = "#7F7F7F"  # the baseline, or any reference curve: grey, no palette slot
PRIMARY_MARKER = "*"

_BOOK: dict[str, tuple[str, str]] = {}  # one colour per meaning across a report (reset per report)


def reset_colours() -> None:
    """Start a report: meanings get colours in order of first use, then keep them on every figure."""
    _BOOK.clear()


def style(key) -> tuple[str, str]:
    """(colour, marker) of a meaning (a cell, variant, flip mode, estimate...), the same in every figure."""
    key = str(key)
    if key not in _BOOK:
        i = len(_BOOK)
        _BOOK[key] = (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)])
    return _BOOK[key]


def palette(keys) -> dict:
    """Colours of these keys from the report's colour book (see ``style``)."""
    return {k: style(k)[0] for k in dict.fromkeys(keys)}


def marker(key) -> str:
    return style(key)[1]


def _legend_entries(fig) -> tuple[list, list]:
    """Every labelled artist of every panel once; series with no data never get an entry."""
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab.startswith("_") or lab in labels:
                continue
            handles.append(h)
            labels.append(lab)
        if ax.get_legend():
            ax.get_legend().remove()
    return handles, labels


def save(
    fig, folder: Path, name: str, stamp: str, title: str | None = None, legend_title: str | None = None
) -> str:
    """Title and one legend at fixed places above the panels, the stamp below them; then name.png
    and name.pdf at the figure's own size (no tight bounding box: both files lay out the same).
    Return the PNG's path relative to the report."""
    folder.mkdir(parents=True, exist_ok=True)
    smoke = "SMOKE" in stamp
    width, height = fig.get_figwidth(), fig.get_figheight()
    lines = _stamp_lines(stamp, max(40, int(width * 16)))
    bottom = (0.08 + 0.12 * len(lines)) / height
    handles, labels = _legend_entries(fig)
    longest = max((len(lab) for lab in labels), default=1) + 6  # a marker and its gap
    ncol = max(1, min(len(labels), int(width * 13 / longest)))
    legend_rows = int(np.ceil(len(labels) / ncol)) if labels else 0
    top_in = (0.25 if title else 0.05) + 0.19 * legend_rows + (0.15 if legend_title and labels else 0)
    with warnings.catch_warnings():  # a crowded figure keeps its layout; no warning reaches the terminal
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(rect=(0, bottom, 1, 1 - top_in / height))
    if title:
        fig.text(0.5, 1 - 0.05 / height, title, ha="center", va="top", fontsize=9.5, weight="bold")
    if labels:
        fig.legend(
            handles,
            labels,
            loc="upper center",
            ncol=ncol,
            title=legend_title,
            fontsize=7.5,
            title_fontsize=7.5,
            bbox_to_anchor=(0.5, 1 - (0.28 if title else 0.05) / height),
            frameon=False,
        )
    fig.text(
        0.01,
        0.01,
        "\n".join(lines),
        fontsize=6.5,
        color="#b00020" if smoke else "#555555",
        weight="bold" if smoke else "normal",
        ha="left",
        va="bottom",
    )
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", dpi=200)
    plt.close(fig)
    return f"{folder.name}/{name}.png"


def _stamp_lines(stamp: str, width: int) -> list[str]:
    """The stamp wrapped at its " · " separators where it can, so no item is split across lines."""
    lines: list[str] = []
    for part in stamp.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines += textwrap.wrap(part, width=width) or [""]
    return lines


def _panels(values: list, height: float = 2.6, sharex: bool = False, cols: int = 3):
    """One panel per value: one column wide for a single panel, two columns wide for more, at most
    ``cols`` panels a row."""
    n = max(1, len(values))
    ncols = min(cols, n)
    nrows = int(np.ceil(n / ncols))
    width = ONE_COLUMN if n == 1 else TWO_COLUMN
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height * nrows + 0.9), squeeze=False, sharex=sharex
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _dodge(j: int, count: int, span: float, fraction: float = 0.02) -> float:
    return (j - (count - 1) / 2) * fraction * span


def _errorbars(ax, x, mean, low, high, key, label=None, line=True, primary=None, **kw):
    colour, mk = style(key) if key is not None else (REFERENCE, "o")
    x, mean, low, high = (np.asarray(v, float) for v in (x, mean, low, high))
    ok = np.isfinite(mean)
    if not ok.any():
        return None  # an empty series: not drawn, no legend entry
    yerr = np.vstack([np.where(np.isfinite(low), mean - low, 0), np.where(np.isfinite(high), high - mean, 0)])
    h = ax.errorbar(
        x[ok],
        mean[ok],
        yerr=yerr[:, ok],
        fmt=("-" if line else "") + mk,
        color=colour,
        capsize=2.5,
        markersize=4,
        linewidth=1.2,
        elinewidth=1,
        label=str(label if label is not None else key),
        **kw,
    )
    if primary is not None and primary.any():
        ax.plot(
            x[primary],
            mean[primary],
            PRIMARY_MARKER,
            color=colour,
            markersize=13,
            markeredgecolor="black",
            markeredgewidth=0.6,
            label="primary comparison",
            zorder=5,
        )
    return h


def lines_with_bands(
    table: pd.DataFrame,
    x: str,
    hue: str,
    panels: str | None,
    xlabel: str,
    ylabel: str,
    folder: Path,
    name: str,
    title: str,
    stamp: str,
) -> str:
    """Mean lines with 95% CIs as error bars dodged along a numeric x axis, so no interval hides
    another; one panel per value of ``panels``, each with its own y-axis. ``table``: columns x, hue,
    [panels], mean, low, high."""
    panel_values = list(dict.fromkeys(table[panels])) if panels else [None]
    fig, axes = _panels(panel_values)
    hues = list(dict.fromkeys(table[hue]))
    xs = sorted(table[x].unique())
    span = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
    for ax, pv in zip(axes, panel_values):
        part = table if pv is None else table[table[panels] == pv]
        for j, h in enumerate(hues):
            rows = part[part[hue] == h].sort_values(x)
            _errorbars(
                ax,
                rows[x].to_numpy(float) + _dodge(j, len(hues), span),
                rows["mean"],
                rows["low"],
                rows["high"],
                h,
            )
        ax.set(xlabel=xlabel, ylabel=ylabel, title=str(pv) if pv is not None else "")
        ax.set_xticks(xs)
    return save(fig, folder, name, stamp, title, legend_title=hue)


def paired_differences(
    table: pd.DataFrame,
    x: str,
    hue: str,
    panels: str,
    xlabel: str,
    folder: Path,
    name: str,
    title: str,
    stamp: str,
    numeric_x: bool = True,
    primary: dict | None = None,
) -> str:
    """Differences with their 95% CIs as points and dodged error bars, a zero line, one panel per
    value of ``panels`` with its own y-axis. ``table``: columns x, hue, panels, diff, low, high
    (points). ``primary`` ({x: .., hue: .., panels: ..}) marks the study's primary comparison."""
    panel_values = list(dict.fromkeys(table[panels]))
    hues = list(dict.fromkeys(table[hue]))
    fig, axes = _panels(panel_values)
    xs = sorted(table[x].unique()) if numeric_x else list(dict.fromkeys(table[x]))
    span = (max(xs) - min(xs)) if numeric_x and len(xs) > 1 else 1.0
    for ax, pv in zip(axes, panel_values):
        part = table[table[panels] == pv]
        ax.axhline(0, color="black", linewidth=0.8)
        for j, h in enumerate(hues):
            rows = part[part[hue] == h]
            if not len(rows):
                continue
            pos = rows[x].to_numpy(float) if numeric_x else np.array([xs.index(v) for v in rows[x]], float)
            pos = pos + _dodge(j, len(hues), span if numeric_x else 1.0, 0.02 if numeric_x else 0.12)
            mark = None
            if primary is not None:
                mark = (
                    (rows[x] == primary.get(x))
                    & (rows[hue] == primary.get(hue))
                    & (rows[panels] == primary.get(panels))
                ).to_numpy()
            _errorbars(ax, pos, rows["diff"], rows["low"], rows["high"], h, line=numeric_x, primary=mark)
        if not numeric_x:
            ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        else:
            ax.set_xticks(xs)
        ax.set(xlabel=xlabel, ylabel="difference (points)", title=str(pv))
    return save(fig, folder, name, stamp, title, legend_title=hue)


def forest(
    table: pd.DataFrame,
    folder: Path,
    name: str,
    title: str,
    stamp: str,
    xlabel: str,
    primary: str | None = None,
    colour_by: str | None = None,
) -> str:
    """A forest plot: one row per comparison (``label``), its difference with 95% CI (``diff``,
    ``low``, ``high``, points) against a zero line; the primary comparison starred and in bold.
    ``colour_by``: a column whose value is the meaning each row's colour stands for (default label)."""
    rows = table.reset_index(drop=True)
    longest = max((len(str(lab)) for lab in rows["label"]), default=0)
    width = ONE_COLUMN if longest <= 22 else TWO_COLUMN
    wrap = 22 if width == ONE_COLUMN else 48
    height = 0.9 + 0.32 * max(1, len(rows)) * (1 + (longest > wrap))
    fig, ax = plt.subplots(figsize=(width, height + 0.9))
    ax.axvline(0, color="black", linewidth=0.8)
    y = np.arange(len(rows))[::-1]
    for i, (_, r) in enumerate(rows.iterrows()):  # reset_index: positions are the labels
        key = r[colour_by] if colour_by else r["label"]
        colour, mk = style(key)
        is_primary = primary is not None and r["label"] == primary
        low, high = r["low"], r["high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [y[i], y[i]], color=colour, linewidth=1.6, solid_capstyle="butt")
        ax.plot(
            [r["diff"]],
            [y[i]],
            PRIMARY_MARKER if is_primary else mk,
            color=colour,
            markersize=12 if is_primary else 5,
            markeredgecolor="black" if is_primary else colour,
            markeredgewidth=0.6,
            label="primary comparison" if is_primary else "_",
        )
    ax.set_yticks(
        y,
        [
            "\n".join(
                textwrap.wrap(("★ " if primary is not None and lab == primary else "") + str(lab), wrap)
            )
            for lab in rows["label"]
        ],
    )
    for tick, lab in zip(ax.get_yticklabels(), rows["label"]):
        if primary is not None and lab == primary:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set(xlabel=xlabel)
    ax.grid(axis="y", visible=False)
    return save(fig, folder, name, stamp, title)


def sequences(
    states: list, precision: float, folder: Path, name: str, title: str, stamp: str, unit: str = "points"
) -> str:
    """Confidence sequences over seeds, one panel per comparison (so no band hides another): the
    running mean difference, its sequence as a band, 0 and ±P as reference lines, and the decision
    point marked with its outcome. ``states``: harness.stats.sequential.ComparisonState objects."""
    fig, axes = _panels(states, height=2.3, cols=2)
    for ax, s in zip(axes, states):
        colour, mk = style(s.name.split(" − ")[0])
        seq = np.array(s.sequence, float) if s.sequence else np.zeros((0, 4))
        ax.axhline(0, color="black", linewidth=0.8)
        for sign in (-1, 1):
            ax.axhline(
                sign * precision,
                color=REFERENCE,
                linestyle="--",
                linewidth=0.8,
                label=f"±P = ±{precision:g} {unit}",
            )
        if len(seq):
            t, mean, lo, hi = seq.T
            finite = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(
                t[finite],
                lo[finite],
                hi[finite],
                color=colour,
                alpha=0.25,
                linewidth=0,
                label="95% confidence sequence",
            )
            ax.plot(t, mean, color=colour, linewidth=1.2, label="mean difference")
            if s.outcome in ("better", "worse", "equal", "undecided") and s.seeds_used >= 2:
                ax.axvline(s.seeds_used, color="black", linestyle=":", linewidth=1, label="decision point")
                ax.plot([s.seeds_used], [s.mean], mk, color=colour, markersize=6, markeredgecolor="black")
                ax.annotate(
                    f"{s.outcome} at {s.seeds_used} seeds",
                    (s.seeds_used, s.upper),
                    textcoords="offset points",
                    xytext=(-3, 4),
                    ha="right",
                    fontsize=7,
                )
            body = np.concatenate([lo[finite], hi[finite], mean]) if finite.any() else mean
            spread = np.nanpercentile(body, 90) - np.nanpercentile(body, 10) if len(body) else 1
            ax.set_ylim(
                min(np.nanmin(mean) - spread, -1.5 * precision),
                max(np.nanmax(mean) + spread, 1.5 * precision),
            )
        ax.set(
            title="\n".join(textwrap.wrap(s.name, 40)), xlabel="seeds paired", ylabel=f"difference ({unit})"
        )
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return save(fig, folder, name, stamp, title)


def small_multiples(
    table: pd.DataFrame,
    x: str,
    variant: str,
    baseline: str,
    target: float,
    target_x: float,
    xlabel: str,
    ylabel: str,
    folder: Path,
    name: str,
    title: str,
    stamp: str,
) -> str:
    """One panel per variant: its mean curve with CI error bars (own colour) against the baseline's
    (grey), dodged so neither hides the other; the target as a dashed line.
    ``table``: columns x, variant, mean, low, high."""
    variants = [v for v in dict.fromkeys(table[variant]) if v != baseline]
    fig, axes = _panels(variants, height=2.2)
    base = table[table[variant] == baseline].sort_values(x)
    span = float(table[x].max() - table[x].min()) or 1.0
    for ax, v in zip(axes, variants):
        rows = table[table[variant] == v].sort_values(x)
        _errorbars(
            ax,
            base[x].to_numpy(float) + _dodge(0, 2, span),
            base["mean"],
            base["low"],
            base["high"],
            None,
            label=baseline,
        )
        _errorbars(
            ax, rows[x].to_numpy(float) + _dodge(1, 2, span), rows["mean"], rows["low"], rows["high"], v
        )
        ax.axhline(
            target, color="black", linestyle="--", linewidth=0.8, label=f"target ({target_x:g} epochs)"
        )
        ax.set(title=v, xlabel=xlabel, ylabel=ylabel)
        ax.set_xticks(sorted(set(rows[x]) | set(base[x])))
        ax.tick_params(axis="x", labelsize=6.5)
    return save(fig, folder, name, stamp, title)


def estimate_lines(
    table: pd.DataFrame, x: str, xlabel: str, ylabel: str, folder: Path, name: str, title: str, stamp: str
) -> str:
    """Several estimates (column ``estimate``) against a numeric x: points joined by lines, with CIs
    as dodged error bars where the table has them (columns value, low, high). A series with no finite
    value is not drawn and gets no legend entry; the y-axis fits the estimates, so one very wide
    interval (clipped at the frame) cannot flatten the others."""
    fig, ax = plt.subplots(figsize=(ONE_COLUMN, 3.4))
    estimates = [
        e
        for e in dict.fromkeys(table["estimate"])
        if np.isfinite(table.loc[table["estimate"] == e, "value"]).any()
    ]
    xs = sorted(table[x].unique())
    span = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
    for j, est in enumerate(estimates):
        rows = table[table["estimate"] == est].sort_values(x)
        _errorbars(
            ax,
            rows[x].to_numpy(float) + _dodge(j, len(estimates), span),
            rows["value"],
            rows["low"],
            rows["high"],
            est,
        )
    ax.axhline(0, color="black", linewidth=0.6)
    values = table.loc[table["estimate"].isin(estimates), "value"].to_numpy(float)
    values = values[np.isfinite(values)]
    if len(values):
        lo, hi = min(values.min(), 0.0), values.max()
        pad = 0.35 * (hi - lo or abs(hi) or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(xs)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    return save(fig, folder, name, stamp, title)


def reliability(
    table: pd.DataFrame, hue: str, panels: str, folder: Path, name: str, title: str, stamp: str
) -> str:
    """Reliability diagrams (mean ensemble frequency q against the fraction of pairs whose label is
    c), and below each the number of (x, c) pairs in every bin, so sparse bins are seen as such.
    ``table``: columns hue, panels, mean_q, fraction, pairs."""
    panel_values = list(dict.fromkeys(table[panels]))
    fig, axes = plt.subplots(
        2,
        len(panel_values),
        figsize=(ONE_COLUMN if len(panel_values) == 1 else TWO_COLUMN, 4.6),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1.3]},
        sharex="col",
    )
    for j, pv in enumerate(panel_values):
        ax, counts = axes[0, j], axes[1, j]
        ax.plot([0, 1], [0, 1], color=REFERENCE, linestyle="--", linewidth=1, label="calibrated")
        part = table[table[panels] == pv]
        for h, rows in part.groupby(hue, sort=False):
            rows = rows.sort_values("mean_q")
            colour, mk = style(h)
            ax.plot(rows["mean_q"], rows["fraction"], marker=mk, markersize=3, color=colour, label=str(h))
            counts.step(rows["mean_q"], rows["pairs"], where="mid", color=colour)
        ax.set(
            xlim=(-0.02, 1.02),
            ylim=(-0.02, 1.02),
            title=str(pv),
            ylabel="fraction with label c" if j == 0 else "",
        )
        counts.set(yscale="log", xlabel="mean ensemble frequency q", ylabel="pairs per bin" if j == 0 else "")
    return save(fig, folder, name, stamp, title, legend_title=hue)


def accuracy_vs_seconds(
    table: pd.DataFrame,
    folder: Path,
    name: str,
    title: str,
    stamp: str,
    target: float | None = None,
    seconds: float | None = None,
) -> str:
    """The picture the field draws: one point per method or cell (``label``) on one GPU model
    (``model``, one panel each), accuracy mean with its 95% CI (``acc``, ``acc_low``,
    ``acc_high``, points) against seconds per run with its 95% CI (``sec``, ``sec_low``,
    ``sec_high``); the target accuracy dashed, the time to beat dotted."""
    models = list(dict.fromkeys(table["model"]))
    fig, axes = _panels(models, height=2.6)
    for ax, model in zip(axes, models):
        part = table[table["model"] == model]
        for _, r in part.iterrows():
            colour, mk = style(r["label"])
            xerr = (
                [[r["sec"] - r["sec_low"]], [r["sec_high"] - r["sec"]]] if np.isfinite(r["sec_low"]) else None
            )
            yerr = (
                [[r["acc"] - r["acc_low"]], [r["acc_high"] - r["acc"]]] if np.isfinite(r["acc_low"]) else None
            )
            ax.errorbar(
                [r["sec"]],
                [r["acc"]],
                xerr=xerr,
                yerr=yerr,
                fmt=mk,
                color=colour,
                capsize=2,
                markersize=5,
                linewidth=1.2,
                label=str(r["label"]),
            )
        if target is not None:
            ax.axhline(target, color="black", linestyle="--", linewidth=0.8, label=f"target {target:g}%")
        if seconds is not None:
            ax.axvline(
                seconds, color=REFERENCE, linestyle=":", linewidth=1.0, label=f"time to beat {seconds:g} s"
            )
        ax.set(
            title=str(model), xlabel="seconds per run (train + eval, 95% CI)", ylabel="accuracy % (95% CI)"
        )
    return save(fig, folder, name, stamp, title)
