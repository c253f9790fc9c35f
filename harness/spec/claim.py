"""A record claim as a researcher states it: "mean TTA-2 accuracy above 94.0%, in under 2.59 s per
run, beating airbench94_muon on the same GPU model". From a study file's ``[claim]`` table or the
``harness.claim`` command line; checked here, before anything runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.spec.errors import UserError

CLAIM_KEYS = ("accuracy", "seconds", "reference", "tta_level", "alpha")


@dataclass(frozen=True)
class ClaimSpec:
    """``accuracy``: the target in percent (the claim is "mean > accuracy"); ``seconds``: a time per
    run (train + eval) to beat on one GPU model; ``reference``: a method (or a study file's variant)
    to beat on the same GPU model."""

    accuracy: float
    seconds: float | None = None
    reference: str | None = None
    tta_level: int = 2
    alpha: float = 0.05

    def record(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "seconds": self.seconds,
            "reference": self.reference,
            "tta_level": self.tta_level,
            "alpha": self.alpha,
        }

    def statement(self) -> str:
        text = f"mean TTA-{self.tta_level} accuracy > {self.accuracy:.2f}%"
        if self.seconds is not None:
            text += f", in < {self.seconds:g} s per run (train + eval) on one GPU model"
        if self.reference is not None:
            text += f", better than {self.reference} on the same GPU model"
        return text


def _shown(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def check_claim(
    accuracy: Any,
    seconds: Any = None,
    reference: Any = None,
    tta_level: Any = 2,
    alpha: Any = 0.05,
    where: str = "claim",
    sep: str = ".",
) -> ClaimSpec:
    """A ClaimSpec, or a UserError naming ``where`` and the key (``sep`` joins them: "." in a file,
    " --" on the command line)."""
    acc = _number(accuracy)
    if acc is None or not 1 < acc < 100:  # 0.94 is a fraction written where percent goes
        raise UserError(
            f"{where}{sep}accuracy: expected a target in percent between 1 and 100 (94.0, not 0.94), "
            f"got {_shown(accuracy)}"
        )
    secs = None if seconds is None else _number(seconds)
    if seconds is not None and (secs is None or secs <= 0):
        raise UserError(f"{where}{sep}seconds: expected a positive number of seconds, got {_shown(seconds)}")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise UserError(f"{where}{sep}reference: expected the name of a method, got {_shown(reference)}")
    if isinstance(tta_level, bool) or tta_level not in (0, 1, 2):
        raise UserError(f"{where}{sep}tta_level: expected 0, 1 or 2, got {_shown(tta_level)}")
    a = _number(alpha)
    if a is None or not 0 < a < 0.5:
        raise UserError(f"{where}{sep}alpha: expected a number between 0 and 0.5, got {_shown(alpha)}")
    return ClaimSpec(acc, secs, reference, int(tta_level), a)


def parse_claim(table: Any, source: str) -> ClaimSpec:
    """A study file's ``[claim]`` table."""
    where = f"{source}: claim"
    if not isinstance(table, Mapping):
        raise UserError(f"{where}: expected a table with accuracy = PERCENT, got {_shown(table)}")
    for key in table:
        if key not in CLAIM_KEYS:
            raise UserError(f"{where}.{key}: unknown key (expected {', '.join(CLAIM_KEYS)})")
    if "accuracy" not in table:
        raise UserError(f"{where}.accuracy: missing; expected the target in percent, e.g. accuracy = 94.0")
    return check_claim(
        table["accuracy"],
        table.get("seconds"),
        table.get("reference"),
        table.get("tta_level", 2),
        table.get("alpha", 0.05),
        where,
    )
