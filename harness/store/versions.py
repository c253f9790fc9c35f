"""One method version per verdict: a study folder's runs of an edited method sit beside the old ones
in the store (same keys, another ``method_version``), and every verdict, table and report counts the
runs of one version per method, the current one (what the manifest names: the code of the last
campaign) unless asked otherwise. ``harness.compare --versions`` sets versions side by side."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class VersionChoice:
    """Which runs a view counts: ``mask`` over the runs, the version counted per method spec, and
    the runs set aside per (method spec, version)."""

    mask: np.ndarray
    counted: dict[str, str] = field(default_factory=dict)
    set_aside: dict[tuple[str, str], int] = field(default_factory=dict)

    def note(self) -> str:
        """One sentence naming what was not counted ('' when nothing was set aside)."""
        if not self.set_aside:
            return ""
        parts = [f"{n} of {spec} at version {v}" for (spec, v), n in sorted(self.set_aside.items())]
        return (
            f"runs of other method versions not counted: {'; '.join(parts)} (each verdict counts one "
            f"version per method; set versions side by side with `python -m harness.compare "
            f"--versions`)"
        )


def method_of_rows(runs: pd.DataFrame, manifest: Mapping[str, object]) -> pd.Series:
    """Each run's method spec as this study names it: its cell's method in the manifest's grid
    (another study that trained the same run may have spelled the method differently)."""
    grid = manifest.get("grid")
    grid = grid if isinstance(grid, list) else []
    by_label = {
        str(g.get("label")): str(g.get("method")) for g in grid if isinstance(g, dict) and g.get("method")
    }
    recorded = (
        runs["method"].astype(object).where(runs["method"].notna(), "")
        if "method" in runs
        else pd.Series([""] * len(runs), index=runs.index)
    )
    if "cell" not in runs or not by_label:
        return recorded.astype(str)
    return pd.Series(
        [by_label.get(str(c), str(r)) for c, r in zip(runs["cell"], recorded)], index=runs.index, dtype=object
    )


def choose_versions(
    runs: pd.DataFrame, manifest: Mapping[str, object], asked: Mapping[str, str] | None = None
) -> VersionChoice:
    """The runs of one version per method: ``asked`` ({method spec: version}) where given, else the
    manifest's ``methods``; a method neither names keeps all its runs (none can be told apart), and so
    does a record that names no version (written before records did)."""
    if not len(runs) or "method_version" not in runs:
        return VersionChoice(np.ones(len(runs), bool))
    named = manifest.get("methods")
    wanted: dict[str, str] = {str(k): str(v) for k, v in named.items()} if isinstance(named, dict) else {}
    wanted.update(asked or {})
    methods = method_of_rows(runs, manifest)
    versions = runs["method_version"].astype(object).where(runs["method_version"].notna(), "").astype(str)
    want = methods.map(lambda m: wanted.get(m, ""))
    mask = ((want == "") | (versions == "") | (versions == want)).to_numpy()
    aside: dict[tuple[str, str], int] = {}
    for m, v in zip(methods[~mask], versions[~mask]):
        aside[(str(m), str(v))] = aside.get((str(m), str(v)), 0) + 1
    counted = {m: wanted[m] for m in dict.fromkeys(methods) if m in wanted}
    return VersionChoice(mask, counted, aside)
