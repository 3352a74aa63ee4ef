"""ROI settings: codecs, aggregations and encoders, their limits and defaults.

:class:`RoiSettings` says how saliency becomes QP offsets (the codec's block
grid, the strength, clamp and levels of the mapping, the temporal aggregation,
the addroi region count and the zone length); ``validate`` explains a bad value
in the words of the command line, whose choices and defaults come from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from vmafx_saliency.errors import UsageError

Codec = Literal["h264", "hevc", "av1"]
Aggregate = Literal["per-frame", "mean", "ema", "max"]
Encoder = Literal["libx264", "libx265"]

CODECS: tuple[str, ...] = get_args(Codec)
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
ENCODERS: tuple[str, ...] = get_args(Encoder)

# Macroblock (H.264) / quantisation block (HEVC, ffmpeg's libx265 ROI grid at
# the default qg-size) / superblock as SVT-AV1's ROI map counts it (AV1).
BLOCK_SIZE: dict[str, int] = {"h264": 16, "hevc": 16, "av1": 64}
ENCODER_CODEC: dict[str, Codec] = {"libx264": "h264", "libx265": "hevc"}
# The largest offset each codec can take, in its own QP units: addroi's qoffset
# is a fraction of 51 (8-bit x264/x265); AV1 "QP" is 0..63 (qindex / 4).
MAX_CLAMP: dict[str, int] = {"h264": 51, "hevc": 51, "av1": 63}
# SVT-AV1 uses AV1 segmentation: at most 8 distinct offsets per picture.
MAX_LEVELS = 8

# Defaults measured on foreman (docs/roi.md): three levels put a dead zone of
# +-clamp/2 around 0, so only clearly salient (or clearly dull) blocks move and
# the bits go where they show; more levels spread them over the transitions.
DEFAULT_STRENGTH = 3.0
DEFAULT_CLAMP = 6
DEFAULT_LEVELS = 3
DEFAULT_EMA_ALPHA = 0.2
DEFAULT_MAX_REGIONS = 12
DEFAULT_RAW_FPS = 25.0  # raw YUV carries no rate: ffmpeg's own default for rawvideo


@dataclass(frozen=True, kw_only=True)
class RoiSettings:
    """How saliency becomes QP offsets; ``validate`` explains any bad value."""

    codec: Codec = "h264"
    strength: float = DEFAULT_STRENGTH
    clamp: int = DEFAULT_CLAMP
    levels: int = DEFAULT_LEVELS
    aggregate: Aggregate = "mean"
    ema_alpha: float = DEFAULT_EMA_ALPHA
    max_regions: int = DEFAULT_MAX_REGIONS
    zone_frames: int | None = None  # None: one second of frames (25 if the rate is unknown)

    @property
    def block_size(self) -> int:
        return BLOCK_SIZE[self.codec]

    def validate(self) -> RoiSettings:
        if self.codec not in CODECS:
            raise UsageError(
                f"unknown codec {self.codec!r}: --codec takes one of {', '.join(CODECS)}"
            )
        if not (math.isfinite(self.strength) and self.strength > 0):
            raise UsageError(
                f"--strength {self.strength}: give a positive number of QP per standard "
                f"deviation of saliency, e.g. {DEFAULT_STRENGTH:g}"
            )
        top = MAX_CLAMP[self.codec]
        if isinstance(self.clamp, bool) or not isinstance(self.clamp, int):
            raise UsageError(f"--clamp {self.clamp!r}: give a whole number of QP")
        if not 1 <= self.clamp <= top:
            raise UsageError(
                f"--clamp {self.clamp}: give a whole number of QP from 1 to {top} for {self.codec}"
            )
        if not 3 <= self.levels <= MAX_LEVELS:
            raise UsageError(
                f"--levels {self.levels}: give 3 to {MAX_LEVELS} (SVT-AV1 takes at most "
                f"{MAX_LEVELS} distinct offsets per picture; 3 is the least that has both signs)"
            )
        if self.aggregate not in AGGREGATES:
            raise UsageError(
                f"unknown aggregate {self.aggregate!r}: --aggregate takes one of "
                f"{', '.join(AGGREGATES)}"
            )
        if not (math.isfinite(self.ema_alpha) and 0 < self.ema_alpha <= 1):
            raise UsageError(
                f"--ema-alpha {self.ema_alpha}: give a weight in (0, 1] for the newest frame"
            )
        if not 1 <= self.max_regions <= 64:
            raise UsageError(f"--max-regions {self.max_regions}: give 1 to 64 addroi regions")
        if self.zone_frames is not None and self.zone_frames < 1:
            raise UsageError(f"--zone-frames {self.zone_frames}: give a whole number >= 1")
        return self
