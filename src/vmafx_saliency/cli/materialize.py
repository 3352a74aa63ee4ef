"""The ``materialize`` subcommand: saliency columns for a JSONL or Parquet table."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmafx_saliency.cli.options import MODEL_ID_HELP, Subparsers, add_command, add_provider_flag


def _cmd_materialize(args: argparse.Namespace) -> int:
    from vmafx_saliency.downstream import materialize
    from vmafx_saliency.video.job import ModelChoice

    summary = materialize.materialize(
        Path(args.input),
        Path(args.output),
        materialize.Options(
            path_column=args.path_column,
            root=Path(args.root) if args.root else None,
            model=ModelChoice(
                model_id=args.model,
                model_path=Path(args.model_path) if args.model_path else None,
                sidecar=Path(args.sidecar) if args.sidecar else None,
                signed=args.signed,
                provider=args.provider,
            ),
            defaults=materialize.Geometry(
                width=args.width, height=args.height, pixel_format=args.pixel_format
            ),
            max_frames=args.max_frames,
            aggregator=args.aggregator,
            ema_alpha=args.ema_alpha,
            overwrite=args.overwrite,
            executor=args.executor,
            address=args.address,
            jobs=args.jobs,
            force=args.force,
        ),
    )
    if not args.quiet:
        print(summary.render())
    # As diff and grep do: 0 complete, 1 written with failed rows, 2 refused.
    return 1 if summary.failed_rows else 0


def register(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "materialize",
        help="add saliency_mean/var, saliency_status and saliency_model columns to every row "
        "of a JSONL or Parquet table of videos",
        example="vmafx-saliency materialize --input clips.parquet --output clips.sal.parquet "
        "--path-column src --max-frames 30\n  vmafx-saliency materialize --input clips.jsonl "
        "--output out.jsonl --path-column src --executor ray --address auto",
        handler=_cmd_materialize,
    )
    table = p.add_argument_group("table")
    table.add_argument("--input", required=True, metavar="TABLE", help=".jsonl or .parquet")
    table.add_argument(
        "--output", required=True, metavar="TABLE", help=".jsonl or .parquet (format by suffix)"
    )
    table.add_argument(
        "--path-column", required=True, metavar="NAME", help="the column holding video paths"
    )
    table.add_argument(
        "--root", metavar="DIR", help="relative paths resolve here (default: the table's folder)"
    )
    table.add_argument(
        "--overwrite", action="store_true", help="recompute rows that already have values"
    )
    table.add_argument("--force", action="store_true", help="overwrite an existing output")
    table.add_argument(
        "--quiet", "-q", action="store_true", help="no summary (warnings are still shown)"
    )
    raw = p.add_argument_group(
        "defaults for raw YUV rows whose width/height/pixel_format are empty or absent"
    )
    raw.add_argument("--width", type=int)
    raw.add_argument("--height", type=int)
    raw.add_argument("--pixel-format", help="yuv420p (default), yuv422p, yuv444p, ...")
    model = p.add_argument_group("model and pooling")
    model.add_argument(
        "--model",
        metavar="ID",
        help=MODEL_ID_HELP,
    )
    model.add_argument(
        "--model-path",
        metavar="FILE",
        help="an unregistered ONNX file (ad hoc; also $VMAF_MOBILESAL_MODEL_PATH)",
    )
    model.add_argument("--sidecar", metavar="JSON", help="pre-processing for --model-path")
    model.add_argument("--signed", action="store_true", help="require a verified signature")
    add_provider_flag(model)
    model.add_argument(
        "--max-frames", type=int, metavar="N", help="use the first N frames (default: all)"
    )
    model.add_argument(
        "--aggregator",
        choices=["mean", "ema", "max"],
        default="mean",
        help="how per-frame values pool into one (default: %(default)s)",
    )
    model.add_argument(
        "--ema-alpha", type=float, metavar="A", help="EMA weight of each new frame (default: 0.25)"
    )
    run = p.add_argument_group("scale-out")
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local process pool or Ray actors (default: %(default)s)",
    )
    run.add_argument("--address", metavar="ADDR", help="Ray cluster address (default: start one)")
    run.add_argument(
        "--jobs", type=int, metavar="N", help="workers (default: the cores, or the Ray cluster's)"
    )
