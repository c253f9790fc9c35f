"""The study registry: one declarative module per study."""
from harness.grid import Study

from . import ablation, calibration, flip_vs_alternating, tta_variance, variance_vs_epochs

STUDIES: dict[str, Study] = {m.STUDY.name: m.STUDY for m in
                             (flip_vs_alternating, tta_variance, calibration, ablation, variance_vs_epochs)}
