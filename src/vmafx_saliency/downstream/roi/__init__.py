"""Saliency maps -> per-block QP offsets -> encoder inputs (ROI encoding).

The pipeline, for each frame the model sees:

1. the ``saliency_map`` (at the model's inference size) is resized to the
   frame size and reduced to the encoder's block grid by the block mean
   (16x16 for H.264/HEVC, 64x64 for AV1; a partial edge block is the mean of
   the pixels it has);
2. the block maps are aggregated over time (``per-frame``, ``mean``, ``ema``
   or ``max``);
3. each map becomes QP offsets by a z-score: ``-strength * (s - mean) /
   max(std, SIGMA_FLOOR)``, clamped to ``[-clamp, +clamp]`` and quantised to
   at most ``levels`` values on a grid symmetric about 0 (salient blocks get
   NEGATIVE offsets: more bits);
4. the offsets become encoder inputs: a chain of ffmpeg ``addroi`` filters
   (libx264/libx265), an SVT-AV1 ``--roi-map-file``, and an x265 ``--zones``
   string of per-segment bitrate factors.

``run_encode`` checks the result: two 2-pass encodes at the same target
bitrate, with and without the ``addroi`` chain, decoded and compared with the
source in numpy (luma PSNR inside the salient region, outside it and overall).
docs/roi.md explains the choices and has the measured figures.

The modules, in import order: ``settings`` (codecs, limits, defaults,
:class:`RoiSettings`), ``mapping`` (block means -> QP offsets, temporal
aggregation), ``formats`` (addroi regions, the SVT-AV1 map, x265 zones),
``plan`` (the ``roi map`` job), ``ffmpeg`` (encode settings, checks,
commands), ``measure`` (masked luma PSNR), ``report`` and ``encode`` (the
``roi encode`` job). This package re-exports their public API.
"""

from __future__ import annotations

from vmafx_saliency.downstream.roi.encode import ModelRun, run_encode
from vmafx_saliency.downstream.roi.ffmpeg import (
    EncodeInput,
    EncodeSettings,
    check_ffmpeg,
    encode_commands,
    find_ffmpeg,
    parse_bitrate,
)
from vmafx_saliency.downstream.roi.formats import (
    Region,
    Zone,
    addroi_filter,
    plan_regions,
    plan_zones,
    regions_from_offsets,
    render_regions,
    svtav1_roi_map,
    zones_string,
)
from vmafx_saliency.downstream.roi.mapping import (
    TemporalAggregator,
    block_areas,
    block_means,
    block_offsets,
    grid_shape,
    map_to_blocks,
    offset_levels,
    quantise_offsets,
    raw_offsets,
)
from vmafx_saliency.downstream.roi.measure import MaskedMse, Psnr
from vmafx_saliency.downstream.roi.plan import (
    FILE_OFFSETS,
    RoiPlan,
    compute_plan,
    run_map,
    write_plan,
)
from vmafx_saliency.downstream.roi.report import EncodeReport, EncodeResult
from vmafx_saliency.downstream.roi.settings import (
    AGGREGATES,
    BLOCK_SIZE,
    CODECS,
    DEFAULT_CLAMP,
    DEFAULT_EMA_ALPHA,
    DEFAULT_LEVELS,
    DEFAULT_MAX_REGIONS,
    DEFAULT_STRENGTH,
    ENCODER_CODEC,
    ENCODERS,
    Aggregate,
    Codec,
    Encoder,
    RoiSettings,
)

__all__ = [
    "AGGREGATES",
    "BLOCK_SIZE",
    "CODECS",
    "DEFAULT_CLAMP",
    "DEFAULT_EMA_ALPHA",
    "DEFAULT_LEVELS",
    "DEFAULT_MAX_REGIONS",
    "DEFAULT_STRENGTH",
    "ENCODERS",
    "ENCODER_CODEC",
    "FILE_OFFSETS",
    "Aggregate",
    "Codec",
    "EncodeInput",
    "EncodeReport",
    "EncodeResult",
    "EncodeSettings",
    "Encoder",
    "MaskedMse",
    "ModelRun",
    "Psnr",
    "Region",
    "RoiPlan",
    "RoiSettings",
    "TemporalAggregator",
    "Zone",
    "addroi_filter",
    "block_areas",
    "block_means",
    "block_offsets",
    "check_ffmpeg",
    "compute_plan",
    "encode_commands",
    "find_ffmpeg",
    "grid_shape",
    "map_to_blocks",
    "offset_levels",
    "parse_bitrate",
    "plan_regions",
    "plan_zones",
    "quantise_offsets",
    "raw_offsets",
    "regions_from_offsets",
    "render_regions",
    "run_encode",
    "run_map",
    "svtav1_roi_map",
    "write_plan",
    "zones_string",
]
