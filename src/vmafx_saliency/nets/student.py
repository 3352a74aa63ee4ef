"""``saliency_student_v2``: a tiny U-Net distilled from the u2netp mirror.

Encoder: a stride-2 stem, then stages of 2x2 max-pool + two 3x3 Conv-BN-ReLU
blocks, each stage's output kept as a skip. Decoder: bilinear resize
(``align_corners=False``) of the deeper map to the skip's size, concatenation
with the skip, one 3x3 Conv-BN-ReLU. Head: a 3x3 convolution to one channel at
the stem's resolution, a bilinear resize to the input size and a sigmoid.

Resizing to the skip's (and the input's) size rather than by a factor of 2 is
what makes every H, W work: the pools use ``ceil_mode`` so odd sizes keep their
last row and column. In eval mode the exporter folds every BatchNorm into its
convolution, so the ONNX graph holds only Conv, Relu, MaxPool, Resize, Concat,
Sigmoid and the shape ops of the dynamic resizes.

This file imports nothing from the package, so it can stand alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DEFAULT_STEM_CONVS",
    "DEFAULT_WIDTHS",
    "ConvBNReLU",
    "SeparableConvBNReLU",
    "SideHeads",
    "StudentUNet",
    "count_macs",
    "count_params",
    "load_folded",
    "match_convs",
    "side_targets",
]

# Channels of the stem and of each encoder stage (deepest last). Chosen by
# measuring ONNX Runtime speed against the mirror on a 2-core CPU
# (benchmarks/student_widths.py); the stem and first stage were widened from
# 8, 24 in attempts 13W-15B (the shipped net, attempt 32, has them; see its model card).
DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 32, 32, 40, 40)
# 3x3 Conv-BN-ReLU blocks in the stem, the first with stride 2. More of them add
# capacity at H/2, where the student lost most on small objects; 3 since attempt
# 30, the shipped net (its model card).
DEFAULT_STEM_CONVS = 3


class ConvBNReLU(nn.Module):
    """3x3 convolution + BatchNorm + ReLU (BatchNorm folds into the conv at export)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn(self.conv(x)))
        return out


class SeparableConvBNReLU(nn.Module):
    """Depthwise 3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU (MobileNet's block).

    About a ninth of a 3x3 convolution's parameters at the same width, so the
    same budget buys wider and deeper stages. Both BatchNorms fold at export.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn2(self.pointwise(self.relu(self.bn1(self.depthwise(x))))))
        return out


def _resize_to(x: Tensor, ref: Tensor) -> Tensor:
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


class StudentUNet(nn.Module):
    """Tiny U-Net: float32 [N, 3, H, W] -> saliency in [0, 1], [N, 1, H, W]."""

    def __init__(
        self,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        *,
        stem_convs: int = DEFAULT_STEM_CONVS,
        separable: bool = False,
    ) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError("widths needs the stem and at least one encoder stage")
        if stem_convs < 1:
            # range(stem_convs - 1) would quietly build one convolution anyway
            raise ValueError(f"stem_convs {stem_convs}: give 1 or more")
        self.widths = tuple(int(w) for w in widths)
        self.separable = separable
        # The stem sees 3 channels: a full convolution there costs little.
        block: type[nn.Module] = SeparableConvBNReLU if separable else ConvBNReLU
        stem_w = self.widths[0]
        # Stride 2 at once: full-resolution convolutions dominate the cost.
        self.stem = nn.Sequential(
            ConvBNReLU(3, stem_w, stride=2),
            *(ConvBNReLU(stem_w, stem_w) for _ in range(stem_convs - 1)),
        )
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.encoders = nn.ModuleList()
        prev = stem_w
        for width in self.widths[1:]:
            self.encoders.append(nn.Sequential(block(prev, width), block(width, width)))
            prev = width
        # Decoder i merges the deeper map with skip i (stem + all but the deepest stage).
        self.decoders = nn.ModuleList()
        skips = self.widths[:-1]
        for skip_w in reversed(skips):
            self.decoders.append(block(prev + skip_w, skip_w))
            prev = skip_w
        self.head = nn.Conv2d(prev, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.forward_logits(x))

    def forward_logits(self, x: Tensor) -> Tensor:
        """The map before the sigmoid (for a numerically stable BCE in training)."""
        return self.forward_decoder(x)[0]

    def forward_decoder(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The logits and the outputs of every decoder but the last, coarsest first.

        The coarser outputs are what :class:`SideHeads` supervises in training;
        the exported graph uses only the logits.
        """
        feat = self.stem(x)
        skips = [feat]
        for encoder in self.encoders:
            feat = encoder(self.pool(feat))
            skips.append(feat)
        skips.pop()
        coarse = []
        for decoder in self.decoders:
            skip = skips.pop()
            feat = decoder(torch.cat([_resize_to(feat, skip), skip], dim=1))
            coarse.append(feat)
        coarse.pop()
        out: Tensor = _resize_to(self.head(feat), x)
        return out, coarse


