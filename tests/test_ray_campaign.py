"""Ray scheduling on the CPU machine, with two logical GPUs (one Ray instance for the module)."""
import os
import signal
from pathlib import Path

import pytest
import ray

from harness import campaign, store
from harness.backends import RayBackend
from studies import STUDIES


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def run_smoke(cifar, out: Path, seeds: int, on_outcome=None):
    backend = RayBackend(cifar.source, None, "auto", False)
    assert backend.has_gpu() and backend.slots() == 2
    return campaign.run(STUDIES["tta_variance"], "smoke", seeds, out, cifar, backend, progress=False,
                        on_outcome=on_outcome)


def test_two_logical_gpus_both_used_and_rerun_trains_nothing(cluster, cifar, tmp_path):
    summary = run_smoke(cifar, tmp_path, 4)
    assert (summary.trained, summary.failed) == (4, 0)
    frame, preds = store.load(tmp_path)
    assert sorted(frame["gpu_slot"].unique()) == ["0", "1"]
    assert frame["key"].is_unique and len(frame) == 4 and preds.shape == (4, 3, 1000)
    again = run_smoke(cifar, tmp_path, 4)
    assert (again.trained, again.skipped) == (0, 4)


def test_killed_actor_is_restarted_and_every_run_recorded_once(cluster, cifar, tmp_path):
    killed = []

    def kill_first_worker(outcome):
        if not killed:
            killed.append(outcome.worker["worker_pid"])
            os.kill(outcome.worker["worker_pid"], signal.SIGKILL)

    summary = run_smoke(cifar, tmp_path, 6, on_outcome=kill_first_worker)
    frame, _ = store.load(tmp_path)
    assert summary.failed == 0 and len(frame) == 6 and frame["key"].is_unique
    assert sorted(frame["seed"]) == list(range(6))
    assert killed and len(set(frame["worker_pid"])) >= 3, "a new actor process took over from the killed one"
