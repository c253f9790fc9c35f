"""Bounds and default places every layer agrees on (plain values: no imports, nothing to load)."""
from pathlib import Path

DEFAULT_STORE = Path("results") / "store"     # the run store every study shares unless --store says otherwise
MAX_SEEDS = 100_000                           # per cell; a grid beyond this is a typo, not a campaign
