"""Studies as data: a study is a list of cells (factors + config); a campaign is cells x seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.spec.defaults import MAX_CELLS, MAX_RUNS
from harness.spec.errors import UserError
from harness.spec.methods import DEFAULT_METHOD, find_method

PRESET_NAMES = ("full", "smoke")
# smoke: 2,000 training / 1,000 test images, narrow, two epochs: a whole study in minutes on a CPU
SMOKE_SIZING = dict(
    n_train=2000, n_test=1000, widths=(16, 32, 32), batch_size=100, whiten_samples=2000, epochs=2.0
)


@dataclass(frozen=True)
class Base:
    """What every cell of a built-in study starts from: a method spec (a built-in name,
    ``package.module:NAME`` or ``file.py:NAME``; see harness.spec.methods) and the user's ``--set``
    overrides. The study's own factors are applied last, so they always keep their values."""

    method: str = DEFAULT_METHOD
    overrides: tuple[tuple[str, Any], ...] = ()

    def config(self, preset_name: str, **study_values: Any) -> Any:
        """The method's config with the sizing of the preset (smoke: the shared sizing's fields the
        method has, then the method's own ``smoke`` fields), the ``--set`` overrides and the study's
        values; unknown fields raise ValueError."""
        method = find_method(self.method)
        have = {f.name for f in dataclasses.fields(method.defaults)}
        sizing: dict[str, Any] = {}
        if preset_name == "smoke":
            sizing = {k: v for k, v in SMOKE_SIZING.items() if k in have} | dict(method.smoke)
        return method.config(**{**sizing, **dict(self.overrides), **study_values})

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "set": {k: list(v) if isinstance(v, tuple) else v for k, v in self.overrides},
        }


@dataclass(frozen=True)
class Cell:
    """One point of a study's grid: the factors a reader sees, and the config they resolve to."""

    factors: dict[str, Any]
    config: Any  # an instance of the method's config dataclass
    method: str | None = None  # the method spec; None: the study's (its Base's) method

    @property
    def method_spec(self) -> str:
        return self.method or DEFAULT_METHOD

    def key(self, seed: int) -> str:
        return find_method(self.method_spec).key(self.config, seed)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.factors.items())


@dataclass(frozen=True)
class RunSpec:
    cell: Cell
    seed: int
    key: str = field(default="", compare=False)  # computed once: a plan may hold millions

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.cell.key(self.seed))


@dataclass(frozen=True)
class Study:
    """What a study trains (its grids) and what it reports (a function of the loaded campaign)."""

    name: str
    description: str
    grid: Callable[[str, Base], list[Cell]]  # (preset name, base) -> cells
    report: Callable[..., list[Any]] = field(default=lambda campaign: [])
    base: Base = Base()
    presets: tuple[str, ...] = PRESET_NAMES
    # (campaign of records) -> the verdicts the terminal prints at the end (harness.report.verdicts)
    verdicts: Callable[..., list[Any]] | None = None

    def cells(self, preset: str) -> list[Cell]:
        if preset not in self.presets:
            raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(self.presets)})")
        return [
            c if c.method else dataclasses.replace(c, method=self.base.method)
            for c in self.grid(preset, self.base)
        ]


def expand(cells: list[Cell], seeds: int | Mapping[str, int]) -> list[RunSpec]:
    """Every cell x seeds 0..N-1, without duplicate keys (cells may share a config). ``seeds`` may
    give each cell (by label) its own N, as an adaptive campaign does; a cell not named gets none."""
    per_cell = seeds if isinstance(seeds, Mapping) else dict.fromkeys((c.label for c in cells), seeds)
    specs: dict[str, RunSpec] = {}
    for seed in range(max(per_cell.values(), default=0)):
        for cell in cells:
            if seed >= per_cell.get(cell.label, 0):
                continue
            key = cell.key(seed)
            if key not in specs:
                specs[key] = RunSpec(cell, seed, key)
    return list(specs.values())


class TooLarge(UserError):
    """A study beyond the bounds on cells or runs, refused before its runs are built."""


def check_size(cells: int, seeds: int) -> None:
    """Refuse more than MAX_CELLS cells, or more than MAX_RUNS cells x seeds."""
    if cells > MAX_CELLS:
        raise TooLarge(
            f"{cells:,} cells is above the bound of {MAX_CELLS:,} cells per study; split the study"
        )
    if cells * seeds > MAX_RUNS:
        raise TooLarge(
            f"{cells:,} cells x {seeds:,} seeds = {cells * seeds:,} runs is above the bound of "
            f"{MAX_RUNS:,} runs per study; use fewer seeds or split the study"
        )
