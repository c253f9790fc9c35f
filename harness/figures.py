"""Paper-ready figures (seaborn), each saved as PNG and PDF."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)


def save(fig, folder: Path, name: str) -> str:
    """Write name.png and name.pdf; return the PNG's path relative to the report."""
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", dpi=150)
    plt.close(fig)
    return f"{folder.name}/{name}.png"


def lines_with_bands(table: pd.DataFrame, x: str, hue: str, panels: str | None, xlabel: str, ylabel: str,
                     folder: Path, name: str, title: str = "") -> str:
    """Mean lines with their 95% CI as shaded bands. ``table`` has columns x, hue, [panels], mean, low, high."""
    panel_values = list(dict.fromkeys(table[panels])) if panels else [None]
    fig, axes = plt.subplots(1, len(panel_values), figsize=(5.2 * len(panel_values), 4), squeeze=False, sharey=True)
    palette = dict(zip(dict.fromkeys(table[hue]), sns.color_palette("colorblind")))
    for ax, pv in zip(axes[0], panel_values):
        part = table if pv is None else table[table[panels] == pv]
        for h, rows in part.groupby(hue, sort=False):
            rows = rows.sort_values(x)
            ax.fill_between(rows[x], rows["low"], rows["high"], color=palette[h], alpha=0.25, linewidth=0)
        sns.lineplot(data=part, x=x, y="mean", hue=hue, palette=palette, marker="o", ax=ax, errorbar=None)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{pv}" if pv is not None else title)
        ax.legend(title=hue)
    if panels and title:
        fig.suptitle(title)
    return save(fig, folder, name)


def reliability(table: pd.DataFrame, hue: str, panels: str, folder: Path, name: str) -> str:
    """Reliability diagrams: mean ensemble frequency q against the fraction of pairs whose label is c."""
    panel_values = list(dict.fromkeys(table[panels]))
    fig, axes = plt.subplots(1, len(panel_values), figsize=(4.4 * len(panel_values), 4.2), squeeze=False)
    for ax, pv in zip(axes[0], panel_values):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
        sns.lineplot(data=table[table[panels] == pv], x="mean_q", y="fraction", hue=hue, marker="o", ax=ax,
                     errorbar=None, palette="colorblind")
        ax.set(xlim=(0, 1), ylim=(0, 1), title=str(pv), xlabel="mean ensemble frequency q (fraction of runs)",
               ylabel="fraction of pairs with that label")
    return save(fig, folder, name)


def grouped_bars(table: pd.DataFrame, x: str, hue: str, ylabel: str, folder: Path, name: str, title: str) -> str:
    """Bars with 95% CI whiskers where the table has them (columns x, hue, value, low, high)."""
    fig, ax = plt.subplots(figsize=(8.5, 4))
    sns.barplot(data=table, x=x, y="value", hue=hue, ax=ax, palette="colorblind", errorbar=None)
    hues = list(dict.fromkeys(table[hue]))
    xs = list(dict.fromkeys(table[x]))
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        for i, xv in enumerate(xs):
            row = table[(table[x] == xv) & (table[hue] == h)]
            if len(row) and pd.notna(row["low"].iloc[0]):
                pos = i - 0.4 + width * (j + 0.5)
                v = row["value"].iloc[0]
                ax.errorbar(pos, v, yerr=[[v - row["low"].iloc[0]], [row["high"].iloc[0] - v]], color="black",
                            capsize=3, linewidth=1)
    ax.set(ylabel=ylabel, xlabel=x, title=title)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title=hue)
    return save(fig, folder, name)
