"""The GPU code path, run on the CPU as far as the CPU supports it: fp16 weights and inputs,
channels-last layout, BatchNorm kept in fp32, a pooled half network reset between runs, and a short
training run through that path. (cuDNN settings and CUDA-event timing only exist on a GPU: they are in
``python -m harness.bench acceptance``.)"""

from __future__ import annotations

import importlib

import numpy as np
import torch
from conftest import tiny_config

from airbench_core import DeviceData, train
from airbench_core.loader import to_device_images
from airbench_core.net import BatchNorm, NetPool, fit_whitening, make_net
from airbench_core.train import subset_indices

train_module = importlib.import_module("airbench_core.train")
CPU = torch.device("cpu")
CFG = tiny_config(n_train=500, n_test=100, batch_size=50, widths=(8, 16, 16), whiten_samples=500)


def assert_gpu_layout(net: torch.nn.Module) -> None:
    """fp16 and channels-last everywhere except BatchNorm, whose parameters and buffers stay fp32."""
    for name, t in net.state_dict().items():
        if ".norms." in name:
            assert t.dtype == (torch.int64 if name.endswith("num_batches_tracked") else torch.float32), name
        else:
            assert t.dtype == torch.float16, name
            if t.ndim == 4:
                assert t.is_contiguous(memory_format=torch.channels_last), name
                if t.shape[2:].numel() > 1:  # a 1x1 kernel is both layouts at once
                    assert not t.is_contiguous(), name


def test_pooled_half_net_is_fp16_channels_last_with_fp32_batchnorm_across_resets():
    pool = NetPool()
    first, _ = make_net(CFG, [0], CPU, half=True, pool=pool)
    assert_gpu_layout(first)
    second, _ = make_net(CFG, [1], CPU, half=True, pool=pool)
    assert second is first, "the pool reuses the network"
    assert_gpu_layout(second)  # a reset keeps dtypes and layout
    fresh, _ = make_net(CFG, [1], CPU, half=False)
    for name, t in second.state_dict().items():  # the same init, rounded to fp16
        assert torch.equal(t, fresh.state_dict()[name].to(t.dtype)), name
    assert [n for n, p in second.named_parameters() if p.requires_grad] == [
        n for n, p in fresh.named_parameters() if p.requires_grad
    ]


def test_half_images_are_normalized_channels_last_fp16(cifar):
    raw = cifar.train_images[:64]
    half = to_device_images(raw, CPU, torch.half)
    full = to_device_images(raw, CPU, torch.float)
    assert half.dtype == torch.float16 and half.is_contiguous(memory_format=torch.channels_last)
    assert full.dtype == torch.float32 and full.is_contiguous()
    by_hand = (
        torch.from_numpy(raw).permute(0, 3, 1, 2).double() / 255
        - torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    ) / torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    assert torch.allclose(full.double(), by_hand, atol=1e-5)
    assert torch.allclose(half.double(), by_hand, atol=1e-2, rtol=2e-3)  # fp16 arithmetic, ~3 digits


def half_data(cifar) -> DeviceData:
    """DeviceData as DeviceData.build makes it on CUDA: fp16, channels-last."""
    tr = subset_indices(len(cifar.train_labels), CFG.n_train).numpy()
    te = subset_indices(len(cifar.test_labels), CFG.n_test).numpy()
    return DeviceData(
        to_device_images(cifar.train_images[tr], CPU, torch.half),
        torch.from_numpy(cifar.train_labels[tr]),
        to_device_images(cifar.test_images[te], CPU, torch.half),
        torch.from_numpy(cifar.test_labels[te]),
        (CFG.n_train, CFG.n_test),
    )


def test_a_short_run_trains_through_the_half_path_on_cpu(cifar, monkeypatch):
    """train() with the network built as on CUDA (half=True): every forward sees fp16 channels-last
    inputs, BatchNorm runs in fp32 on fp16 activations, and the first step's logits match the fp32
    path's to fp16 precision."""
    seen: dict = {"inputs": [], "norm_dtypes": set(), "first_logits": None}
    real_make_net = train_module.make_net

    def make_half_net(cfg, seeds, device, half, compile=False, pool=None, **kw):
        net, forward = real_make_net(cfg, seeds, device, True, compile, pool, **kw)
        seen["net"] = net

        def record_input(module, args):
            x = args[0]
            seen["inputs"].append(
                (
                    module.training,
                    x.dtype,
                    x.is_contiguous(memory_format=torch.channels_last),
                    x.stride(1) == 1,
                )
            )

        def record_logits(module, args, out):
            if seen["first_logits"] is None:
                seen["first_input"], seen["first_logits"] = args[0].clone(), out.detach().clone()

        def record_norm(module, args):
            seen["norm_dtypes"].add(
                (args[0].dtype, module.weight.dtype, module.bias.dtype, module.running_mean.dtype)
            )

        net.register_forward_pre_hook(record_input)
        net.register_forward_hook(record_logits)
        for m in net.modules():
            if isinstance(m, BatchNorm):
                m.register_forward_pre_hook(record_norm)
        return net, forward

    monkeypatch.setattr(train_module, "make_net", make_half_net)
    data = half_data(cifar)
    result = train(CFG, 3, data, save_logits=True)
    net = seen["net"]
    assert_gpu_layout(net)  # still after 10 steps and Lookahead
    # 10 training batches, channels-last; then 6 TTA views, whose shifted crops are views of a
    # channels-last pad (channels innermost, not contiguous)
    assert [(training, dtype) for training, dtype, _, _ in seen["inputs"]] == [(True, torch.float16)] * 10 + [
        (False, torch.float16)
    ] * 6
    assert all(channels_last for _, _, channels_last, _ in seen["inputs"][:12])
    assert all(channels_innermost for _, _, _, channels_innermost in seen["inputs"])
    assert seen["norm_dtypes"] == {(torch.float16, torch.float32, torch.float32, torch.float32)}
    assert all(torch.isfinite(t.float()).all() for t in net.state_dict().values())
    assert result.logits.dtype == np.float16 and np.isfinite(result.logits).all()
    assert result.steps == 10 and result.predictions.shape == (3, 100)

    # The first step's fp16 logits against the fp32 network with the same init and whitening.
    reference, _ = make_net(CFG, [train_module.derive_seed(3, "init")], CPU, half=False)
    fit_whitening(reference, CFG, data.train_images[data.whiten_order[: CFG.whiten_samples]].float())
    expected = reference(seen["first_input"].float())
    got = seen["first_logits"].float()
    assert got.dtype == torch.float32 and seen["first_logits"].dtype == torch.float16
    scale = expected.abs().max()
    assert (got - expected).abs().max() < 0.02 * scale
    for name in (
        "head.weight",
        "blocks.0.convs.1.weight",
        "blocks.2.norms.1.bias",
    ):  # fp16 and fp32 weights trained
        assert not torch.equal(
            net.state_dict()[name], reference.state_dict()[name].to(net.state_dict()[name].dtype)
        ), name
