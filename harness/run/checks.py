"""Every result a method returns is checked before it is stored: a run whose numbers cannot be
trusted (NaN or out-of-range accuracy, predictions of the wrong shape or of classes that do not
exist, an accuracy its own predictions contradict, negative seconds) is a failed run whose error
says which check failed, never a stored success that breaks a report or a plan later."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from harness.run.method_worker import Outcome

CLASSES = 10  # CIFAR-10's K, the default: a prediction is a class index below the dataset's K
ACCURACY_TOLERANCE = 1e-5  # a reported accuracy may differ this much from its recomputed value (float32)
SECONDS = ("train_seconds", "eval_seconds", "wall_seconds")
INVALID = "InvalidResult"


def result_problem(result: Any, labels: np.ndarray, classes: int = CLASSES) -> str | None:
    """Which check ``result`` fails against the test ``labels`` it was evaluated on; None if none."""
    if result is None or not all(hasattr(result, a) for a in ("accuracy", "predictions", *SECONDS)):
        return f"train returned {type(result).__name__}, not an airbench_core.RunResult"
    n = len(labels)
    preds = np.asarray(result.predictions)
    if preds.shape != (3, n):
        return f"predictions have shape {preds.shape}, expected (3, {n}) (3 TTA levels x n_test)"
    if not np.issubdtype(preds.dtype, np.integer):
        return f"predictions are {preds.dtype}, expected integer class indices"
    if n and (preds.min() < 0 or preds.max() >= classes):
        bad = int(preds.max()) if preds.max() >= classes else int(preds.min())
        return f"predictions hold class {bad}, expected classes 0 to {classes - 1}"
    try:
        accuracy = [float(a) for a in result.accuracy]
    except (TypeError, ValueError):
        return f"accuracy {result.accuracy!r} is not three numbers"
    if len(accuracy) != 3:
        return f"accuracy has {len(accuracy)} values, expected 3 (one per TTA level)"
    for level, acc in enumerate(accuracy):
        if not (math.isfinite(acc) and 0.0 <= acc <= 1.0):
            return f"accuracy {acc!r} at TTA level {level} is not a finite fraction in [0, 1]"
        recomputed = float((preds[level] == labels).mean()) if n else acc
        if abs(acc - recomputed) > ACCURACY_TOLERANCE:
            return (
                f"accuracy {acc:.6g} at TTA level {level} differs from {recomputed:.6g}, recomputed "
                f"from its predictions and the test labels"
            )
    for name in SECONDS:
        value = getattr(result, name)
        try:
            ok = math.isfinite(float(value)) and float(value) >= 0.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return f"{name} {value!r} is not a finite number >= 0"
    return None


def checked(outcome: Outcome, labels: np.ndarray, classes: int = CLASSES) -> Outcome:
    """The outcome, or a failed one naming the check its result failed (a failure without an error
    text, a ``train`` that returned None, gets one). ``classes``: the dataset's K."""
    if outcome.result is None and outcome.error:
        return outcome
    problem = result_problem(outcome.result, labels, classes)
    if problem is None:
        return outcome
    return dataclasses.replace(outcome, result=None, error=f"{INVALID}: {problem}")
