"""Device-resident training batches: flip (none/random/alternating, optionally switching from
random to alternating at an epoch), translation (random or derandomized) and cutout.

The whole training set lives on the device, normalized once; each epoch is augmented in a few
batched tensor ops, then shuffled and cut into batches (the last partial batch is dropped).

Alternating flip is sampling each image's flip *without replacement*: every image walks its own
random order of the two orientations (coin, then not coin), so any two consecutive epochs show it
both ways. Alternating translation is the same idea for the (2p+1)^2 crop offsets: every image walks
its own random permutation of the offsets, one per epoch, and sees no offset twice before it has
seen them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .data import MEAN, STD

TRANSLATE_MODES = ("random", "alternating")


def to_device_images(
    images: np.ndarray,
    device: torch.device,
    dtype: torch.dtype,
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] = (MEAN, STD),
) -> torch.Tensor:
    """uint8 NHWC on the host -> normalized NCHW on the device (channels-last under fp16), with the
    dataset's per-channel statistics (CIFAR-10's by default)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).to(dtype) / 255
    mean = torch.tensor(mean_std[0], device=device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(mean_std[1], device=device, dtype=dtype).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if dtype == torch.half else x.contiguous()


def flip_mask(mode: str, epoch: int, coins: torch.Tensor, gen: torch.Generator) -> torch.Tensor | None:
    """Which images are mirrored this epoch. Alternating: coin_i XOR (epoch is odd)."""
    if mode == "none":
        return None
    if mode == "random":
        return torch.rand(coins.shape, device=coins.device, generator=gen) < 0.5
    return coins ^ bool(epoch % 2)


def offset_permutations(n: int, pad: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, (2 pad + 1)^2) int16: each image's own random order of the crop offsets, offset o being
    the crop at row o // (2 pad + 1), column o % (2 pad + 1) of the padded image."""
    count = (2 * pad + 1) ** 2
    return torch.argsort(torch.rand(n, count, device=device, generator=gen), dim=1).to(torch.int16)


def alternating_shifts(permutations: torch.Tensor, pad: int, epoch: int) -> torch.Tensor:
    """(2, n) row and column crop offsets of epoch ``epoch``: the epoch-th entry (cyclically) of
    each image's permutation, so no image sees an offset twice before it has seen them all."""
    chosen = permutations[:, epoch % permutations.shape[1]].long()
    return torch.stack([chosen // (2 * pad + 1), chosen % (2 * pad + 1)])


def translate(
    images: torch.Tensor, pad: int, gen: torch.Generator, shifts: torch.Tensor | None = None
) -> torch.Tensor:
    """Reflect-pad by ``pad`` and take a 32x32 crop per image (one shift per image): random, or at
    the given (2, n) row and column ``shifts`` (each in 0..2 pad)."""
    if pad == 0:
        return images
    n, size = len(images), images.shape[-1]
    padded = F.pad(images, (pad,) * 4, mode="reflect")
    if shifts is None:
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
    """Yields (inputs, labels) batches; epoch count drives the alternating flip and translation.

    ``flip_switch_epoch`` k > 0 (with flip "alternating"): random flips in epochs 0..k-1, then each
    image flipped the opposite way from its previous epoch. ``translate_mode`` "alternating": each
    image's offsets follow its own random permutation (see the module's docstring)."""

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
        flip_switch_epoch: int = 0,
        translate_mode: str = "random",
    ):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.flip, self.pad, self.cutout = flip, translate_pad, cutout_size
        self.order_gen, self.aug_gen = order_gen, aug_gen
        self.coins = torch.rand(len(images), device=images.device, generator=aug_gen) < 0.5
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} training images cannot fill one batch of {batch_size}")
        if translate_mode not in TRANSLATE_MODES:
            raise ValueError(f"translate_mode must be one of {', '.join(TRANSLATE_MODES)}")
        self.switch = flip_switch_epoch if flip == "alternating" else 0
        self.last_random: tuple[int, torch.Tensor] | None = None  # (epoch, mask) before the switch
        # drawn after the coins, and only when asked for: random translation draws exactly as before
        self.permutations = (
            offset_permutations(len(images), translate_pad, aug_gen, images.device)
            if translate_mode == "alternating" and translate_pad > 0
            else None
        )

    def flip_mask(self, epoch: int) -> torch.Tensor | None:
        """Which images are mirrored in ``epoch`` (epochs are augmented in order)."""
        if self.switch == 0:
            return flip_mask(self.flip, epoch, self.coins, self.aug_gen)
        if epoch < self.switch:
            mask = flip_mask("random", epoch, self.coins, self.aug_gen)
            assert mask is not None  # random flipping always has a mask
            self.last_random = (epoch, mask)
            return mask
        if self.last_random is None or self.last_random[0] != self.switch - 1:
            raise RuntimeError("epochs must be augmented in order when flip_switch_epoch is set")
        return self.last_random[1] ^ bool((epoch - self.switch + 1) % 2)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.batch_size

    def augment(self, epoch: int) -> torch.Tensor:
        images = self.images
        mask = self.flip_mask(epoch)
        if mask is not None:
            images = torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)
        shifts = None if self.permutations is None else alternating_shifts(self.permutations, self.pad, epoch)
        return cutout(translate(images, self.pad, self.aug_gen, shifts), self.cutout, self.aug_gen)

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
