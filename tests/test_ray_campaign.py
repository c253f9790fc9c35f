"""Ray scheduling on the CPU machine, with two logical GPUs (one private Ray instance for the module)."""

import os
import signal
from pathlib import Path

import pytest
import ray

from harness import store
from harness.run import campaign
from harness.run.backends import RayBackend
from harness.spec.grid import Base, Cell, Study


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


# Real training through Ray's actors (RunWorker, the method resolved from plain fields): one smoke
# cell for one epoch, half the smoke preset's training.
ONE_EPOCH = Study(
    "one_epoch",
    "the smoke cell for one epoch",
    lambda preset, base: [Cell({"epochs": 1.0}, Base().config("smoke", epochs=1.0))],
)


def run_smoke(cifar, out: Path, seeds: int, on_outcome=None, study=ONE_EPOCH, **backend_options):
    backend = RayBackend(cifar.source, None, "auto", False, **backend_options)
    assert backend.has_gpu() and backend.slots() == 2
    return campaign.run(study, "smoke", seeds, out, cifar, backend, progress=False, on_outcome=on_outcome)


def run_sleeping(out: Path, seeds: int, on_outcome=None, **backend_options):
    """A campaign of the simulated method (each run sleeps 0.3 s): what killing actors tests is Ray's
    and the backend's bookkeeping, and its actors restart in a second where a trainer's take ten."""
    from airbench_core.simulated import METHOD, SimulatedConfig, SimulatedData
    from harness.bench.campaign import simulated_study

    data = SimulatedData(1000)
    backend = RayBackend("", None, "auto", False, method=METHOD, method_data=data, **backend_options)
    assert backend.has_gpu() and backend.slots() == 2
    return campaign.run(
        simulated_study(SimulatedConfig(run_seconds=0.3, n_test=1000)),
        "full",
        seeds,
        out,
        data,
        backend,
        progress=False,
        on_outcome=on_outcome,
    )


def test_two_logical_gpus_both_used_and_rerun_trains_nothing(cluster, cifar, tmp_path):
    summary = run_smoke(cifar, tmp_path, 2)  # one run handed to each actor first
    assert (summary.trained, summary.failed) == (2, 0)
    frame, preds = store.load(tmp_path)
    assert sorted(frame["gpu_slot"]) == ["0", "1"]
    assert frame["key"].is_unique and len(frame) == 2 and preds.shape == (2, 3, 1000)
    again = run_smoke(cifar, tmp_path, 2)
    assert (again.trained, again.skipped) == (0, 2)


def kill_first_worker(killed: list):
    def on_outcome(outcome):
        if not killed and outcome.result is not None:
            killed.append(outcome.worker["worker_pid"])
            os.kill(outcome.worker["worker_pid"], signal.SIGKILL)

    return on_outcome


def test_killed_actor_is_restarted_by_ray_and_every_run_recorded_once(cluster, tmp_path):
    killed = []
    summary = run_sleeping(tmp_path, 6, on_outcome=kill_first_worker(killed))
    frame, _ = store.load(tmp_path)
    assert summary.failed == 0 and len(frame) == 6 and frame["key"].is_unique
    assert summary.retries == 0, "Ray restarted the actor and retried its task: no attempt failed"
    assert summary.restarts >= 1 and f"{summary.restarts} worker restarts" in summary.line()
    assert sorted(frame["seed"]) == list(range(6))
    assert killed and len(set(frame["worker_pid"])) >= 3, "a new actor process took over from the killed one"


