"""Decoupled Nesterov SGD, the LR schedule and Lookahead, as plain functions of the step."""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from .config import TrainConfig


class Epochs(Protocol):
    """Any method's config: its training length."""

    @property
    def epochs(self) -> float: ...


def total_steps(cfg: Epochs, steps_per_epoch: int) -> int:
    return math.ceil(steps_per_epoch * cfg.epochs)


def make_optimizer(net: nn.Module, cfg: TrainConfig, foreach: bool | None = None) -> torch.optim.SGD:
    """lr and weight decay are given per 1024 examples and decoupled from momentum and lr.

    With k = 1024 (1 + 1/(1 - momentum)), the SGD lr is lr/k and the decay strength is
    wd * batch/k; PyTorch multiplies weight_decay by lr, so each group gets strength/its lr.
    BatchNorm biases take ``bias_scaler`` times the lr with the same decay strength.
    """
    k = 1024 * (1 + 1 / (1 - cfg.momentum))
    lr = cfg.lr / k
    wd = cfg.weight_decay * cfg.batch_size / k
    lr_bias = lr * cfg.bias_scaler
    norm_biases = [p for n, p in net.named_parameters() if "norms" in n and p.requires_grad]
    others = [p for n, p in net.named_parameters() if "norms" not in n and p.requires_grad]
    groups = [
        dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias, base_lr=lr_bias),
        dict(params=others, lr=lr, weight_decay=wd / lr, base_lr=lr),
    ]
    return torch.optim.SGD(groups, momentum=cfg.momentum, nesterov=True, foreach=foreach)


def lr_multiplier(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear lr_start -> 1 over the first warmup_frac of steps, then linear 1 -> lr_end."""
    peak = int(cfg.lr_warmup_frac * total)
    if step < peak:
        return cfg.lr_start + (1 - cfg.lr_start) * step / peak
    return 1 + (cfg.lr_end - 1) * (step - peak) / max(total - peak, 1)


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    """Scale every group's base lr (a host float: no device synchronisation)."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * multiplier


def lookahead_decay(step: int, total: int) -> float:
    """d = 0.95^5 (step/total)^3: weak averaging early, strong near the end."""
    return 0.95**5 * (step / total) ** 3


class Lookahead:
    """An averaged copy of every float parameter and buffer, synced every few steps."""

    def __init__(self, net: nn.Module):
        self.live = [t for t in net.state_dict().values() if t.dtype in (torch.half, torch.float)]
        self.avg = [t.detach().clone() for t in self.live]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        """avg <- decay * avg + (1 - decay) * live; live <- avg (two foreach kernels)."""
        torch._foreach_lerp_(self.avg, self.live, 1 - decay)
        torch._foreach_copy_(self.live, self.avg)

    @torch.no_grad()
    def copy_back(self) -> None:
        """live <- avg, leaving the average as it is."""
        torch._foreach_copy_(self.live, self.avg)
