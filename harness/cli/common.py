"""Shared CLI plumbing: user mistakes become one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import math
import sys

from airbench_core.cli import USAGE_ERROR, Parser

from harness.spec.errors import UserError

__all__ = ["USAGE_ERROR", "Parser", "UserError", "fail", "positive_float", "positive_int"]


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
