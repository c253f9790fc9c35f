"""airbench as a library: data, augmentation, network, optimizer, TTA and one-run training.

Public names: ``TrainConfig``, ``PRESETS``, ``preset``, ``FLIP_MODES`` (configs, no torch);
``Method`` (what a harness runs), ``BUILTIN_METHODS`` (airbench94/95/96 as Methods); ``Cifar10``, ``DataError``, ``load_cifar10`` (data);
``DeviceData``, ``RunResult``, ``train`` (training). Names are loaded on first use, so reading a
config or a method's fields never imports torch.
"""

from __future__ import annotations

import importlib
import sys
import types

_HOMES = {
    "FLIP_MODES": "config",
    "PRESETS": "config",
    "TrainConfig": "config",
    "preset": "config",
    "Method": "method",
    "BUILTIN_METHODS": "methods",
    "Cifar10": "data",
    "DataError": "data",
    "load_cifar10": "data",
    "DeviceData": "train",
    "RunResult": "result",
    "train": "train",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'airbench_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


class _Package(types.ModuleType):
    """Keeps ``airbench_core.train`` the function, as an eager import did: loading the submodule
    ``airbench_core/train.py`` would otherwise rebind the name to the module."""

    def __setattr__(self, name: str, value) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            value = value.train
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
