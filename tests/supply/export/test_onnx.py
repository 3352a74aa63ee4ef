"""ONNX export and parity: eval-mode BatchNorm exported faithfully, parity failures in one line."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


from vmafx_saliency.errors import ParityError  # noqa: E402
from vmafx_saliency.nets import u2netp as nets_u2netp  # noqa: E402
from vmafx_saliency.supply import export  # noqa: E402


def _random_bn_net(seed: int = 0) -> Any:
    """A seeded U2NETP whose BatchNorms are far from identities."""
    torch.manual_seed(seed)
    net = nets_u2netp.U2NETP(3, 1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.3 + 2.0 * torch.rand(n, generator=gen))
    return net.eval()


# --- BatchNorm with real statistics -------------------------------------------


def test_eval_mode_batchnorm_is_exported_faithfully() -> None:
    net = _random_bn_net(seed=3)
    model = nets_u2netp.FusedOutput(net).eval()
    data = export.export_onnx_bytes(model)
    assert "BatchNormalization" not in export.count_ops(data)  # folded into Conv
    inputs = [
        export.ParityInput("synthetic", export.preprocess_upstream(export.synthetic_image(s), s))
        for s in [(64, 96), (45, 67)]
    ]
    figures = export.parity_check(model, data, inputs, export.PARITY_TOLERANCE)
    assert [(f.height, f.width) for f in figures] == [(64, 96), (45, 67)]
    assert all(f.max_abs_diff <= export.PARITY_TOLERANCE for f in figures)
    # The statistics matter: identity BNs give a clearly different map.
    plain = _random_bn_net(seed=3)
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_parameters()
            m.reset_running_stats()
    with torch.no_grad():
        x = torch.from_numpy(inputs[0].array)
        gap = (model(x) - nets_u2netp.FusedOutput(plain).eval()(x)).abs().max()
    assert float(gap) > 1e-3


# --- parity failures ----------------------------------------------------------


def test_a_model_that_cannot_take_the_size_fails_parity_in_one_line() -> None:
    """An older upstream u2net.py upsamples by a fixed 2: odd sizes break its skip joins."""
    import torch
    import torch.nn.functional as F

    from tests._onnx_models import conv_sigmoid_model

    class FixedFactorUpsample(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            coarse = F.max_pool2d(x, 2, ceil_mode=True)
            up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear")
            return torch.sigmoid(torch.cat([x, up], 1).mean(1, keepdim=True))

    odd = export.ParityInput("odd.png", np.zeros((1, 3, 33, 35), np.float32))
    with pytest.raises(
        ParityError,
        match=r"parity check at 33x35 \(odd\.png\): PyTorch cannot run the model at this size "
        r"\(.*\): the model code does not take any input size; with --upstream-dir, use a "
        r"current U-2-Net checkout",
    ):
        export.parity_check(FixedFactorUpsample(), conv_sigmoid_model(), [odd], 1e-4)


def test_a_model_failing_for_another_reason_gets_no_checkout_advice() -> None:
    import torch

    from tests._onnx_models import conv_sigmoid_model

    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("weights are corrupt")

    probe = export.ParityInput("p.png", np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ParityError, match=r"\(weights are corrupt\): check the checkpoint") as err:
        export.parity_check(Broken(), conv_sigmoid_model(), [probe], 1e-4)
    assert "U-2-Net checkout" not in str(err.value)
