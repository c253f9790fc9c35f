"""Studies as data: a study is a list of cells (factors + config); a campaign is cells x seeds."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airbench_core import TrainConfig

PRESET_NAMES = ("full", "smoke")


@dataclass(frozen=True)
class Cell:
    """One point of a study's grid: the factors a reader sees, and the config they resolve to."""

    factors: dict[str, Any]
    config: TrainConfig

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.factors.items())


@dataclass(frozen=True)
class RunSpec:
    cell: Cell
    seed: int
    key: str = field(default="", compare=False)     # computed once: a plan may hold millions

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.cell.config.key(self.seed))


@dataclass(frozen=True)
class Study:
    """What a study trains (its grids) and what it reports (a function of the loaded campaign)."""

    name: str
    description: str
    grid: Callable[[str], list[Cell]]          # preset name ('full' or 'smoke') -> cells
    report: Callable[..., list] = field(default=lambda campaign: [])

    def cells(self, preset: str) -> list[Cell]:
        if preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESET_NAMES)})")
        return self.grid(preset)


def expand(cells: list[Cell], seeds: int) -> list[RunSpec]:
    """Every cell x seeds 0..N-1, without duplicate keys (cells may share a config)."""
    specs: dict[str, RunSpec] = {}
    for seed in range(seeds):
        for cell in cells:
            key = cell.config.key(seed)
            if key not in specs:
                specs[key] = RunSpec(cell, seed, key)
    return list(specs.values())