def test_an_actor_ray_cannot_restart_is_replaced_by_the_backend_and_its_run_retried(cluster, tmp_path):
    """The backend's own dead-actor branch: with Ray's restarts and task retries off, the next call on
    the killed actor raises; the backend replaces the actor and the campaign retries the run."""
    killed, outcomes = [], []
    on_outcome = kill_first_worker(killed)
    summary = run_sleeping(
        tmp_path, 4, on_outcome=lambda o: (outcomes.append(o), on_outcome(o)), max_restarts=0
    )
    died = [o for o in outcomes if o.result is None]
    assert died and all(o.error.startswith("worker died: ") for o in died)
    assert "(raylet)" not in died[0].error
    assert (summary.trained, summary.failed, summary.retries, summary.recovered) == (
        4,
        0,
        len(died),
        len(died),
    )
    assert summary.restarts == len(died), "each replaced actor is a worker restart"
    frame, _ = store.load(tmp_path)
    assert len(frame) == 4 and frame["key"].is_unique
    assert list(frame["worker_pid"]).count(killed[0]) == 1, (
        "the killed actor trained nothing after its first run"
    )


def test_a_failing_run_keeps_its_root_cause_through_ray(cluster, cifar, tmp_path):
    """Defect 11: the worker's exception comes back complete and first, not behind Ray's wrapper."""
    bad = Base().config("smoke", epochs=1.0, batch_size=5000)
    study = Study(
        "tta_variance", "a cell that cannot train", lambda preset, base: [Cell({"cell": "bad"}, bad)]
    )
    backend = RayBackend(cifar.source, None, "auto", False)
    summary = campaign.run(study, "smoke", 1, tmp_path, cifar, backend, retries=0, progress=False)
    assert summary.failed == 1
    error = store.load_failures(tmp_path)["error"].iloc[0]
    assert error.startswith("ValueError: 2000 training images cannot fill one batch of 5000")
    assert "Ray" not in error and error.endswith(")")


def backend(device: str, gpus: float, cpus: float, gpus_per_run: float = 1.0, workers=None) -> RayBackend:
    """The scheduling arithmetic of a RayBackend, without starting Ray."""
    b = RayBackend.__new__(RayBackend)
    b.device, b.total_gpus, b.total_cpus, b.gpus_per_run, b.workers = (
        device,
        gpus,
        cpus,
        gpus_per_run,
        workers,
    )
    return b


def test_slots_are_gpus_over_gpus_per_run_else_workers_or_cpus():
    assert backend("auto", 2.0, 8.0).slots() == 2
    assert backend("auto", 2.0, 8.0, gpus_per_run=0.5).slots() == 4
    assert backend("auto", 3.0, 8.0, gpus_per_run=0.3).slots() == 10
    assert backend("auto", 1.0, 8.0, gpus_per_run=2.0).slots() == 1
    assert backend("cpu", 2.0, 8.0, gpus_per_run=0.5).slots() == 8
    assert backend("cpu", 2.0, 8.0, workers=3).slots() == 3


def test_an_actor_past_the_run_timeout_is_killed_and_replaced_and_the_attempt_failed(cluster, tmp_path):
    """Issue 28.7: a hung run (a long sleep) is stopped by killing its actor; its queued work goes to
    the replacement untried, and the other cell's runs are all stored."""
    from airbench_core.simulated import METHOD, SimulatedData

    data = SimulatedData(200)
    cells = [
        Cell({"run": name}, METHOD.defaults.__class__(run_seconds=s, n_test=200), "simulated")
        for name, s in (("quick", 0.1), ("hung", 600.0))
    ]
    study = Study("sleepers", "runs that hang", grid=lambda preset, base: cells, presets=("full",))
    backend = RayBackend(
        "", None, "auto", False, method=METHOD, method_data=data, run_timeout=2.0, start_allowance=20.0
    )
    summary = campaign.run(study, "full", 2, tmp_path, data, backend, retries=0, progress=False)
    assert (summary.trained, summary.failed) == (2, 2) and summary.restarts >= 2
    failures = store.load_failures(tmp_path)
    assert set(failures["cell"]) == {"run=hung"}
    assert all(e.startswith("RunTimeout: the attempt ran past --run-timeout 2 s") for e in failures["error"])
    assert set(store.load(tmp_path)[0]["cell"]) == {"run=quick"}
