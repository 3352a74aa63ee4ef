"""The ``extract`` command: per-frame saliency features in vmaf's formats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

from vmafx_saliency.cli.options import (
    Subparsers,
    add_command,
    add_model_arguments,
    add_video_arguments,
    model_choice,
    video_input,
)
from vmafx_saliency.errors import UsageError


def _cmd_extract(args: argparse.Namespace) -> int:
    from vmafx_saliency.video.extract import check_threads, parse_infer_size
    from vmafx_saliency.video.job import Outputs, run_job

    if args.threads is not None:
        check_threads(args.threads)
    output: Path | Literal["-"] | None = None
    if args.output == "-" or (args.output is None and args.merge_into is None):
        output = "-"
    elif args.output is not None:
        output = Path(args.output)
    merge_output = _merge_output(args.merge_output, features_to_stdout=output == "-")
    if args.format and output is None:
        raise UsageError(
            f"--format {args.format} sets --output's format, and with --merge-into alone "
            "there is no --output (the merged file is vmaf's JSON): add --output, or leave "
            "--format out"
        )
    video, model = video_input(args), model_choice(args)
    try:
        fmt = args.format or _format_from_suffix(args.output)
    except UsageError:
        if isinstance(output, Path):  # "that is your input" matters more than its suffix
            from vmafx_saliency._util import check_inputs_spared
            from vmafx_saliency.video.job import run_inputs

            check_inputs_spared(run_inputs(video, model), files=[("--output", output)])
        raise
    job = run_job(
        video,
        model,
        Outputs(
            output=output,
            fmt=fmt,
            merge_into=Path(args.merge_into) if args.merge_into else None,
            merge_output=merge_output,
            save_maps=Path(args.save_maps) if args.save_maps else None,
            maps_every=args.maps_every,
            plot=Path(args.plot) if args.plot else None,
            force=args.force,
        ),
        infer_size=parse_infer_size(args.infer_size) if args.infer_size else None,
        threads=args.threads,
        progress=sys.stderr.isatty() and not args.quiet,
    )
    if not args.quiet:
        run = job.run
        print(
            f"{len(job.records)} frames of {args.video} with {run.model_id or 'an ad-hoc model'} "
            f"at {job.extraction.infer_size[1]}x{job.extraction.infer_size[0]}: "
            f"{run.fps:.1f} frames/s",
            file=sys.stderr,
        )
        for path in job.written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _merge_output(value: str | None, *, features_to_stdout: bool) -> Path | None:
    """--merge-output; ``-`` is standard output, as for --output, unless that has it.
    The merged file is vmaf's JSON: a suffix of another format is refused, not obeyed."""
    if value is None:
        return None
    if value != "-":
        suffix = Path(value).suffix.lower()
        if suffix in (".xml", ".csv"):
            raise UsageError(
                f"--merge-output {value}: the merged file is vmaf's JSON, whatever its name: "
                "name it .json (--format sets --output's format only)"
            )
        return Path(value)
    if features_to_stdout:
        raise UsageError(
            "--merge-output - and the features (--output -, or no --output) would both go to "
            "standard output: give --output a file, or --merge-output a path"
        )
    return Path("/dev/stdout")


def _format_from_suffix(output: str | None) -> Literal["json", "xml", "csv"]:
    """The format --output's suffix names; JSON, the default, where it has none (``-``,
    ``/dev/stdout``); another suffix is not guessed at (``out.txt`` is which?)."""
    suffix = Path(output).suffix.lower() if output and output != "-" else ""
    if suffix == ".xml":
        return "xml"
    if suffix == ".csv":
        return "csv"
    if suffix in ("", ".json"):
        return "json"
    raise UsageError(
        f"--output {output}: the format is taken from the suffix (.json, .xml or .csv) and "
        f"{suffix} is none of them: give --format json, xml or csv"
    )


def register(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "extract",
        help="per-frame saliency features (saliency_mean, saliency_var) in vmaf's formats",
        example="vmafx-saliency extract ../shared/data/videos/foreman_cif.mp4 "
        "--output foreman.json\n  vmafx-saliency extract in.yuv --width 352 --height 288 "
        "--pixel-format yuv420p --subsample 5 --format csv --output -",
        handler=_cmd_extract,
    )
    add_video_arguments(p, subsample_help="compute every N-th frame, as vmaf", fps=False)
    add_model_arguments(p)
    out = p.add_argument_group("outputs")
    out.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="output file, or - for stdout (the default, unless --merge-into is given)",
    )
    out.add_argument("--format", choices=["json", "xml", "csv"], help="default: from --output")
    out.add_argument("--merge-into", metavar="VMAF.json", help="add the features to a vmaf JSON")
    out.add_argument(
        "--merge-output", metavar="PATH", help="write the merged JSON here, or - for stdout"
    )
    out.add_argument(
        "--save-maps",
        metavar="DIR",
        help="write 8-bit PNG saliency maps (frame_NNNNNN.png, at the inference size, e.g. "
        "320x320) into DIR; other files there are kept, and --force replaces an earlier "
        "run's maps",
    )
    out.add_argument("--maps-every", type=int, default=1, metavar="N", help="every N-th map")
    out.add_argument("--plot", metavar="FILE.png", help="plot saliency_mean over frames")
    out.add_argument("--force", action="store_true", help="overwrite existing outputs")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
