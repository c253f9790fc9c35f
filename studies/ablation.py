"""Each feature of airbench94 turned off in turn, and the epochs each variant needs to reach the target."""
from harness.grid import Cell, Study
from harness.analyses import ablation_report

from .base import SMOKE_EPOCHS, base_config

EPOCHS = (8.0, 9.9, 12.0, 16.0)
# TTA needs no runs of its own: the baseline's TTA-0 accuracy is the "no TTA" variant.
VARIANTS = {
    "baseline": {},
    "no whitening": {"whiten": False},
    "no identity init": {"identity_init": False},
    "no bias lr scaling": {"bias_scaler": 1.0},
    "no lookahead": {"lookahead": False},
    "random flip": {"flip": "random"},
}


def grid(preset: str) -> list[Cell]:
    epochs = EPOCHS if preset == "full" else SMOKE_EPOCHS
    return [Cell({"variant": name, "epochs": e}, base_config(preset, epochs=e, **changes))
            for name, changes in VARIANTS.items() for e in epochs]


STUDY = Study("ablation", __doc__.strip(), grid, ablation_report)
