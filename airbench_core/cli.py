"""Command-line plumbing shared by every entry point: a user mistake is one line and exit status 2."""

from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage dump) and still exit 2."""

    def error(self, message: str):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)
