"""``vmafx-saliency roi map|encode``: the command layer over the ROI library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmafx_saliency.cli.options import (
    Subparsers,
    add_action_group,
    add_command,
    add_model_arguments,
    add_video_arguments,
    model_choice,
    video_input,
)

if TYPE_CHECKING:
    from vmafx_saliency.downstream.roi import RoiSettings
    from vmafx_saliency.video.job import ModelChoice, VideoInput


VIDEO = "../shared/data/videos/foreman_cif.mp4"


def register(sub: Subparsers) -> None:
    from vmafx_saliency.downstream import roi

    actions = add_action_group(
        sub,
        "roi",
        help="saliency -> per-block QP offsets -> encoder ROI inputs (addroi, SVT-AV1, x265)",
        example=f"vmafx-saliency roi map {VIDEO} --out roi/",
    )

    p = add_command(
        actions,
        "map",
        help="write per-block QP offsets (JSON), an addroi chain or an SVT-AV1 ROI map, "
        "and x265 zones",
        example=f"vmafx-saliency roi map {VIDEO} --out roi/ --codec h264\n"
        f"  vmafx-saliency roi map {VIDEO} --out roi-av1/ --codec av1 --aggregate ema "
        "--levels 8 --model u2netp_mirror_v1   # the mirror, once registered",
        handler=_cmd_map,
    )
    add_video_arguments(
        p, subsample_help="run the model on every N-th frame (encodes always take every frame)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the map files")
    p.add_argument(
        "--codec",
        choices=roi.CODECS,
        default="h264",
        help="block grid and outputs: h264/hevc 16x16 + addroi, av1 64x64 + SVT-AV1 "
        "(default: %(default)s)",
    )
    _mapping_args(p)
    add_model_arguments(p)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")

    p = add_command(
        actions,
        "encode",
        help="encode twice at one bitrate, with and without the ROI, and compare luma PSNR "
        "inside and outside the salient region",
        example=f"vmafx-saliency roi encode {VIDEO} --codec libx264 --bitrate 300k --out roi-x264/",
        handler=_cmd_encode,
    )
    add_video_arguments(
        p, subsample_help="run the model on every N-th frame (encodes always take every frame)"
    )
    p.add_argument(
        "--codec", required=True, choices=roi.ENCODERS, help="the ffmpeg encoder to compare with"
    )
    p.add_argument("--bitrate", required=True, help="target bitrate of both encodes, e.g. 300k")
    p.add_argument("--out", metavar="DIR", help="keep encodes, map files and report here")
    p.add_argument("--preset", default="medium", help="encoder preset (default: %(default)s)")
    p.add_argument(
        "--passes",
        type=int,
        choices=(1, 2),
        default=2,
        help="ABR passes; 2 lands both sizes closest to the target (default: %(default)s)",
    )
    p.add_argument(
        "--encode-threads",
        type=int,
        metavar="N",
        help="encoder threads (default: the encoder's choice)",
    )
    p.add_argument("--ffmpeg", default="ffmpeg", metavar="PATH", help="the ffmpeg to run")
    _mapping_args(p)
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print the JSON report, not the table")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or steps on stderr")


def _mapping_args(p: argparse.ArgumentParser) -> None:
    from vmafx_saliency.downstream import roi

    g = p.add_argument_group("saliency -> QP offsets")
    g.add_argument(
        "--strength",
        type=float,
        default=roi.DEFAULT_STRENGTH,
        help="QP per standard deviation of block saliency (default: %(default)s)",
    )
    g.add_argument(
        "--clamp",
        type=int,
        default=roi.DEFAULT_CLAMP,
        help="largest |offset| in QP (default: %(default)s)",
    )
    g.add_argument(
        "--levels",
        type=int,
        default=roi.DEFAULT_LEVELS,
        help="distinct offsets, 3..8 (odd counts used; default: %(default)s)",
    )
    g.add_argument(
        "--aggregate",
        choices=roi.AGGREGATES,
        default="mean",
        help="temporal aggregation of the maps (default: %(default)s; addroi is static and "
        "uses the mean for per-frame and ema)",
    )
    g.add_argument(
        "--ema-alpha",
        type=float,
        default=roi.DEFAULT_EMA_ALPHA,
        help="weight of the newest frame for --aggregate ema (default: %(default)s)",
    )
    g.add_argument(
        "--max-regions",
        type=int,
        default=roi.DEFAULT_MAX_REGIONS,
        help="most addroi rectangles (default: %(default)s)",
    )
    g.add_argument(
        "--zone-frames",
        type=int,
        metavar="N",
        help="frames per x265 zone (default: one second of frames)",
    )


def _inputs(args: argparse.Namespace, codec: str) -> tuple[VideoInput, ModelChoice, RoiSettings]:
    from vmafx_saliency.downstream.roi import RoiSettings

    video = video_input(args)
    model = model_choice(args)
    settings = RoiSettings(
        codec=codec,  # type: ignore[arg-type]  # RoiSettings.validate explains a bad one
        strength=args.strength,
        clamp=args.clamp,
        levels=args.levels,
        aggregate=args.aggregate,
        ema_alpha=args.ema_alpha,
        max_regions=args.max_regions,
        zone_frames=args.zone_frames,
    )
    return video, model, settings


def _infer_size(args: argparse.Namespace) -> Any:
    from vmafx_saliency.video.extract import parse_infer_size

    return parse_infer_size(args.infer_size) if args.infer_size else None


def _cmd_map(args: argparse.Namespace) -> int:
    from vmafx_saliency.downstream import roi

    video, model, settings = _inputs(args, args.codec)
    plan, written = roi.run_map(
        video,
        model,
        settings,
        Path(args.out),
        infer_size=_infer_size(args),
        threads=args.threads,
        force=args.force,
        progress=sys.stderr.isatty() and not args.quiet,
    )
    if not args.quiet:
        rows, cols = plan.offsets.shape
        print(
            f"{len(plan.frames)} maps of {args.video} with {plan.model}: {cols}x{rows} blocks "
            f"of {plan.block_size}px, {plan.settings.aggregate}; salient region "
            f"{100 * float(plan.salient_mask().mean()):.1f}% of the picture"
            + (f", {len(plan.regions)} addroi regions" if plan.regions else ""),
            file=sys.stderr,
        )
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    from vmafx_saliency.downstream import roi

    video, model, settings = _inputs(args, roi.ENCODER_CODEC.get(args.codec, "h264"))
    encode = roi.EncodeSettings(
        encoder=args.codec,
        bitrate=roi.parse_bitrate(args.bitrate),
        preset=args.preset,
        threads=args.encode_threads,
        passes=args.passes,
        ffmpeg=args.ffmpeg,
    )

    def step(message: str) -> None:
        if not args.quiet:
            print(f"roi encode: {message}", file=sys.stderr)

    report = roi.run_encode(
        video,
        model,
        settings,
        encode,
        out_dir=Path(args.out) if args.out else None,
        run=roi.ModelRun(
            infer_size=_infer_size(args),
            threads=args.threads,
            progress=sys.stderr.isatty() and not args.quiet,
        ),
        force=args.force,
        on_step=step,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render())
    if not args.quiet:
        for path in report.written:
            print(f"wrote {path}", file=sys.stderr)
    return 0
