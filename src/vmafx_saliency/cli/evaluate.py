"""The ``eval`` and ``compare`` subcommands (library: :mod:`vmafx_saliency.science.evaluate`)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency._util import positive_int
from vmafx_saliency.cli.options import Subparsers, add_command, add_provider_flag, video_input
from vmafx_saliency.errors import UsageError

if TYPE_CHECKING:
    from vmafx_saliency.video.job import VideoInput


def _progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() and not args.quiet


def _command(name: str, args: argparse.Namespace, positional: Sequence[str] = ()) -> str:
    """The command line as parsed, options spelled out, for the reports.

    Rebuilt from the parsed arguments rather than taken from ``sys.argv``, which
    is another program's when ``cli.main(argv)`` is called from Python.
    """
    words = ["vmafx-saliency", name, *positional]
    skip = {"handler", "command", "verbose", "quiet", "videos"}
    for key, value in sorted(vars(args).items()):
        if key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _cmd_eval(args: argparse.Namespace) -> int:
    from vmafx_saliency.science import evaluate

    options = evaluate.EvalOptions(
        dataset=Path(args.dataset),
        models=evaluate.parse_models(
            args.models, sidecars=tuple(Path(p) for p in args.sidecar or ())
        ),
        protocol=args.protocol,
        report=Path(args.report),
        limit=args.limit,
        force=args.force,
        jobs=args.jobs,
        threads=args.threads,
        gt_threshold=args.gt_threshold,
        grid=args.grid,
        signed=args.signed,
        provider=args.provider,
        progress=_progress(args),
        command=_command("eval", args),
    )
    result = evaluate.run_eval(options)
    summary = result.summary
    ds = summary.dataset
    print(
        f"{ds.name}: {ds.count} pairs, protocol {summary.protocol}, "
        f"{result.seconds:.1f} s; report in {result.report}"
    )
    shown = ("max_f", "max_f_per_image", "mae", "s_measure", "max_e", "weighted_f", "iou")
    print(f"{'model':<28} " + " ".join(f"{name:>15}" for name in (*shown, "ms_per_image")))
    for m in summary.models:
        cells = []
        for name in (*shown, "ms_per_image"):
            value = m.metrics.get(name)
            cells.append(f"{'n/a' if value is None else f'{value:.4f}':>15}")
        print(f"{m.id:<28} " + " ".join(cells))
    return 0


def _compare_input(args: argparse.Namespace, path: str) -> VideoInput:
    """One clip of ``compare``: the geometry flags are for its raw YUV clips, so a clip
    that states its own size (a container, Y4M, by name or by content) keeps it."""
    return dataclasses.replace(video_input(args, path), geometry_for_raw_only=True)


def _cmd_compare(args: argparse.Namespace) -> int:
    from vmafx_saliency.science import evaluate

    specs = evaluate.parse_models(args.models, sidecars=tuple(Path(p) for p in args.sidecar or ()))
    if len(specs) != 2:
        raise UsageError(
            f"--models {args.models!r} names {len(specs)} model(s): compare takes exactly two, "
            "e.g. --models u2netp_mirror_v1,saliency_student_v2"
        )

    videos = tuple(_compare_input(args, v) for v in args.videos)
    result = evaluate.run_compare(
        evaluate.CompareOptions(
            videos=videos,
            models=(specs[0], specs[1]),
            report=Path(args.report),
            force=args.force,
            threads=args.threads,
            signed=args.signed,
            provider=args.provider,
            progress=_progress(args),
            command=_command("compare", args, args.videos),
            block=args.block,
        )
    )
    o = result.overall

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    print(
        f"{result.model_a} vs {result.model_b} over {len(o.frames)} frames of "
        f"{len(result.clips)} clip(s): Pearson {show(o.pearson)}, Spearman {show(o.spearman)}, "
        f"mean |diff| {o.mean_abs_diff:.4f}, KS {o.ks_statistic:.3f}, "
        f"block IoU {o.block_iou:.4f}; report in {result.report}"
    )
    return 0


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        required=True,
        metavar="ID[,ID...]",
        help="registry ids and/or .onnx paths (loaded ad hoc with <stem>.sidecar.json beside them)",
    )
    p.add_argument(
        "--sidecar",
        action="append",
        metavar="JSON",
        help="sidecar for an .onnx path in --models; repeat once per path, in order",
    )
    p.add_argument("--signed", action="store_true", help="require verified signatures")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="inference threads, at most 256 (default: all cores)",
    )
    add_provider_flag(p)


def _add_force_quiet(p: argparse.ArgumentParser) -> None:
    """--force and --quiet, the last options of both commands."""
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier report in --report (never another kind of folder)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def register(sub: Subparsers) -> None:
    """Add ``eval`` and ``compare`` to the top-level subparsers."""
    _register_eval(sub)
    _register_compare(sub)


def _register_eval(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "eval",
        help="accuracy of models on a labelled saliency dataset: metrics, report and plots",
        example="vmafx-saliency eval --dataset ../shared/data/pascal-s --models "
        "u2netp_mirror_v1,saliency_student_v2 --protocol upstream --report reports/pascal-s "
        "--jobs 2",
        handler=_cmd_eval,
    )
    p.add_argument(
        "--dataset", required=True, metavar="DIR", help="a folder with images/ and masks/"
    )
    _add_model_flags(p)
    p.add_argument(
        "--protocol",
        choices=["upstream", "deployment"],
        default="deployment",
        help="upstream: u2net_test.py's RGB pipeline with min-max; deployment: the "
        "extractor's luma pipeline, raw map (default: %(default)s)",
    )
    p.add_argument("--report", required=True, metavar="DIR", help="the report folder to write")
    p.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N pairs (sorted by stem)"
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker threads for loading, pre/post-processing and scoring (default: 1)",
    )
    p.add_argument(
        "--gt-threshold",
        type=int,
        default=127,
        metavar="N",
        help="a mask pixel is salient when > N (default: %(default)s; py_sod_metrics uses 128)",
    )
    p.add_argument(
        "--grid",
        type=int,
        default=4,
        metavar="N",
        help="images in grid.png, 0 for none (default: 4)",
    )
    _add_force_quiet(p)


def _register_compare(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "compare",
        help="agreement of two models on video clips through the extractor's pipeline",
        example="vmafx-saliency compare ../shared/data/videos/foreman_cif.mp4 --models "
        "u2netp_mirror_v1,saliency_student_v2 --subsample 5 --report reports/foreman",
        handler=_cmd_compare,
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="mp4/mkv/... , .y4m or raw .yuv")
    _add_model_flags(p)
    p.add_argument("--report", required=True, metavar="DIR", help="the report folder to write")
    p.add_argument("--frames", metavar="START:END", help="frame range, END exclusive")
    p.add_argument(
        "--subsample", type=positive_int, default=1, metavar="N", help="every N-th frame, as vmaf"
    )
    p.add_argument(
        "--block",
        type=positive_int,
        default=16,
        metavar="PIXELS",
        help="block size for the block-IoU agreement (default: %(default)s)",
    )
    video = p.add_argument_group(
        "raw YUV geometry",
        "for the raw YUV clips (.yuv/.raw, or a name that is neither a container nor Y4M); a "
        "clip that states its own size keeps it",
    )
    video.add_argument("--width", type=int)
    video.add_argument("--height", type=int)
    video.add_argument("--pixel-format", help="yuv420p (default), yuv422p, yuv444p, ...")
    video.add_argument("--fps", type=float)
    video.add_argument("--color-range", choices=["limited", "full"])
    _add_force_quiet(p)