class SideHeads(nn.Module):
    """Deep supervision: a 1x1 convolution to one channel on each coarser decoder output.

    Training-only (as U^2-Net's and BASNet's side outputs, but without their fusion
    into the final map): each side map, at its decoder's resolution, gets the loss
    of the main map against the teacher's map averaged down to that resolution
    (``adaptive_avg_pool2d``; resizing the side maps up to the input instead made
    a step cost 1.3x, benchmarks/train_step.py). This gives the deep stages a
    direct gradient. The heads are not part of :class:`StudentUNet`, so neither
    its parameter count nor the export changes.
    """

    def __init__(self, net: StudentUNet) -> None:
        super().__init__()
        # Decoder j's output has the width of skip j, skips taken deepest first.
        coarse_widths = list(reversed(net.widths[:-1]))[:-1]
        self.heads = nn.ModuleList(nn.Conv2d(width, 1, 1) for width in coarse_widths)

    def forward(self, coarse: Sequence[Tensor]) -> list[Tensor]:
        if len(coarse) != len(self.heads):
            raise ValueError(f"{len(coarse)} decoder outputs for {len(self.heads)} side heads")
        return [head(feat) for head, feat in zip(self.heads, coarse, strict=True)]


def side_targets(target: Tensor, side_logits: Sequence[Tensor]) -> list[Tensor]:
    """The teacher's map averaged down to each side map's size (the area's mean)."""
    return [
        F.adaptive_avg_pool2d(target, (int(side.shape[2]), int(side.shape[3])))
        for side in side_logits
    ]


def count_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def count_macs(module: nn.Module, size: tuple[int, int] = (320, 320)) -> int:
    """Multiply-accumulates of every convolution for one 3 x H x W input.

    Counted with forward hooks: output elements x (C_in / groups) x kH x kW per
    Conv2d. Pools, resizes, BatchNorm and activations are not counted (they
    are a small fraction and not MACs).
    """
    total = 0

    def hook(mod: nn.Module, _inputs: object, output: Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        kh, kw = mod.kernel_size
        total += int(output.numel()) * (mod.in_channels // mod.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, *size))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return total


def _batchnorm_after(net: StudentUNet) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    """Each convolution's BatchNorm (the head has none)."""
    pairs: dict[nn.Conv2d, nn.BatchNorm2d] = {}
    for module in net.modules():
        if isinstance(module, ConvBNReLU):
            pairs[module.conv] = module.bn
        elif isinstance(module, SeparableConvBNReLU):
            pairs[module.depthwise] = module.bn1
            pairs[module.pointwise] = module.bn2
    return pairs


def match_convs(net: StudentUNet, shapes: Sequence[tuple[int, ...]]) -> list[nn.Conv2d]:
    """``net``'s convolutions in the order its forward pass runs them (an export's
    graph order), checked against the weight ``shapes`` of an export's convolutions.

    Raises ValueError when their count or any shape differs.
    """
    order: list[nn.Conv2d] = []
    handles = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, 64, 64))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    if len(order) != len(shapes):
        raise ValueError(f"{len(shapes)} convolutions for a net of {len(order)}")
    for index, (conv, shape) in enumerate(zip(order, shapes, strict=True)):
        if tuple(shape) != tuple(conv.weight.shape):
            raise ValueError(
                f"convolution {index} has weights {tuple(shape)}, the net's "
                f"{tuple(conv.weight.shape)}"
            )
    return order


