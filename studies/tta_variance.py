"""Test-set vs distribution-wise variance at each TTA level, from the same airbench94 runs."""
from harness.grid import Cell, Study
from harness.analyses import tta_variance_report

from .base import base_config


def grid(preset: str) -> list[Cell]:
    return [Cell({"epochs": base_config(preset).epochs}, base_config(preset))]


STUDY = Study("tta_variance", __doc__.strip(), grid, tta_variance_report)
