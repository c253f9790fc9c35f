"""airbench as a library: data, augmentation, network, optimizer, TTA and one-run training."""
from .config import FLIP_MODES, PRESETS, TrainConfig, preset
from .data import Cifar10, DataError, load_cifar10
from .train import DeviceData, RunResult, train

__all__ = ["FLIP_MODES", "PRESETS", "TrainConfig", "preset", "Cifar10", "DataError", "load_cifar10",
           "DeviceData", "RunResult", "train"]
