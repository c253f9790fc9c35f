"""A campaign read back from its study folder and the store: the runs it counts, aligned with their
per-example predictions and the test labels. Every analysis and page starts from this."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from harness import store
from harness.store.versions import VersionChoice, choose_versions

LEVELS = (0, 1, 2)
VERSION_COLUMNS = ("method_version", "data_fingerprint")


@dataclass
class LoadedCampaign:
    """Everything an analysis needs, read back from an output folder.

    ``runs`` holds each (cell, seed) once; ``rows`` maps its rows into ``predictions`` (uint8
    (stored runs, 3, n)), which is shared, never copied whole, so subsets are cheap."""

    out: Path
    manifest: dict
    runs: pd.DataFrame
    predictions: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    failures: pd.DataFrame
    duplicates: int = 0
    version: str | None = None  # the method version this view is restricted to, if split
    versions: VersionChoice | None = None  # the one version per method counted, and what was set aside

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    @property
    def classes(self) -> int:
        """K, the dataset's number of classes: the manifest's, else (a study written before datasets
        had names) CIFAR-10's 10, or more if the labels say so."""
        recorded = self.manifest.get("num_classes")
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 2:
            return recorded
        return max(10, int(self.labels.max()) + 1 if len(self.labels) else 10)

    @property
    def data_name(self) -> str:
        """'CIFAR-100, K = 100': the dataset and K, as every header and figure names them."""
        return f"{self.manifest.get('data_description')}, K = {self.classes}"

    @property
    def smoke(self) -> bool:
        return self.manifest.get("preset") == "smoke"

    def stamp(self, what: str) -> str:
        """Provenance printed inside every figure: preset (SMOKE in capitals), data, n."""
        preset = (
            "SMOKE preset (tiny CPU configs, not paper numbers)"
            if self.smoke
            else f"{self.manifest.get('preset')} preset"
        )
        version = f" · method {self.version}" if self.version else ""
        return f"{preset} · data: {self.data_name}{version} · {what}"

    def figure_name(self, name: str) -> str:
        return f"{name}_{self.version}" if self.version else name

    def subset(self, mask: np.ndarray, version: str | None = None) -> LoadedCampaign:
        mask = np.asarray(mask, bool)
        return replace(
            self,
            runs=self.runs[mask].reset_index(drop=True),
            rows=self.rows[mask],
            version=version if version is not None else self.version,
        )

    def mask(self, **where) -> np.ndarray:
        m = np.ones(len(self.runs), bool)
        for k, v in where.items():
            m &= (self.runs[k] == v).to_numpy()
        return m

    def preds(self, mask: np.ndarray, level: int) -> np.ndarray:
        """uint8 (runs in mask, n): only this subset is copied out of the store's array."""
        return self.predictions[self.rows[np.asarray(mask, bool)], level]

    def correct(self, mask: np.ndarray, level: int) -> np.ndarray:
        return self.preds(mask, level) == self.labels[None, :]

    def chunks(
        self, mask: np.ndarray, level: int, size: int = 256
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions within the mask, uint8 predictions) in chunks, for statistics built up by
        counting: the subset is never held whole in a wider type."""
        rows = self.rows[np.asarray(mask, bool)]
        for start in range(0, len(rows), size):
            yield (
                np.arange(start, min(start + size, len(rows))),
                self.predictions[rows[start : start + size], level],
            )


def unique_runs(runs: pd.DataFrame) -> np.ndarray:
    """Positions of the rows to count: each (cell, seed) once per method version and data fingerprint,
    the first by run key."""
    if not len(runs) or not {"cell", "seed"} <= set(runs.columns):
        return np.arange(len(runs))
    order = np.argsort(runs["key"].to_numpy(), kind="stable") if "key" in runs else np.arange(len(runs))
    unit = [c for c in ("method_version", "data_fingerprint", "cell", "seed") if c in runs.columns]
    first = ~runs.iloc[order].duplicated(unit, keep="first").to_numpy()
    return np.sort(order[first])


def campaign_from(
    out: Path,
    manifest: dict,
    runs: pd.DataFrame,
    predictions: np.ndarray,
    labels: np.ndarray,
    failures: pd.DataFrame,
    versions: Mapping[str, str] | None = None,
) -> LoadedCampaign:
    """The runs of one version per method (``versions``, {method spec: version}, else the manifest's:
    the code of the last campaign), each (cell, seed) once."""
    choice = choose_versions(runs, manifest, versions)
    chosen = np.flatnonzero(choice.mask)
    keep = chosen[unique_runs(runs.iloc[chosen].reset_index(drop=True))]
    return LoadedCampaign(
        Path(out),
        manifest,
        runs.iloc[keep].reset_index(drop=True),
        predictions,
        keep,
        np.asarray(labels),
        failures,
        duplicates=len(chosen) - len(keep),
        versions=choice,
    )


def load_campaign(out: str | Path, versions: Mapping[str, str] | None = None) -> LoadedCampaign:
    """A study folder read back: its runs of one version per method (see ``campaign_from``)."""
    out = Path(out)
    manifest = store.read_manifest(out)
    runs, predictions = store.read_runs(out)
    labels = store.load_labels(out)
    if isinstance(predictions, dict):  # only a store spans test sets; a study evaluates on one
        raise store.StoreError(
            f"{out}: runs on several test sets ({', '.join(predictions)}); give a study folder"
        )
    if predictions.shape[0] and predictions.shape[2] != len(labels):
        raise store.StoreError(
            f"{out}: predictions cover {predictions.shape[2]} examples, labels {len(labels)}"
        )
    return campaign_from(out, manifest, runs, predictions, labels, store.load_failures(out), versions)


# ----------------------------------------------------------------------------- shared page pieces


def versions_line(c: LoadedCampaign) -> str:
    """The method versions a page or verdict counts, by method, and what it set aside."""
    counted = c.versions.counted if c.versions else {}
    shown = (
        ", ".join(f"{spec} {v}" for spec, v in counted.items())
        if counted
        else ", ".join(distinct(c.runs, "method_version"))
    )
    note = c.versions.note() if c.versions else ""
    return shown + (f" ({note})" if note else "")


def distinct(runs: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of a record column; ['unknown'] for stores written before it existed."""
    if column not in runs.columns or not len(runs):
        return ["unknown"]
    values = runs[column].fillna("unknown").astype(str)
    return sorted(values.unique())