def load_folded(
    net: StudentUNet, convs: Sequence[tuple[Tensor, Tensor | None]], sample: Tensor
) -> None:
    """Load an exported StudentUNet's convolutions (BatchNorm folded) into ``net``.

    ``convs`` are the exported graph's Conv weights W' and biases b' in graph
    order, which is the order the forward pass runs ``net``'s convolutions.
    Each BatchNorm gets running mean mu, running variance sigma^2, gamma =
    sqrt(sigma^2 + eps) and beta = mu + b', with mu and sigma^2 the per-channel
    mean and (biased) variance of W'x over ``sample`` (real input planes, [N, 3,
    H, W]). Eval mode then computes the exported map exactly; train mode does
    too on ``sample`` itself, and about the same map on other planes, whose
    batch statistics are near mu and sigma: fine-tuning starts from the
    exported net instead of one that BatchNorm re-scales at its first step.
    Fine-tune at a low rate: a channel of low variance gets a small gamma,
    which Adam moves by about the rate at every step whatever its size
    (``train --freeze-batchnorm`` keeps the BatchNorms as loaded instead).
    Raises ValueError when the convolutions' count or shapes differ from ``net``'s.
    """
    order = match_convs(net, [tuple(weight.shape) for weight, _ in convs])
    batchnorm = _batchnorm_after(net)
    folded_bias: dict[nn.Conv2d, Tensor] = {}
    net.eval()
    with torch.no_grad():
        for index, (conv, (weight, bias)) in enumerate(zip(order, convs, strict=True)):
            conv.weight.copy_(weight)
            b = bias if bias is not None else torch.zeros(weight.shape[0])
            bn = batchnorm.get(conv)
            if bn is None:  # the head: a plain convolution
                if conv.bias is not None:
                    conv.bias.copy_(b)
                elif bias is not None:
                    raise ValueError(f"convolution {index} has a bias the net's has not")
                continue
            # First the identity form (exact in eval mode) to measure W'x through the net.
            assert bn.running_mean is not None and bn.running_var is not None  # tracked stats
            bn.weight.fill_(1.0)
            bn.bias.copy_(b)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            folded_bias[conv] = b
    sums = {conv: torch.zeros(2, conv.out_channels, dtype=torch.float64) for conv in folded_bias}
    positions = dict.fromkeys(folded_bias, 0)

    def accumulate(mod: nn.Module, _inputs: object, out: Tensor) -> None:
        assert isinstance(mod, nn.Conv2d)
        z = out.detach().double()
        sums[mod][0] += z.sum(dim=(0, 2, 3))
        sums[mod][1] += (z * z).sum(dim=(0, 2, 3))
        positions[mod] += z.shape[0] * z.shape[2] * z.shape[3]

    handles = [conv.register_forward_hook(accumulate) for conv in folded_bias]
    try:
        with torch.no_grad():
            for start in range(0, len(sample), 16):
                net(sample[start : start + 16])
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for conv, b in folded_bias.items():
            bn = batchnorm[conv]
            assert bn.running_mean is not None and bn.running_var is not None
            mean = sums[conv][0] / positions[conv]
            # Biased, as BatchNorm's batch statistics are; both modes divide by sqrt(var + eps).
            var = torch.clamp(sums[conv][1] / positions[conv] - mean * mean, min=0.0)
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.copy_((mean + b.double()).float())


def widen_from(net: StudentUNet, old_state: dict[str, Tensor], old_widths: Sequence[int]) -> None:
    """Load a narrower StudentUNet's weights into ``net`` so it computes the same map.

    Function-preserving widening (Net2Net-like): every old output channel keeps
    its weights at its old input channels and gets zero weight on the new ones;
    the new output channels keep their random initialisation. The old channels'
    outputs (and so the head's map) are unchanged in eval mode, and the zero
    weights still receive gradients, so training grows into the new channels.
    Both nets must have the same depth and ``stem_convs``.
    """
    old_widths = tuple(int(w) for w in old_widths)
    if len(old_widths) != len(net.widths):
        raise ValueError(f"widths {old_widths} and {net.widths} differ in depth")
    new_state = net.state_dict()
    if set(old_state) != set(new_state):
        # e.g. another stem_convs: a layer only one side has would be left at its
        # random start, or dropped, and the map would change without a word
        differ = sorted(set(old_state) ^ set(new_state))
        raise ValueError(
            f"the nets differ in layers ({', '.join(differ[:3])}): both need the same "
            "depth, stem_convs and block kind"
        )

    def conv_in_map(name: str) -> list[int] | None:
        # Decoder j concatenates [deeper map, skip]: remap the two blocks.
        if not name.startswith("decoders."):
            return None
        j = int(name.split(".")[1])
        depth = len(net.widths) - 1
        old_prev = old_widths[-1] if j == 0 else old_widths[depth - j]
        new_prev = net.widths[-1] if j == 0 else net.widths[depth - j]
        old_skip = old_widths[depth - 1 - j]
        return list(range(old_prev)) + [new_prev + k for k in range(old_skip)]

    with torch.no_grad():
        for key, old in old_state.items():
            new = new_state[key]
            if old.shape == new.shape and not key.startswith("decoders."):
                new.copy_(old)
                continue
            if old.dim() == 0:
                new.copy_(old)
            elif old.dim() == 1:
                new[: old.shape[0]] = old
            else:
                out_n, in_n = old.shape[:2]
                in_map = conv_in_map(key) or list(range(in_n))
                new[:out_n] = 0.0
                new[:out_n, in_map] = old
    net.load_state_dict(new_state)
