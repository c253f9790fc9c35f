"""A campaign through --address spreads over two Ray nodes started on this machine."""
import os
import shutil
import tempfile

import pytest

from harness import store
from helpers import study_cli
from ray_nodes import free_port, ray_node

# Token authentication stays on: both nodes and the driver read the token kept under ~/.ray/.
TOKEN_AUTH = {**os.environ, "RAY_AUTH_MODE": "token"}


@pytest.fixture
def two_nodes():
    """Two nodes of one cluster, stopped by signalling their own process groups (never `ray stop`,
    which would stop every Ray on the machine)."""
    port = free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")       # its own temp dir: no cluster file in /tmp/ray
    env = {**TOKEN_AUTH, "RAY_TMPDIR": ray_tmp}
    try:
        with ray_node("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=1",
                      "--include-dashboard=false", env=env):
            with ray_node(f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                          "--num-gpus=1", env=env):
                yield f"127.0.0.1:{port}"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_campaign_through_address_uses_both_nodes(two_nodes, tmp_path, data_source):
    out = tmp_path / "out"
    r = study_cli("tta_variance", "--seeds", "4", "--preset", "smoke", "--address", two_nodes, "--out", str(out),
                  "--store", str(tmp_path / "store"), "--data", data_source, "--no-report", timeout=400,
                  env=TOKEN_AUTH)
    assert r.returncode == 0, r.stderr
    frame, _ = store.load(out)
    assert len(frame) == 4
    assert frame["worker_node"].nunique() == 2, frame[["worker_node", "gpu_slot"]]
