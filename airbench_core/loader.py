"""Device-resident training batches: flip (none/random/alternating), translation and cutout.

The whole training set lives on the device, normalized once; each epoch is augmented in a few
batched tensor ops, then shuffled and cut into batches (the last partial batch is dropped).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def to_device_images(images: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 NHWC on the host -> normalized NCHW on the device (channels-last under fp16)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).to(dtype) / 255
    mean = torch.tensor(MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device, dtype=dtype).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if dtype == torch.half else x.contiguous()


def flip_mask(mode: str, epoch: int, coins: torch.Tensor, gen: torch.Generator) -> torch.Tensor | None:
    """Which images are mirrored this epoch. Alternating: coin_i XOR (epoch is odd)."""
    if mode == "none":
        return None
    if mode == "random":
        return torch.rand(coins.shape, device=coins.device, generator=gen) < 0.5
    return coins ^ bool(epoch % 2)


def translate(images: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Reflect-pad by ``pad`` and take a random 32x32 crop per image (one shift per image)."""
    if pad == 0:
        return images
    n, size = len(images), images.shape[-1]
    padded = F.pad(images, (pad,) * 4, mode="reflect")
    shifts = torch.randint(0, 2 * pad + 1, (2, n), device=images.device, generator=gen)
    rows = torch.empty((n, images.shape[1], size, padded.shape[-1]), device=images.device, dtype=images.dtype)
    for s in range(2 * pad + 1):  # vertical shift, one masked copy per offset
        m = shifts[0] == s
        rows[m] = padded[m, :, s : s + size, :]
    out = torch.empty_like(images)
    for s in range(2 * pad + 1):  # then horizontal
        m = shifts[1] == s
        out[m] = rows[m, :, :, s : s + size]
    return out


def cutout(images: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a random ``size``x``size`` square per image, placed fully inside the image."""
    if size == 0:
        return images
    n, h = len(images), images.shape[-1]
    corner = torch.randint(0, h - size + 1, (2, n, 1), device=images.device, generator=gen)
    ar = torch.arange(h, device=images.device)
    inside_y = (ar >= corner[0]) & (ar < corner[0] + size)  # n, h
    inside_x = (ar >= corner[1]) & (ar < corner[1] + size)
    mask = inside_y[:, :, None] & inside_x[:, None, :]
    return images.masked_fill(mask[:, None], 0)


class TrainLoader:
    """Yields (inputs, labels) batches; epoch count drives the alternating flip."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        flip: str,
        translate_pad: int,
        cutout_size: int,
        order_gen: torch.Generator,
        aug_gen: torch.Generator,
    ):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.flip, self.pad, self.cutout = flip, translate_pad, cutout_size
        self.order_gen, self.aug_gen = order_gen, aug_gen
        self.coins = torch.rand(len(images), device=images.device, generator=aug_gen) < 0.5
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} training images cannot fill one batch of {batch_size}")

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.batch_size

    def augment(self, epoch: int) -> torch.Tensor:
        images = self.images
        mask = flip_mask(self.flip, epoch, self.coins, self.aug_gen)
        if mask is not None:
            images = torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)
        return cutout(translate(images, self.pad, self.aug_gen), self.cutout, self.aug_gen)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images = self.augment(epoch)
        order = torch.randperm(len(images), device=images.device, generator=self.order_gen)
        for i in range(self.steps_per_epoch):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield images[idx], self.labels[idx]

    def stream(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches without end, with nothing dropped: an epoch's last partial batch is completed
        with the first images of the next epoch (augmented and shuffled as that epoch), so a run
        of S steps sees S x batch_size images in epoch order. Epoch e draws its augmentation and
        order exactly as ``epoch(e)`` does; ``epoch`` itself is unchanged."""
        parts_x: list[torch.Tensor] = []
        parts_y: list[torch.Tensor] = []
        have, epoch = 0, 0
        while True:
            images = self.augment(epoch)
            order = torch.randperm(len(images), device=images.device, generator=self.order_gen)
            start = 0
            while start < len(order):
                idx = order[start : start + self.batch_size - have]
                parts_x.append(images[idx])
                parts_y.append(self.labels[idx])
                have, start = have + len(idx), start + len(idx)
                if have == self.batch_size:
                    yield (
                        (parts_x[0], parts_y[0])
                        if len(parts_x) == 1
                        else (torch.cat(parts_x), torch.cat(parts_y))
                    )
                    parts_x, parts_y, have = [], [], 0
            epoch += 1
