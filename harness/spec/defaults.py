"""Bounds and default places every layer agrees on (plain values: no imports, nothing to load)."""

from pathlib import Path

DEFAULT_STORE = Path("results") / "store"  # the run store every study shares unless --store says otherwise
MAX_SEEDS = 100_000  # per cell; a grid beyond this is a typo, not a campaign
MAX_CELLS = 10_000  # per study: a grid beyond this is a typo, not a campaign
MAX_RUNS = 10_000_000  # cells x seeds of one study
SCREEN_CELLS = 40  # the dry run lists this many cells, then sums up the rest
