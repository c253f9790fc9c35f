"""Exclusive locks on folders: one driver per study folder, one writer per store.

``fcntl.flock`` on a lock file: the kernel drops the lock when its holder exits, however it exits
(SIGKILL included), so a lock never goes stale and needs no clean-up. The file holds the holder's
pid and host only so that a refused driver can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class LockHeld(Exception):
    """Another live process holds the lock; the message names its pid and host."""


@contextmanager
def hold(folder: Path, what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block, or raise LockHeld at once (never wait)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown pid on unknown host"
            raise LockHeld(
                f"{what} {folder} is in use by {holder} (lock {path}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
