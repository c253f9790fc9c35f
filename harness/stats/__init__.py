"""Statistics: estimators, intervals, tests, confidence sequences and planning.

Pure functions of arrays (numpy and scipy only, no I/O), each tested against simulated data whose
true answer is known. ``harness.stats`` itself holds the estimators, intervals and tests
(``mean_ci``, ``std_ci``, ``paired``, ``welch``, ``holm``, ``t_test_power``,
``minimum_detectable_difference``, ``equivalent_epochs``, ``distribution_variance``, ``cace``,
``calibration``, ...); ``harness.stats.sequential`` the anytime-valid sequences and adaptive
decisions; ``harness.stats.betting`` the betting confidence sequence for bounded means;
``harness.stats.robust`` which runs count as diverged; ``harness.stats.planning`` what planned
seeds can resolve and cost.
"""

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """The estimators are this package's own names, loaded on first use (scipy takes a second to
    import, and the sequences and study-file checks need none of it)."""
    if name.startswith("__"):
        raise AttributeError(name)
    estimators = importlib.import_module("harness.stats.estimators")
    try:
        return getattr(estimators, name)
    except AttributeError:
        raise AttributeError(f"module 'harness.stats' has no attribute {name!r}") from None
