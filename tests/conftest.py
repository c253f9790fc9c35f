"""Shared fixtures. The real-image tests read the JPEG copy named by $AIRBENCH_DATA."""
from __future__ import annotations

import os

import pytest
import torch

from airbench_core import TrainConfig, load_cifar10, preset

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_source() -> str:
    source = os.environ.get("AIRBENCH_DATA")
    if not source or not os.path.exists(source):
        pytest.fail("set AIRBENCH_DATA to the CIFAR-10 JPEG copy (../shared/data/cifar10-jpeg.tar.gz)")
    return source


@pytest.fixture(scope="session")
def cifar(data_source):
    return load_cifar10(data_source)


def tiny_config(**overrides) -> TrainConfig:
    """A few seconds on a CPU: 1,000 training images, narrow widths, one epoch."""
    base = dict(n_train=1000, n_test=500, widths=(16, 32, 32), batch_size=100, epochs=1.0,
                whiten_samples=500)
    return preset("airbench94", **{**base, **overrides})
