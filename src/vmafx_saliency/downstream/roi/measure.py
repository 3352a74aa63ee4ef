"""Measuring ``roi encode``: decode the source and the encodes, luma PSNR by region.

The source range and every encode are decoded in lockstep and compared in
numpy: :class:`MaskedMse` pools the squared luma error inside the salient
region (blocks the encoder gives a negative offset) and outside it, and
:class:`Psnr` is the PSNR of the pooled MSE, as ffmpeg's psnr 'average'.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vmafx_saliency.errors import EncodeError, VideoError

if TYPE_CHECKING:
    from vmafx_saliency.downstream.roi.plan import RoiPlan
    from vmafx_saliency.video.job import VideoInput


@dataclass(frozen=True)
class Psnr:
    """Luma PSNR (dB) of the pooled MSE over all frames, as ffmpeg's psnr 'average'."""

    inside: float
    outside: float
    overall: float
    mse_inside: float
    mse_outside: float
    mse_overall: float

    def to_json(self) -> dict[str, float | None]:
        def finite(x: float) -> float | None:
            return round(x, 4) if math.isfinite(x) else None  # JSON has no inf

        return {
            "inside": finite(self.inside),
            "outside": finite(self.outside),
            "overall": finite(self.overall),
            "mse_inside": round(self.mse_inside, 5),
            "mse_outside": round(self.mse_outside, 5),
            "mse_overall": round(self.mse_overall, 5),
        }


def psnr_db(mse: float, peak: float) -> float:
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


class MaskedMse:
    """Accumulates squared luma error inside and outside a pixel mask."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self.inside_px = int(mask.sum())
        self.outside_px = int(mask.size - self.inside_px)
        self.sse_in = 0.0
        self.sse_out = 0.0
        self.frames = 0

    def add(self, reference: np.ndarray, decoded: np.ndarray) -> None:
        diff = reference.astype(np.float64) - decoded.astype(np.float64)
        sq = diff * diff
        inside = float(sq[self.mask].sum())
        self.sse_in += inside
        self.sse_out += float(sq.sum()) - inside
        self.frames += 1

    def result(self, peak: float) -> Psnr:
        n_in = self.inside_px * self.frames
        n_out = self.outside_px * self.frames
        mse_in = self.sse_in / n_in if n_in else math.nan
        mse_out = self.sse_out / n_out if n_out else math.nan
        mse_all = (self.sse_in + self.sse_out) / (n_in + n_out)
        return Psnr(
            inside=psnr_db(mse_in, peak) if n_in else math.nan,
            outside=psnr_db(mse_out, peak) if n_out else math.nan,
            overall=psnr_db(mse_all, peak),
            mse_inside=mse_in,
            mse_outside=mse_out,
            mse_overall=mse_all,
        )


def _stream_bytes(path: Path) -> tuple[int, int]:
    """(video stream bytes, packets) of an encoded file, from its packets."""
    from vmafx_saliency._util import require

    av = require("av", purpose="reading the encodes back", extra=None)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            total = packets = 0
            for packet in container.demux(stream):
                if packet.size:
                    total += packet.size
                    packets += 1
    except Exception as exc:  # PyAV raises its own error types
        raise EncodeError(f"{path}: cannot read the encode back ({exc})") from exc
    return total, packets


def _luma_frames(
    path: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    pixel_format: str | None = None,
    color_range: str | None = None,
    start: int = 0,
    end: int | None = None,
) -> Iterator[np.ndarray]:
    """The luma planes of frames ``start`` .. ``end - 1``; raw YUV needs its geometry."""
    from vmafx_saliency.video.frames import open_video, select_frames

    with open_video(
        path, width=width, height=height, pixel_format=pixel_format, color_range=color_range
    ) as source:
        for frame in select_frames(source, start=start, end=end):
            yield frame.luma


def measure(
    video: VideoInput,
    plan: RoiPlan,
    encodes: Sequence[Path],
) -> list[tuple[MaskedMse, int]]:
    """Decode the source and every encode in lockstep; masked squared error per encode."""
    mask = plan.salient_mask()
    meters = [MaskedMse(mask) for _ in encodes]
    source = _luma_frames(
        video.path,
        width=video.width,
        height=video.height,
        pixel_format=video.pixel_format,
        color_range=video.color_range,
        start=plan.start,
        end=plan.start + plan.frame_count,
    )
    decoded = [_luma_frames(path) for path in encodes]
    count = 0
    sentinel = object()
    while True:
        ref = next(source, None)
        outs = [next(d, sentinel) for d in decoded]
        if ref is None:
            extra = [str(p) for p, o in zip(encodes, outs, strict=True) if o is not sentinel]
            if extra:
                raise EncodeError(f"{', '.join(extra)}: more frames than the source's {count}")
            break
        for path, out, meter in zip(encodes, outs, meters, strict=True):
            if out is sentinel:
                raise EncodeError(
                    f"{path}: has {count} frames, the source range has more: the encode "
                    "dropped frames (check the source's timestamps)"
                )
            assert isinstance(out, np.ndarray)
            if out.shape != ref.shape:
                raise EncodeError(f"{path}: frame {count} is {out.shape}, the source {ref.shape}")
            meter.add(ref, out)
        count += 1
    if count == 0:
        raise VideoError(f"{video.path}: no frames in the selected range")
    return [(meter, count) for meter in meters]
