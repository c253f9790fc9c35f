"""Class-wise calibration of the ensemble of runs, per TTA level and flip mode; disagreement vs error."""
from harness.grid import Cell, Study
from harness.analyses import calibration_report

from .base import base_config


def grid(preset: str) -> list[Cell]:
    return [Cell({"flip": flip}, base_config(preset, flip=flip)) for flip in ("random", "alternating")]


STUDY = Study("calibration", __doc__.strip(), grid, calibration_report)
