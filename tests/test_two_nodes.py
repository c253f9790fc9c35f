"""A campaign through --address spreads over two Ray nodes started on this machine."""
import os
import shutil
import socket
import subprocess

import pytest

from harness import store
from helpers import study_cli


# Token authentication stays on: both nodes and the driver read the token kept under ~/.ray/.
TOKEN_AUTH = {**os.environ, "RAY_AUTH_MODE": "token"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str) -> subprocess.CompletedProcess:
    ray = shutil.which("ray")
    assert ray, "the ray command comes with the ray package"
    return subprocess.run([ray, *args], capture_output=True, text=True, timeout=180, env=TOKEN_AUTH)


@pytest.fixture
def two_nodes():
    port = free_port()
    head = ray_cli("start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                   "--num-gpus=1", "--include-dashboard=false", "--disable-usage-stats")
    assert head.returncode == 0, head.stderr
    try:
        second = ray_cli("start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                         "--num-gpus=1", "--disable-usage-stats")
        assert second.returncode == 0, second.stderr
        yield f"127.0.0.1:{port}"
    finally:
        ray_cli("stop", "--force")


def test_campaign_through_address_uses_both_nodes(two_nodes, tmp_path, data_source):
    out = tmp_path / "out"
    r = study_cli("tta_variance", "--seeds", "4", "--preset", "smoke", "--address", two_nodes, "--out", str(out),
                  "--data", data_source, "--no-report", timeout=400, env=TOKEN_AUTH)
    assert r.returncode == 0, r.stderr
    frame, _ = store.load(out)
    assert len(frame) == 4
    assert frame["worker_node"].nunique() == 2, frame[["worker_node", "gpu_slot"]]
