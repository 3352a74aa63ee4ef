"""One training step: bf16 on this CPU, side heads and their loss."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import TINY  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    InputFileError,
)
from vmafx_saliency.nets.student import SideHeads, StudentUNet  # noqa: E402
from vmafx_saliency.science import train  # noqa: E402


def _cpu_with_bf16(monkeypatch: pytest.MonkeyPatch, *, avx512_bf16: bool, amx: bool) -> None:
    # raising=False: the probes are private, and a torch without them must not error here.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "native"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
def test_native_bf16_is_either_avx512_bf16_or_amx(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, native: bool
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=avx512_bf16, amx=amx)
    assert train.native_bf16(torch) is native


@pytest.mark.parametrize(("avx512_bf16", "native"), [(True, True), (False, None)])
def test_native_bf16_with_a_probe_missing_is_unknown_unless_the_other_says_yes(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, native: bool | None
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=avx512_bf16, amx=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert train.native_bf16(torch) is native


def test_bf16_on_a_cpu_without_it_warns_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=False, amx=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = dataclasses.replace(TINY, precision="bf16")
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.science.train"),
        pytest.raises(InputFileError, match=r"empty holds no \.jpg/\.png images"),
    ):
        train.run_training(out_dir=tmp_path / "run", image_dirs=[empty], cfg=cfg, progress=None)
    assert "no native bf16" in caplog.text
    assert "train with --precision fp32" in caplog.text


@pytest.mark.parametrize(("precision", "native"), [("bf16", True), ("fp32", False)])
def test_no_bf16_warning_where_bf16_is_native_or_not_asked_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, precision: str, native: bool
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=native, amx=False)
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.science.train"):
        train.warn_if_bf16_emulated(torch, dataclasses.replace(TINY, precision=precision))
    assert caplog.text == ""


def test_side_heads_read_the_coarser_decoders_and_leave_the_net_unchanged() -> None:
    torch.manual_seed(0)
    net = StudentUNet((4, 6, 8, 10)).eval()
    before = sum(p.numel() for p in net.parameters())
    sides = SideHeads(net)
    assert sum(p.numel() for p in net.parameters()) == before
    x = torch.rand(1, 3, 37, 50)
    logits, coarse = net.forward_decoder(x)
    assert torch.equal(logits, net.forward_logits(x))
    # Decoders merge into the skips 1/8, 1/4 and 1/2 (widths 8, 6, 4); the last feeds the head.
    assert [tuple(c.shape[1:]) for c in coarse] == [(8, 5, 7), (6, 10, 13)]
    maps = sides(coarse)
    assert [tuple(m.shape) for m in maps] == [(1, 1, 5, 7), (1, 1, 10, 13)]
    with pytest.raises(ValueError, match="1 decoder outputs for 2 side heads"):
        sides(coarse[:1])


def test_the_side_maps_add_their_weighted_loss_to_the_step() -> None:
    torch.manual_seed(1)
    net = StudentUNet((4, 6, 8))
    sides = SideHeads(net)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    cfg = dataclasses.replace(TINY, side_weight=0.5)
    with torch.no_grad():
        logits, coarse = net.forward_decoder(x)
        # One side map, at 1/4 (8x8); its target by hand: the mean of each 4x4 block.
        (side,) = sides(coarse)
        assert tuple(side.shape) == (2, 1, 8, 8)
        target = y.reshape(2, 1, 8, 4, 8, 4).mean(dim=(3, 5))
        main_loss = float(train._loss(torch, logits, y, 1.0))
        side_loss = float(train._loss(torch, side, target, 1.0))
    head = sides.heads[0]
    assert isinstance(head, torch.nn.Conv2d)
    head_before = head.weight.detach().clone()
    optimizer = torch.optim.SGD(list(net.parameters()) + list(sides.parameters()), lr=0.1)
    got = train.optimizer_step(torch, net, optimizer, x, y, cfg, bf16=False, sides=sides)
    assert got == pytest.approx(main_loss + 0.5 * side_loss, rel=1e-5)
    assert side_loss > 0.1  # the side term is not negligible, so the check has teeth
    assert not torch.equal(head.weight, head_before), "the side head got no update"
