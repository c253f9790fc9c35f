"""Shared fixtures. The real-image tests read the CIFAR-10 source named by $AIRBENCH_DATA: any source
that ``--data`` takes ('download', a cifar-10-batches-py folder, an image tree, a .tar/.tar.gz)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from airbench_core import DataError, TrainConfig, load_cifar10, preset
from airbench_core.data import DATA_ENV

# Under pytest-xdist (`-n 4` in addopts) each worker process trains on one thread. Four processes on a
# 2-core machine: much of the suite waits (CLI subprocesses starting, Ray clusters, sleeping simulated
# runs, Slurm), and the other processes train meanwhile (measured: 422 s with -n 4, 458 s with -n 3,
# 495-508 s with -n 2).
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1)
torch.set_num_threads(THREADS)

SOURCES = (
    "'download', a cifar-10-batches-py folder, an image tree train/<class>/... test/<class>/... "
    "or a .tar.gz of one (e.g. ../shared/data/cifar10-jpeg.tar.gz)"
)


# End-to-end tests (campaigns, CLI subprocesses, Ray clusters, long-lived workers), marked slow here so
# that their modules need no edit: whole modules, and single tests by module and function name. Slow
# tests in the core's test files carry @pytest.mark.slow themselves.
SLOW_MODULES = (
    "test_report.py",
    "test_two_nodes.py",
    "test_cli.py",
    "test_ray_campaign.py",
    "test_acceptance.py",
    "test_campaign_local.py",
    "test_custom_method.py",
)
SLOW_TESTS = (("test_fidelity.py", "test_a_long_lived_workers_later_run_equals_a_fresh_workers"),)


# The files that take longest, longest first: pytest-xdist (--dist loadfile --no-loadscope-reorder)
# hands files out in collection order, one to each process and then a second to each, so starting with
# the long ones leaves the short ones to fill the gaps at the end. test_report.py leads: it builds the
# shared smoke campaign (flip_smoke) that test_experiments.py and test_cli.py read; test_cli.py comes
# fifth, so that with 2 to 4 processes it starts after that campaign is built, not waiting for it.
LONGEST_FIRST = (
    "test_report.py",
    "test_experiments.py",
    "test_fidelity.py",
    "test_fast_paths.py",
    "test_cli.py",
    "test_two_nodes.py",
    "test_training.py",
    "test_ray_campaign.py",
    "test_slurm.py",
    "test_campaign_local.py",
    "test_store.py",
    "test_reliability.py",
    "test_custom_method.py",
    "test_acceptance.py",
    "test_method_faster.py",
    "test_bench_campaign.py",
    "test_researcher.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            item.path.name in SLOW_MODULES
            or (item.path.name, getattr(item, "originalname", item.name)) in SLOW_TESTS
        ):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept


@pytest.fixture(scope="session")
def cifar():
    """CIFAR-10 loaded (and validated) by airbench_core.data, exactly as ``--data`` would load it."""
    source = os.environ.get(DATA_ENV)
    if not source:
        pytest.fail(f"set {DATA_ENV} to a CIFAR-10 source: {SOURCES}", pytrace=False)
    try:
        return load_cifar10(source)
    except DataError as exc:
        pytest.fail(f"{DATA_ENV}={source}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def data_source(cifar) -> str:
    """The local path the data was loaded from (for 'download': the downloaded folder), so that
    workers and CLI runs started by a test read the same files without downloading again."""
    return cifar.source


def tiny_config(**overrides) -> TrainConfig:
    """A few seconds on a CPU: 1,000 training images, narrow widths, one epoch."""
    base = dict(n_train=1000, n_test=500, widths=(16, 32, 32), batch_size=100, epochs=1.0, whiten_samples=500)
    return preset("airbench94", **{**base, **overrides})


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder ``build(folder)`` fills once for the whole test run, even across pytest-xdist workers:
    the first worker to need it builds it under a file lock in their shared temp folder; the others
    wait and read it. Read-only: tests that change it copy it first."""
    import fcntl

    shared = (
        tmp_path_factory.getbasetemp().parent
        if os.environ.get("PYTEST_XDIST_WORKER")
        else tmp_path_factory.getbasetemp()
    )
    folder = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "done").exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            (folder / "done").write_text("")
    return folder


@pytest.fixture(scope="session")
def flip_smoke(tmp_path_factory, data_source) -> Path:
    """The suite's one trained smoke campaign: flip_vs_alternating, 2 seeds, local backend, with its
    report: ``out/`` (the study folder) and ``store/``."""
    from helpers import study_cli

    def build(base: Path) -> None:
        r = study_cli(
            "flip_vs_alternating",
            "--seeds",
            "2",
            "--preset",
            "smoke",
            "--backend",
            "local",
            "--out",
            str(base / "out"),
            "--store",
            str(base / "store"),
            "--data",
            data_source,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr

    return built_once(tmp_path_factory, "flip_smoke", build)


@pytest.fixture(scope="session")
def tta_smoke(tmp_path_factory, flip_smoke, data_source) -> Path:
    """A finished tta_variance smoke campaign (2 seeds, no report): ``out/`` and ``store/``. Its cell is
    flip_vs_alternating's (alternating flip, 2 epochs), so its runs are found in a copy of flip_smoke's
    store, not trained again."""
    import shutil

    from helpers import study_cli

    def build(base: Path) -> None:
        shutil.copytree(flip_smoke / "store", base / "store")
        r = study_cli(
            "tta_variance",
            "--seeds",
            "2",
            "--preset",
            "smoke",
            "--backend",
            "local",
            "--out",
            str(base / "out"),
            "--store",
            str(base / "store"),
            "--data",
            data_source,
            "--no-report",
        )
        assert r.returncode == 0 and "every run already in" in r.stderr, r.stderr

    return built_once(tmp_path_factory, "tta_smoke", build)
