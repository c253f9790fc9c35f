"""Defect 4: without --address the campaign starts its own Ray, even when another cluster is
running and RAY_ADDRESS names it (both ways a bare ray.init() would have joined it)."""
import os
import shutil
import tempfile
from pathlib import Path

from harness import store
from helpers import sleeping_study, study_cli
from ray_nodes import free_port, ray_node


def test_a_campaign_without_address_never_joins_a_running_cluster(tmp_path, data_source):
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))        # short: Ray's socket paths are limited
    try:
        check_private_cluster(ray_tmp, tmp_path, data_source)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def check_private_cluster(ray_tmp: Path, tmp_path: Path, data_source: str) -> None:
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    port = free_port()
    with ray_node("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                  "--include-dashboard=false", env=env):
        foreign = (ray_tmp / "ray" / "session_latest").resolve()
        assert (ray_tmp / "ray" / "ray_current_cluster").exists()      # where a bare ray.init() looks
        env["RAY_ADDRESS"] = f"127.0.0.1:{port}"
        out = tmp_path / "out"
        study = sleeping_study(tmp_path, 0.2)        # which cluster runs it is under test, not training
        r = study_cli(str(study), "--seeds", "2", "--device", "cpu", "--workers", "2", "--out", str(out),
                      "--store", str(tmp_path / "store"), "--data", data_source, "--no-report", env=env)
        assert r.returncode == 0, r.stderr
        frame, _ = store.load(out)
        pids = set(frame["worker_pid"])
        assert len(frame) == 2
        sessions = {p.resolve() for p in (ray_tmp / "ray").glob("session_2*")}
        ours = sessions - {foreign}
        assert len(ours) == 1, "the campaign started a cluster of its own"
        logged = lambda session: {int(p.stem.rsplit("-", 1)[-1]) for p in (session / "logs").glob("worker-*.out")}
        assert pids <= logged(ours.pop()) and not pids & logged(foreign)
        assert "(raylet)" not in r.stderr and "INFO" not in r.stderr
