"""Ray nodes started by a test and stopped by it alone: ``ray start --block`` in its own process
group, ended by signalling that group. (``ray stop`` would stop every Ray on the machine.)"""
from __future__ import annotations

import os
import sys
import shutil
import signal
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the node's process group, wait for its ``ray start`` to exit, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def ray_command() -> str:
    """The ``ray`` script installed beside this interpreter (a venv's bin/ need not be on PATH)."""
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    assert found, f"the ray command comes with the ray package: not beside {sys.executable} nor on PATH"
    return found


@contextmanager
def ray_node(*args: str, env: dict | None = None, ready: str = "This command will now block forever"):
    """A ``ray start ... --block`` node for the ``with`` block; yields its process."""
    ray = ray_command()
    proc = subprocess.Popen([ray, "start", *args, "--block", "--disable-usage-stats"], env=env or os.environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        for line in proc.stdout:               # wait until the node says it is up
            lines.append(line)
            if ready in line:
                break
        assert proc.poll() is None, "".join(lines)
        yield proc
    finally:
        _stop(proc)
        proc.stdout.close()
        proc.wait()
