"""Random vs alternating vs no flipping, across training lengths (Jordan 2024, Sec. 3.6)."""
from harness.grid import Cell, Study
from harness.analyses import flip_report

from .base import SMOKE_EPOCHS, base_config

EPOCHS = (4.0, 6.0, 8.0, 9.9, 12.0, 16.0)


def grid(preset: str) -> list[Cell]:
    epochs = EPOCHS if preset == "full" else SMOKE_EPOCHS
    return [Cell({"flip": flip, "epochs": e}, base_config(preset, flip=flip, epochs=e))
            for flip in ("none", "random", "alternating") for e in epochs]


STUDY = Study("flip_vs_alternating", __doc__.strip(), grid, flip_report)
