"""Test-set and distribution-wise variance of airbench94 as training gets longer."""
from harness.grid import Cell, Study
from harness.analyses import variance_epochs_report

from .base import SMOKE_EPOCHS, base_config

EPOCHS = (2.0, 4.0, 6.0, 9.9, 16.0)


def grid(preset: str) -> list[Cell]:
    epochs = EPOCHS if preset == "full" else SMOKE_EPOCHS
    return [Cell({"epochs": e}, base_config(preset, epochs=e)) for e in epochs]


STUDY = Study("variance_vs_epochs", __doc__.strip(), grid, variance_epochs_report)
