"""Folder locks: a second holder is refused with the first one's pid and host; SIGKILL frees it."""

import os
import signal
import socket
import subprocess
import sys

import pytest
from helpers import ROOT

from harness.store.lock import LockHeld, hold

HOLDER = """
import sys
from pathlib import Path
from harness.store.lock import hold
with hold(Path(sys.argv[1]), "store"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_holder_is_named_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        cwd=ROOT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=f"in use by pid {proc.pid} on host {socket.gethostname()}"):
            with hold(tmp_path, "store"):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with hold(tmp_path, "store") as path:  # the kernel dropped the dead holder's lock
        assert f"pid {os.getpid()}" in path.read_text()


def test_one_process_cannot_take_the_same_lock_twice(tmp_path):
    with hold(tmp_path, "study folder"):
        with pytest.raises(LockHeld, match=f"study folder {tmp_path} is in use by pid {os.getpid()}"):
            with hold(tmp_path, "study folder"):
                pass
    with hold(tmp_path, "study folder"):  # released on leaving the block
        pass
