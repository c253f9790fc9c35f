"""Paper-ready figures (seaborn), each saved as PNG and PDF and stamped with its provenance.

Every figure carries a stamp (preset, SMOKE in red, data, n) inside the image; panels get their
own y-axes, since the differences that matter are a fraction of a point; trends are lines on
numeric axes.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)


def palette(keys) -> dict:
    """Distinct colours for up to 10 keys (tab10), one per key, in order."""
    keys = list(dict.fromkeys(keys))
    return dict(zip(keys, sns.color_palette("tab10", max(len(keys), 1))))


def save(fig, folder: Path, name: str, stamp: str) -> str:
    """Stamp, then write name.png and name.pdf; return the PNG's path relative to the report."""
    folder.mkdir(parents=True, exist_ok=True)
    smoke = "SMOKE" in stamp
    lines = textwrap.wrap(stamp, width=max(40, int(fig.get_figwidth() * 14)))
    margin = (0.12 + 0.14 * len(lines)) / fig.get_figheight()           # inches -> figure fraction
    fig.tight_layout(rect=(0, margin, 1, 1))
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7.5, color="#b00020" if smoke else "#555555",
             weight="bold" if smoke else "normal", ha="left", va="bottom")
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", dpi=150)
    plt.close(fig)
    return f"{folder.name}/{name}.png"


def _panels(values: list, width: float = 5.0, height: float = 3.8, sharex: bool = False):
    fig, axes = plt.subplots(1, len(values), figsize=(width * len(values), height), squeeze=False, sharex=sharex)
    return fig, list(axes[0])


def lines_with_bands(table: pd.DataFrame, x: str, hue: str, panels: str | None, xlabel: str, ylabel: str,
                     folder: Path, name: str, title: str, stamp: str) -> str:
    """Mean lines with 95% CI bands on a numeric x axis; one panel per value of ``panels``, each with
    its own y-axis. ``table``: columns x, hue, [panels], mean, low, high."""
    panel_values = list(dict.fromkeys(table[panels])) if panels else [None]
    fig, axes = _panels(panel_values)
    colours = palette(table[hue])
    for ax, pv in zip(axes, panel_values):
        part = table if pv is None else table[table[panels] == pv]
        for h, rows in part.groupby(hue, sort=False):
            rows = rows.sort_values(x)
            ax.fill_between(rows[x], rows["low"], rows["high"], color=colours[h], alpha=0.2, linewidth=0)
            ax.plot(rows[x], rows["mean"], marker="o", color=colours[h], label=str(h))
        ax.set(xlabel=xlabel, ylabel=ylabel, title=str(pv) if pv is not None else title)
        ax.set_xticks(sorted(part[x].unique()))
        ax.legend(title=hue, fontsize=8)
    if panels:
        fig.suptitle(title)
    return save(fig, folder, name, stamp)


def paired_differences(table: pd.DataFrame, x: str, hue: str, panels: str, xlabel: str, folder: Path, name: str,
                       title: str, stamp: str, numeric_x: bool = True) -> str:
    """Differences with their 95% CIs as points and error bars, a zero line, one panel per value of
    ``panels`` with its own y-axis. ``table``: columns x, hue, panels, diff, low, high (points)."""
    panel_values = list(dict.fromkeys(table[panels]))
    colours = palette(table[hue])
    hues = list(colours)
    fig, axes = _panels(panel_values, width=max(5.0, 3.0 + 0.6 * len(hues)))
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
            pos = pos + (j - (len(hues) - 1) / 2) * 0.015 * span * (1 if numeric_x else 10)
            ax.errorbar(pos, rows["diff"], yerr=[rows["diff"] - rows["low"], rows["high"] - rows["diff"]],
                        fmt="o-" if numeric_x else "o", color=colours[h], capsize=3, label=str(h))
        if not numeric_x:
            ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        else:
            ax.set_xticks(xs)
        ax.set(xlabel=xlabel, ylabel="difference (percentage points)", title=str(pv))
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save(fig, folder, name, stamp)


def small_multiples(table: pd.DataFrame, x: str, variant: str, baseline: str, target: float, target_x: float,
                    xlabel: str, ylabel: str, folder: Path, name: str, title: str, stamp: str) -> str:
    """One panel per variant: its mean curve with CI band (own colour) against the baseline's (grey),
    the target as a dashed line. ``table``: columns x, variant, mean, low, high."""
    variants = [v for v in dict.fromkeys(table[variant]) if v != baseline]
    cols = min(3, max(1, len(variants)))
    nrows = int(np.ceil(len(variants) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False, sharey=False)
    colours = palette(variants)
    base = table[table[variant] == baseline].sort_values(x)
    for ax, v in zip(axes.ravel(), variants):
        rows = table[table[variant] == v].sort_values(x)
        ax.fill_between(base[x], base["low"], base["high"], color="grey", alpha=0.2, linewidth=0)
        ax.plot(base[x], base["mean"], color="grey", marker=".", label=baseline)
        ax.fill_between(rows[x], rows["low"], rows["high"], color=colours[v], alpha=0.25, linewidth=0)
        ax.plot(rows[x], rows["mean"], color=colours[v], marker="o", label=v)
        ax.axhline(target, color="black", linestyle="--", linewidth=0.8, label=f"target ({target_x:g} ep)")
        ax.set(title=v, xlabel=xlabel, ylabel=ylabel)
        ax.set_xticks(sorted(set(rows[x]) | set(base[x])))
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(variants):]:
        ax.axis("off")
    fig.suptitle(title)
    return save(fig, folder, name, stamp)


def estimate_lines(table: pd.DataFrame, x: str, xlabel: str, ylabel: str, folder: Path, name: str, title: str,
                   stamp: str) -> str:
    """Several estimates (column ``estimate``) against a numeric x: lines, with CI bands where the
    table has them (columns value, low, high)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = palette(table["estimate"])
    for est, rows in table.groupby("estimate", sort=False):
        rows = rows.sort_values(x)
        if rows["low"].notna().any():
            ax.fill_between(rows[x], rows["low"], rows["high"], color=colours[est], alpha=0.2, linewidth=0)
        ax.plot(rows[x], rows["value"], marker="o", color=colours[est], label=est)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(sorted(table[x].unique()))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return save(fig, folder, name, stamp)


def reliability(table: pd.DataFrame, hue: str, panels: str, folder: Path, name: str, title: str, stamp: str) -> str:
    """Reliability diagrams (mean ensemble frequency q against the fraction of pairs whose label is
    c), and below each the number of (x, c) pairs in every bin, so sparse bins are seen as such.
    ``table``: columns hue, panels, mean_q, fraction, pairs."""
    panel_values = list(dict.fromkeys(table[panels]))
    fig, axes = plt.subplots(2, len(panel_values), figsize=(4.8 * len(panel_values), 6.2), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.3]}, sharex="col")
    colours = palette(table[hue])
    for j, pv in enumerate(panel_values):
        ax, counts = axes[0, j], axes[1, j]
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
        part = table[table[panels] == pv]
        for h, rows in part.groupby(hue, sort=False):
            rows = rows.sort_values("mean_q")
            ax.plot(rows["mean_q"], rows["fraction"], marker="o", markersize=3, color=colours[h], label=str(h))
            counts.step(rows["mean_q"], rows["pairs"], where="mid", color=colours[h])
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=str(pv), ylabel="fraction of pairs with label c")
        ax.legend(fontsize=7)
        counts.set(yscale="log", xlabel="mean ensemble frequency q (fraction of runs)", ylabel="pairs per bin")
    fig.suptitle(title)
    return save(fig, folder, name, stamp)
