"""Built-in methods as their published scripts have them: the whitening filters' order (which
components block1's identity init passes when block1 is narrower than 24 channels), the faster
method's channels-last layout, and its smoke preset."""

from __future__ import annotations

import pytest
import torch

from airbench_core import faster_train, preset
from airbench_core.faster import FasterConfig
from airbench_core.muon import MuonConfig
from airbench_core.net import WHITEN_WIDTH, Net, fit_whitening, make_net, patch_covariance
from airbench_core.train import DeviceData

N_WHITEN = 500
NARROW = (16, 32, 32)  # block1 below the whitening's 24 channels


@pytest.fixture(scope="module")
def images(cifar) -> torch.Tensor:
    return DeviceData.build(cifar, "cpu", N_WHITEN, 10).train_images


def passed_components(net: Net, images: torch.Tensor) -> list[tuple[int, int]]:
    """(sign, eigen-rank) of the whitening channel each block1 output starts as the identity of:
    rank 0 is the largest eigenvalue of the patch covariance, sign -1 a negated filter."""
    _, eigenvectors = torch.linalg.eigh(patch_covariance(images).double())
    by_size = eigenvectors.T.flip(0)  # rank 0 = largest eigenvalue
    w = net.whiten.weight.detach().double().flatten(1)
    half = WHITEN_WIDTH // 2
    assert torch.equal(w[half:], -w[:half]), "channels 12-23 are not the negatives of 0-11"
    conv = net.blocks[0].convs[0].weight.detach()
    out = []
    for d in range(conv.shape[0]):
        centre = conv[d, :, 1, 1]
        src = int(centre.argmax())
        assert centre[src] == 1 and conv[d].abs().sum() == 1, "block1 filter is not an identity"
        cos = (by_size @ (w[src] / w[src].norm())).abs()  # the filter is one eigenvector, scaled
        assert cos.max() > 0.999
        out.append((1 if src < half else -1, int(cos.argmax())))
    return out


LARGEST_FIRST = [(1, r) for r in range(12)] + [(-1, r) for r in range(4)]
SMALLEST_FIRST = [(1, 11 - r) for r in range(12)] + [(-1, 11 - r) for r in range(4)]


@pytest.mark.parametrize("name", ["airbench94", "airbench95", "airbench96"])
def test_airbench94_95_96_pass_the_largest_components_at_block1_below_24(images, name):
    cfg = preset(name, widths=NARROW, whiten_samples=N_WHITEN)
    net, _ = make_net(cfg, [0], torch.device("cpu"), half=False)
    fit_whitening(net, cfg, images)
    assert passed_components(net, images) == LARGEST_FIRST


def test_airbench94_muon_passes_the_scripts_ascending_order_at_block1_below_24(images):
    """The published airbench94_muon.py keeps eigh's ascending order: block1's 16 identity filters
    pass the 12 components smallest first, then the negatives of the four smallest."""
    cfg = MuonConfig(widths=NARROW, whiten_samples=N_WHITEN)
    net, _ = make_net(cfg, [0], torch.device("cpu"), half=False)
    fit_whitening(net, cfg, images)
    assert passed_components(net, images) == SMALLEST_FIRST


def test_airbench96_faster_passes_the_largest_components_in_both_networks(images):
    cfg = FasterConfig(widths=NARROW, proxy_widths=(8, 16, 16), whiten_samples=N_WHITEN)
    net, proxy = faster_train.build_nets(cfg, faster_train.stream_seeds(cfg, 0), torch.device("cpu"), False)
    faster_train.fit_whitenings(net, proxy, cfg, images)
    assert passed_components(net, images) == LARGEST_FIRST
    assert passed_components(proxy, images) == LARGEST_FIRST[:8]
    assert torch.equal(net.whiten.weight, proxy.whiten.weight) and net.whiten.weight.shape[0] == WHITEN_WIDTH


def test_airbench96_faster_networks_are_channels_last_on_the_cpu():
    """The script lays both networks out channels-last; NCHW filters made CPU runs ~1.5x slower."""
    cfg = FasterConfig(widths=NARROW, proxy_widths=(8, 16, 16))
    for net in faster_train.build_nets(cfg, faster_train.stream_seeds(cfg, 0), torch.device("cpu"), False):
        convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.ndim == 4]
        assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
        assert all(p.dtype == torch.float32 for p in net.parameters())
