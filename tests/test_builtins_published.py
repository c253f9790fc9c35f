"""Built-in methods as their published scripts have them: the whitening filters' order (which
components block1's identity init passes when block1 is narrower than 24 channels), the faster
method's channels-last layout, and its smoke preset."""

from __future__ import annotations

import os

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


# ---------------------------------------------------------------- the smoke preset


def test_airbench96_faster_smoke_config_has_a_narrower_proxy_and_scaled_batches():
    from harness.spec.grid import Base

    cfg = Base("airbench96_faster").config("smoke")
    full = FasterConfig()
    assert all(p < w for p, w in zip(cfg.proxy_widths, cfg.widths))
    assert cfg.widths == (16, 32, 32) and cfg.batch_size == 100
    assert cfg.batch_size_masked / cfg.batch_size == full.batch_size_masked / full.batch_size
    assert cfg.n_train == 2000 and cfg.epochs * cfg.n_train * cfg.batch_size_masked / cfg.batch_size == 4000


def test_faster_smoke_dry_run_succeeds(tmp_path, capsys):
    from harness.cli.study import main

    args = ["tta_variance", "--method", "airbench96_faster", "--preset", "smoke", "--seeds", "2"]
    rc = main([*args, "--dry-run", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    assert rc == 0, capsys.readouterr().err


CHUNKY = """
from dataclasses import dataclass, replace
from airbench_core.method import Method


@dataclass(frozen=True)
class Chunky:
    batch_size: int = 1024
    chunk: int = 512
    epochs: float = 1.0

    def __post_init__(self):
        if self.chunk > self.batch_size:
            raise ValueError(f"chunk ({self.chunk}) cannot exceed batch_size ({self.batch_size})")

    def replace(self, **kw):
        return replace(self, **kw)


METHOD = Method(name="chunky", defaults=Chunky(), train=lambda *a, **k: None)
"""


@pytest.mark.parametrize(
    ("extra", "prefix"),
    [
        ([], "error: {m}'s smoke preset: chunk (512) cannot exceed batch_size (100)"),
        (["--set", "chunk=300"], "error: --set with {m}'s smoke preset: chunk (300) cannot exceed"),
    ],
)
def test_a_config_error_blames_set_only_when_set_was_given(tmp_path, capsys, extra, prefix):
    from harness.cli.study import main

    (tmp_path / "chunky.py").write_text(CHUNKY)
    method = f"{tmp_path / 'chunky.py'}:METHOD"
    args = ["tta_variance", "--method", method, "--preset", "smoke", "--seeds", "2", *extra]
    rc = main([*args, "--dry-run", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(prefix.format(m=method)) and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_faster_smoke_study_finishes_and_learns(tmp_path, data_source):
    """The smoke study trains end to end (it failed at once with a --set error no one gave); TTA-2
    beats TTA-0 on average and chance by far (measured: 21.7% TTA-0, 22.5% TTA-2 over 3 seeds)."""
    from helpers import study_cli

    from harness.store import load_records

    out = tmp_path / "out"
    args = ["tta_variance", "--method", "airbench96_faster", "--preset", "smoke", "--seeds", "3"]
    r = study_cli(
        *args,
        "--backend",
        "local",
        "--out",
        str(out),
        "--store",
        str(tmp_path / "store"),
        "--data",
        data_source,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # 3 runs of ~8 CPU s; spare threads only spin
    )
    assert r.returncode == 0, r.stderr
    runs = load_records(out)
    assert len(runs) == 3
    tta0, tta2 = runs["acc_tta0"].mean(), runs["acc_tta2"].mean()
    assert tta2 > 0.15 and tta2 >= tta0, (tta0, tta2)  # chance is 0.10; the old smoke run: 0.16 < TTA-0


# ---------------------------------------------------------------- the throughput bench


def test_throughput_bench_sizes_faster_consistently_and_finds_its_reference():
    from harness.bench.throughput import TINY, bench_config, reference

    tiny = bench_config("airbench96_faster", "tiny")
    assert tiny.batch_size == 100 and tiny.batch_size_masked == 50 and tiny.proxy_widths < tiny.widths
    assert bench_config("airbench96_faster", "full") == FasterConfig()
    assert bench_config("airbench94", "tiny") == preset("airbench94", **TINY)  # unchanged for airbench94
    assert reference("airbench96_faster", "CPU", "tiny", None) is None
    assert reference("airbench96_faster", "NVIDIA H200", "full", None) is None  # no published H200 figure
    per_hour, where = reference("airbench96_faster", "NVIDIA A100-SXM4-40GB", "full", None)
    assert per_hour == pytest.approx(3600 / 27.3) and "A100" in where
    per_hour, where = reference("airbench96_faster", "CPU", "tiny", 12.0)
    assert per_hour == 300 and "12 s" in where


def test_throughput_bench_refuses_packing_for_a_method_without_it(capsys):
    from harness.bench.cli import main

    assert main(["throughput", "--method", "airbench96_faster", "--mode", "pack2", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "error: --mode: airbench96_faster trains run by run (no packed or compiled path): use --mode eager"
    )
