"""What the built-in studies share: the epochs of their smoke grids (their full grids are their own)."""

from __future__ import annotations

SMOKE_EPOCHS = (1.0, 2.0)