def identity_views(c: LoadedCampaign) -> list[tuple[str | None, LoadedCampaign]]:
    """The campaign split by method version and data fingerprint (never pooled): [(None, c)] when the
    runs share one of each, else one (label, view) per pair; the label names files, so no spaces."""
    versions = (
        c.runs["method_version"].fillna("unknown").astype(str)
        if "method_version" in c.runs
        else pd.Series(["unknown"] * len(c.runs))
    )
    methods = c.runs["method"].fillna("airbench94").astype(str) if "method" in c.runs else None
    if methods is not None and methods.nunique() > 1 and (versions.groupby(methods).nunique() <= 1).all():
        # methods compared with each other, each at one version: their versions differ by nature
        versions = pd.Series(["per-method"] * len(c.runs), index=c.runs.index)
    data = (
        c.runs["data_fingerprint"].fillna("unknown").astype(str)
        if "data_fingerprint" in c.runs
        else pd.Series(["unknown"] * len(c.runs))
    )
    pairs = sorted(set(zip(versions, data)))
    if len(pairs) <= 1:
        return [(None, c)]
    several_data = len({d for _, d in pairs}) > 1
    views: list[tuple[str | None, LoadedCampaign]] = []
    for v, d in pairs:
        label = f"{v}_data-{d}" if several_data else v
        views.append((label, c.subset(((versions == v) & (data == d)).to_numpy(), label)))
    return views


def cell_order(c: LoadedCampaign) -> list[str]:
    order = [g["label"] for g in c.manifest.get("grid", [])]
    cells = list(dict.fromkeys(c.runs["cell"])) if "cell" in c.runs else []
    return sorted(cells, key=lambda x: order.index(x) if x in order else len(order))
