"""Test-time augmentation on logits: level 0 image, 1 + mirror, 2 + two 1-pixel shifts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mirror_mean(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * net(x) + 0.5 * net(x.flip(-1))


@torch.no_grad()
def tta_logits(net: nn.Module, images: torch.Tensor, batch: int = 2000) -> list[torch.Tensor]:
    """Logits at TTA levels 0, 1 and 2 from one pass of six views per image (fp32, on device)."""
    net.eval()
    levels: list[list[torch.Tensor]] = [[], [], []]
    size = images.shape[-1]
    for x in images.split(batch):
        plain, mirrored = net(x).float(), net(x.flip(-1)).float()
        level1 = 0.5 * plain + 0.5 * mirrored
        padded = F.pad(x, (1,) * 4, mode="reflect")
        up_left = mirror_mean(net, padded[:, :, 0:size, 0:size]).float()
        down_right = mirror_mean(net, padded[:, :, 2 : size + 2, 2 : size + 2]).float()
        level2 = 0.5 * level1 + 0.25 * up_left + 0.25 * down_right
        for out, logits in zip(levels, (plain, level1, level2)):
            out.append(logits)
    return [torch.cat(parts) for parts in levels]
