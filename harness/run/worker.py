"""The long-lived worker: loads the data once, then trains run after run on its device.

Used in-process by the local backend and wrapped as a Ray actor (one per GPU slot) by the Ray
backend, so both paths train with the same code.
"""
from __future__ import annotations

import torch

from airbench_core import DeviceData, load_cifar10
from airbench_core.net import NetPool
from airbench_core.train import train_many

from harness.spec.grid import RunSpec
from harness.spec.identity import method_version
from harness.run.method_worker import Outcome, exception_text, placement  # noqa: F401  (re-exported)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class RunWorker:
    def __init__(self, data_source: str, cache_dir: str | None, device: str, threads: int | None = None,
                 compile: bool = False):
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda, but this worker sees no CUDA device")
            torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN pick its fastest kernels
        self.data = load_cifar10(data_source, cache_dir)
        # what the records keep of this worker's code and data (the driver checks the store against its own)
        self.identity = dict(method_version=method_version(), data_fingerprint=self.data.fingerprint)
        self.on_device: dict[tuple, DeviceData] = {}
        self.compile = compile
        self.pool = NetPool()     # networks (and their compiled forms) live as long as the worker

    def info(self) -> dict:
        """Where this worker runs: what the records keep to show how work was spread."""
        return placement(self.identity)

    def run(self, specs: list[RunSpec], save_logits: bool = False) -> list[Outcome]:
        """Train runs that share one config together (packed); a Python error comes back as
        failed outcomes, not an exception, so the campaign can retry or record it."""
        config = specs[0].cell.config
        assert all(s.cell.config == config for s in specs), "a pack shares one config"
        subset = (config.n_train, config.n_test)
        try:
            if subset not in self.on_device:
                self.on_device[subset] = DeviceData.build(self.data, self.device, *subset)
            results = train_many(config, [s.seed for s in specs], self.on_device[subset], self.device,
                                 save_logits, self.compile, self.pool)
            return [Outcome(s, r, None, self.info()) for s, r in zip(specs, results)]
        except Exception as exc:
            return [Outcome(s, None, exception_text(exc), self.info()) for s in specs]
