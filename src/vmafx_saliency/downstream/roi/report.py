"""The ``roi encode`` report: two encodes at one target bitrate, side by side.

:class:`EncodeResult` is one encode (its size, rate and luma PSNR inside and
outside the salient region); :class:`EncodeReport` compares the plain and the
ROI encode, as JSON (``report.json``) and as the table the command prints
(``report.txt``), with a warning when their sizes differ by more than
``SIZE_TOLERANCE``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmafx_saliency.downstream.roi.ffmpeg import EncodeSettings
from vmafx_saliency.downstream.roi.mapping import offset_levels
from vmafx_saliency.downstream.roi.measure import Psnr
from vmafx_saliency.downstream.roi.plan import RoiPlan

SIZE_TOLERANCE = 0.03  # the plain and ROI encodes must land this close in size


@dataclass(frozen=True)
class EncodeResult:
    """One encode: what it cost and what it looks like."""

    name: str  # "plain" or "roi"
    path: Path | None  # None when the encode was not kept
    file_bytes: int
    stream_bytes: int
    frames: int
    bitrate: float  # video stream bits per second
    psnr: Psnr

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path) if self.path is not None else None,
            "file_bytes": self.file_bytes,
            "stream_bytes": self.stream_bytes,
            "frames": self.frames,
            "bitrate_kbps": round(self.bitrate / 1000, 3),
            "psnr_y": self.psnr.to_json(),
        }


@dataclass(frozen=True)
class EncodeReport:
    """``roi encode``: the plain and the ROI encode at the same target bitrate."""

    video: Path
    plan: RoiPlan
    settings: EncodeSettings
    plain: EncodeResult
    roi: EncodeResult
    commands: tuple[tuple[str, ...], ...]
    written: tuple[Path, ...] = field(default=())

    @property
    def size_delta(self) -> float:
        """(roi - plain) / plain of the video stream sizes."""
        return (self.roi.stream_bytes - self.plain.stream_bytes) / self.plain.stream_bytes

    @property
    def bitrate_match(self) -> bool:
        return abs(self.size_delta) <= SIZE_TOLERANCE

    def gain(self) -> dict[str, float]:
        a, b = self.plain.psnr, self.roi.psnr
        return {
            "inside": b.inside - a.inside,
            "outside": b.outside - a.outside,
            "overall": b.overall - a.overall,
        }

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "schema": "vmafx-saliency/roi-encode/v1",
            "video": str(self.video),
            "frames": {"start": plan.start, "count": self.plain.frames},
            "fps": plan.fps,
            "model": plan.model,
            "encoder": self.settings.encoder,
            "preset": self.settings.preset,
            "rate_control": f"{self.settings.passes}-pass ABR, identical settings for both",
            "target_bitrate_kbps": self.settings.bitrate / 1000,
            "roi": {
                "codec": plan.settings.codec,
                "block_size": plan.block_size,
                "strength": plan.settings.strength,
                "clamp": plan.settings.clamp,
                "levels": [
                    int(v) for v in offset_levels(plan.settings.clamp, plan.settings.levels)
                ],
                "aggregate": plan.settings.aggregate,
                "computed_frames": len(plan.frames),
                "subsample": plan.subsample,
                "regions": len(plan.regions),
                "addroi": plan.addroi,
                "salient_fraction": round(float(plan.salient_mask().mean()), 5),
                "salient_region": "blocks whose applied QP offset is negative",
            },
            "encodes": {"plain": self.plain.to_json(), "roi": self.roi.to_json()},
            "comparison": {
                "size_delta_pct": round(100 * self.size_delta, 3),
                "tolerance_pct": 100 * SIZE_TOLERANCE,
                "bitrate_match": self.bitrate_match,
                "psnr_gain_db": {k: round(v, 4) for k, v in self.gain().items()},
            },
            "commands": [shlex.join(c) for c in self.commands],
        }

    def render(self) -> str:
        plan, s = self.plan, self.settings
        gain = self.gain()
        lines = [
            f"{self.video.name}: frames {plan.start}..{plan.start + self.plain.frames - 1} "
            f"({self.plain.frames}), {s.encoder} preset {s.preset}, target "
            f"{s.bitrate / 1000:g} kb/s ({s.passes}-pass ABR)",
            f"ROI: strength {plan.settings.strength:g}, clamp {plan.settings.clamp}, "
            f"{plan.settings.aggregate} of {len(plan.frames)} maps, {len(plan.regions)} addroi "
            f"regions; salient region {100 * float(plan.salient_mask().mean()):.1f}% of the "
            "picture (blocks with a negative QP offset)",
            f"{'encode':<8}{'bytes':>10}{'kb/s':>10}{'PSNR-Y in':>11}{'out':>8}{'all':>8}",
        ]
        for r in (self.plain, self.roi):
            p = r.psnr
            lines.append(
                f"{r.name:<8}{r.stream_bytes:>10d}{r.bitrate / 1000:>10.1f}"
                f"{p.inside:>11.2f}{p.outside:>8.2f}{p.overall:>8.2f}"
            )
        lines.append(
            f"{'delta':<8}{100 * self.size_delta:>+9.2f}%{'':>10}"
            f"{gain['inside']:>+11.2f}{gain['outside']:>+8.2f}{gain['overall']:>+8.2f}"
        )
        if not self.bitrate_match:
            lines.append(
                f"warning: the sizes differ by more than {100 * SIZE_TOLERANCE:g}%: "
                "the PSNR comparison is not at equal bitrate"
            )
        return "\n".join(lines)
