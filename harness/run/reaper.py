"""Ends the private Ray cluster's processes when the driver that started it dies, however it dies.

Ray ties its GCS and raylet to the driver, but the raylet's children (the dashboard agent and the
runtime-env agent) are reparented to init and linger for minutes after a SIGKILLed driver. The
driver starts this script (``python reaper.py``, standard library only, in its own session so a
Ctrl-C to the driver's group does not reach it) and writes the cluster's process ids to its stdin,
keeping the pipe open. When the driver dies, the kernel closes the pipe; the script then kills every
listed process that is still the same process (same start time) and whatever runs under it.

Linux only (it reads /proc); elsewhere the driver does not start it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None once it is gone): with the pid, an
    identity that a recycled pid does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children first, then theirs)."""
    found, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def start(pids: list[int]) -> subprocess.Popen[str]:
    """Start the reaper for ``pids``; the caller keeps the returned process's stdin open for as long
    as the processes should live and closes it (or dies) to end them."""
    reaper = subprocess.Popen(
        [sys.executable, "-S", __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    assert reaper.stdin is not None
    reaper.stdin.write("".join(f"{pid} {start_ticks(pid)}\n" for pid in pids))
    reaper.stdin.flush()
    return reaper


def main() -> None:
    """Read ``PID TICKS`` lines until EOF, then kill those processes (and their descendants) that are
    still the ones listed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listed = []
    for line in sys.stdin:
        pid, ticks = line.split()
        listed.append((int(pid), ticks))
    ours = [pid for pid, ticks in listed if str(start_ticks(pid)) == ticks]
    for victim in ours + [d for pid in ours for d in descendants(pid)]:
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)


if __name__ == "__main__":
    main()
