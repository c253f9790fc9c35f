"""Shared CLI plumbing: user mistakes become one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import math
import sys

from airbench_core.cli import USAGE_ERROR, Parser
from harness.spec.errors import UserError

__all__ = ["USAGE_ERROR", "Parser", "UserError", "fail", "positive_float", "positive_int", "quiet_numerics"]


def quiet_numerics(main):
    """A command's ``main``, with numpy's RuntimeWarnings (a mean of no pairs, a std of one run) kept
    off the terminal: the report already shows such an estimate as n/a, with the reason."""
    import functools
    import warnings

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            return main(*args, **kwargs)

    return wrapper


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value}")
    return value


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR
