"""U^2-Net small (``U2NETP(3, 1)``), written for this project.

The architecture is that of Qin et al., "U^2-Net: Going Deeper with Nested
U-Structure for Salient Object Detection", Pattern Recognition 2020
(https://github.com/xuebinqin/U-2-Net, ``model/u2net.py``, Apache-2.0). The
attribute names, and so the ``state_dict`` keys, equal upstream's, so the
upstream ``u2netp.pth`` loads with ``strict=True``:
``stage1.rebnconvin.conv_s1.weight``, ..., ``side6.bias``, ``outconv.bias``
(798 tensors, 1,131,181 parameters).

This file imports nothing from the package, so it can stand alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["REBNCONV", "RSU", "RSU4F", "U2NETP", "FusedOutput", "upsample_like"]


def upsample_like(src: Tensor, tar: Tensor) -> Tensor:
    """Bilinearly resize ``src`` to ``tar``'s spatial size.

    Upstream calls ``F.upsample(..., mode='bilinear')``, whose default is
    ``align_corners=False``; it is spelled out here. Resizing to the target's
    size (not by a factor of 2) is what makes odd input sizes work after the
    ``ceil_mode`` pools.
    """
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear", align_corners=False)


def _pool() -> nn.MaxPool2d:
    # ceil_mode keeps the last row/column of odd sizes instead of dropping it.
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


class REBNCONV(nn.Module):
    """3x3 convolution (dilated) + BatchNorm + ReLU."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, dirate: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu_s1(self.bn_s1(self.conv_s1(x)))
        return out


class RSU(nn.Module):
    """Residual U-block RSU-L (upstream RSU7, RSU6, RSU5, RSU4 for L = 7..4).

    Encoder ``rebnconv1..rebnconv{L-1}`` with a 2x2 max-pool between them, a
    dilated bottom ``rebnconv{L}``, decoder ``rebnconv{L-1}d..rebnconv1d`` fed
    by the upsampled previous level concatenated with the skip, plus the
    residual ``rebnconvin``. Attribute names follow upstream exactly.
    """

    def __init__(self, height: int, in_ch: int = 3, mid_ch: int = 12, out_ch: int = 3) -> None:
        super().__init__()
        if height < 3:
            raise ValueError(f"RSU height must be at least 3, got {height}")
        self.height = height
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        # Registered under upstream's names via add_module; the plain lists give
        # typed, ordered access in forward without adding a key prefix
        # (a ModuleList would change the state_dict keys).
        self._encoders: list[REBNCONV] = []
        self._pools: list[nn.MaxPool2d] = []
        self._decoders: list[REBNCONV] = []
        for level in range(1, height):
            conv = REBNCONV(out_ch if level == 1 else mid_ch, mid_ch, dirate=1)
            self.add_module(f"rebnconv{level}", conv)
            self._encoders.append(conv)
            if level < height - 1:
                pool = _pool()
                self.add_module(f"pool{level}", pool)
                self._pools.append(pool)
        # The bottom level is dilated instead of pooled; it ends the encoder list.
        bottom = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.add_module(f"rebnconv{height}", bottom)
        self._encoders.append(bottom)
        # Upstream declares the decoders from the deepest level up; keep that order.
        for level in range(height - 1, 0, -1):
            conv = REBNCONV(mid_ch * 2, out_ch if level == 1 else mid_ch, dirate=1)
            self.add_module(f"rebnconv{level}d", conv)
            self._decoders.append(conv)

    def forward(self, x: Tensor) -> Tensor:
        hxin = self.rebnconvin(x)
        skips: list[Tensor] = []
        hx = hxin
        for level, conv in enumerate(self._encoders[:-1]):
            if level > 0:
                hx = self._pools[level - 1](hx)
            hx = conv(hx)
            skips.append(hx)
        hx = self._encoders[-1](hx)
        for depth, conv in enumerate(self._decoders):
            skip = skips[-1 - depth]
            if depth > 0:
                hx = upsample_like(hx, skip)
            hx = conv(torch.cat((hx, skip), 1))
        out: Tensor = hx + hxin
        return out


class RSU4F(nn.Module):
    """RSU-4F: the RSU-4 layout with dilations 1, 2, 4, 8 instead of pooling."""

    def __init__(self, in_ch: int = 3, mid_ch: int = 12, out_ch: int = 3) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x: Tensor) -> Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        out: Tensor = hx1d + hxin
        return out


class U2NETP(nn.Module):
    """U^2-Net small: six encoder stages, five decoder stages, six side outputs.

    ``forward`` returns ``(d0, d1, ..., d6)``, each ``sigmoid``-ed and of the
    input's spatial size; ``d0`` is the fused map (``outconv`` over d1..d6).
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 1) -> None:
        super().__init__()
        self.stage1 = RSU(7, in_ch, 16, 64)
        self.pool12 = _pool()
        self.stage2 = RSU(6, 64, 16, 64)
        self.pool23 = _pool()
        self.stage3 = RSU(5, 64, 16, 64)
        self.pool34 = _pool()
        self.stage4 = RSU(4, 64, 16, 64)
        self.pool45 = _pool()
        self.stage5 = RSU4F(64, 16, 64)
        self.pool56 = _pool()
        self.stage6 = RSU4F(64, 16, 64)

        self.stage5d = RSU4F(128, 16, 64)
        self.stage4d = RSU(4, 128, 16, 64)
        self.stage3d = RSU(5, 128, 16, 64)
        self.stage2d = RSU(6, 128, 16, 64)
        self.stage1d = RSU(7, 128, 16, 64)

        self.side1 = nn.Conv2d(64, out_ch, 3, padding=1)
        self.side2 = nn.Conv2d(64, out_ch, 3, padding=1)
        self.side3 = nn.Conv2d(64, out_ch, 3, padding=1)
        self.side4 = nn.Conv2d(64, out_ch, 3, padding=1)
        self.side5 = nn.Conv2d(64, out_ch, 3, padding=1)
        self.side6 = nn.Conv2d(64, out_ch, 3, padding=1)

        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        hx1 = self.stage1(x)
        hx2 = self.stage2(self.pool12(hx1))
        hx3 = self.stage3(self.pool23(hx2))
        hx4 = self.stage4(self.pool34(hx3))
        hx5 = self.stage5(self.pool45(hx4))
        hx6 = self.stage6(self.pool56(hx5))

        hx5d = self.stage5d(torch.cat((upsample_like(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((upsample_like(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((upsample_like(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((upsample_like(hx2d, hx1), hx1), 1))

        d1 = self.side1(hx1d)
        d2 = upsample_like(self.side2(hx2d), d1)
        d3 = upsample_like(self.side3(hx3d), d1)
        d4 = upsample_like(self.side4(hx4d), d1)
        d5 = upsample_like(self.side5(hx5d), d1)
        d6 = upsample_like(self.side6(hx6), d1)
        d0 = self.outconv(torch.cat((d1, d2, d3, d4, d5, d6), 1))

        return (
            torch.sigmoid(d0),
            torch.sigmoid(d1),
            torch.sigmoid(d2),
            torch.sigmoid(d3),
            torch.sigmoid(d4),
            torch.sigmoid(d5),
            torch.sigmoid(d6),
        )


class FusedOutput(nn.Module):
    """Wrap a U2NETP(-like) net so that it returns only the fused map ``d0``.

    This is the graph that is exported: the side outputs d1..d6 are training
    aids, and dropping them lets the exporter prune their sigmoids.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        d0: Tensor = self.net(x)[0]
        return d0
