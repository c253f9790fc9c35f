"""The airbench network: frozen patch-whitening conv, three conv blocks, a scaled linear head."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

WHITEN_KERNEL = 2
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL**2   # 12 eigen-filters and their negatives


class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1 (not trained), bias trained, tiny eps; kept in fp32 under fp16."""

    def __init__(self, num_features: int, momentum: float):
        super().__init__(num_features, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    def __init__(self, cin: int, cout: int, identity_init: bool):
        self.identity_init = identity_init
        super().__init__(cin, cout, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.identity_init:
            w = self.weight.data
            nn.init.dirac_(w[: w.size(1)])


class ConvBlock(nn.Module):
    """conv -> pool -> BN -> GELU -> conv -> BN -> GELU, plus a residual third conv when asked."""

    def __init__(self, cin: int, cout: int, cfg: TrainConfig):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.activ = nn.GELU()
        self.convs = nn.ModuleList([Conv(cin if i == 0 else cout, cout, cfg.identity_init)
                                    for i in range(cfg.convs_per_block)])
        self.norms = nn.ModuleList([BatchNorm(cout, cfg.bn_momentum) for _ in range(cfg.convs_per_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norms[0](self.pool(self.convs[0](x))))
        x = self.activ(self.norms[1](self.convs[1](x)))
        if len(self.convs) == 3:
            x0 = x
            x = self.activ(self.norms[2](self.convs[2](x)) + x0)
        return x


class Net(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        w1, w2, w3 = cfg.widths
        self.whiten = nn.Conv2d(3, WHITEN_WIDTH, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad = not cfg.whiten
        self.activ = nn.GELU()
        self.blocks = nn.Sequential(ConvBlock(WHITEN_WIDTH, w1, cfg), ConvBlock(w1, w2, cfg), ConvBlock(w2, w3, cfg))
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(w3, 10, bias=False)
        self.logit_scale = cfg.logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.activ(self.whiten(x))))
        return self.head(x.flatten(1)) * self.logit_scale


def patch_covariance(images: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Uncentered covariance of every 2x2 patch (12 values) of normalized images, in fp32."""
    c, k = images.shape[1], WHITEN_KERNEL
    cov = torch.zeros(c * k * k, c * k * k, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        p = part.float().unfold(2, k, 1).unfold(3, k, 1)            # N, C, H', W', k, k
        p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)      # rows laid out like conv weights
        cov += (p.T @ p).double()
        count += p.shape[0]
    return (cov / count).float()


def whitening_weights(cov: torch.Tensor, eps: float) -> torch.Tensor:
    """Eigenvectors scaled by 1/sqrt(eigenvalue + eps), largest first, then their negatives."""
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
    filters = eigenvectors / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]
    filters = filters.reshape(-1, 3, WHITEN_KERNEL, WHITEN_KERNEL)
    return torch.cat([filters, -filters])


def make_net(cfg: TrainConfig, init_seed: int, whiten_images: torch.Tensor | None,
             device: torch.device, half: bool) -> Net:
    """Build on CPU under its own generator (so init depends only on ``init_seed``), then move."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net = Net(cfg)
    if cfg.whiten and whiten_images is not None:
        net.whiten.weight.data.copy_(whitening_weights(patch_covariance(whiten_images), cfg.whiten_eps))
    net = net.to(device)
    if half:
        net = net.half().to(memory_format=torch.channels_last)
        for m in net.modules():
            if isinstance(m, BatchNorm):
                m.float()
    return net
