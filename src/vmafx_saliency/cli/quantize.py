"""The ``quantize`` command: a static INT8 model of a float one, kept only within its budget."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency._util import (
    NOT_A_CHECKOUT,
    in_shared,
    positive_int,
    sha256_bytes,
)
from vmafx_saliency.cli.options import Subparsers, add_command
from vmafx_saliency.errors import QuantizeError, UsageError

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import Registry, Sidecar

# The held-out labelled set of the budget: the checkout's PASCAL-S (installed: none).
DEFAULT_DATASET = in_shared("data", "pascal-s")
_DATASET_DEFAULT = str(DEFAULT_DATASET) if DEFAULT_DATASET else "none outside a checkout"


def _cmd_quantize(args: argparse.Namespace) -> int:
    from vmafx_saliency.science import quantize as q
    from vmafx_saliency.supply.quantize import QuantRecipe
    from vmafx_saliency.supply.registry import Registry

    output = Path(args.output)
    q.check_extra()  # what to install first: a path can be fixed on the next try
    dataset = _dataset(args)
    # --model-path needs no overlay: a broken one stops it no more than it stops extract.
    registry = Registry.load() if args.model is not None else Registry.load_committed()
    parent_id, data, sidecar, parent_files = _parent(args, registry)
    q.check_outputs(output, parent_files=parent_files, registry=registry, force=args.force)
    model_id = args.id or output.stem
    q.check_model_id(model_id, named=" (--id, or --output's file name)")
    calibration = q.CalibrationSet.from_folder(
        Path(args.calibration), count=args.calibration_count, exclude=dataset
    )
    recipe = QuantRecipe(
        method=args.method,
        per_channel=not args.per_tensor,
        percentile=_percentile(args),
        keep_float=tuple(args.keep_float or ()),
    )
    check = q.BudgetCheck(
        dataset=dataset,
        clips=tuple(Path(c) for c in args.clip or ()),
        limit=args.limit,
        video_frames=args.clip_frames,
        budget=q.AccuracyBudget(
            max_f=args.max_f_drop, s_measure=args.s_drop, min_pearson=args.min_pearson
        ),
        threads=args.threads,
    )
    try:
        quantized = q.quantize_model(
            data,
            parent_id=parent_id,
            pre=sidecar.preprocessing,
            calibration=calibration,
            recipe=recipe,
            check=check,
        )
    except QuantizeError as exc:
        if exc.figures:
            print("\n".join(exc.figures))  # how far off, before the one-line error
        raise
    written = q.write_quantized(
        quantized,
        output=output,
        model_id=model_id,
        sidecar=sidecar,
        force=args.force,
        parent_files=parent_files,
        registry=registry,
    )
    print("\n".join(q.figures_table(quantized.report)))
    print(f"within the budget: wrote {', '.join(str(p) for p in written)}")
    return 0


def _dataset(args: argparse.Namespace) -> Path | None:
    """--dataset, its default in a checkout, or None for --no-dataset."""
    if args.no_dataset:
        return None
    if args.dataset is None:
        raise UsageError(
            f"{NOT_A_CHECKOUT}, so --dataset has no default: give --dataset DIR (a labelled "
            "set of images/ and masks/ that is not the calibration set), or --no-dataset "
            "with --clip to measure on video only"
        )
    return Path(args.dataset)


def _percentile(args: argparse.Namespace) -> float:
    """--percentile, for --method percentile only: elsewhere it would be ignored unsaid."""
    from vmafx_saliency.supply.quantize import QuantRecipe

    if args.percentile is None:
        return QuantRecipe.percentile
    if args.method != "percentile":
        raise UsageError(
            f"--percentile {args.percentile} sets --method percentile's cut, and the method "
            f"is {args.method}: add --method percentile, or leave --percentile out"
        )
    return float(args.percentile)


def _parent(
    args: argparse.Namespace, registry: Registry
) -> tuple[str, bytes, Sidecar, tuple[Path, ...]]:
    """The float parent through the loader's gate: its id, its bytes, its sidecar."""
    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Sidecar, sidecar_beside

    if args.model is not None and args.model_path is not None:
        raise UsageError("give the float model once: --model ID or --model-path, not both")
    if args.model is None and args.model_path is None:
        raise UsageError("give the float model: --model ID or --model-path MODEL.onnx")
    if args.model is not None:
        entry = registry.get(args.model)
        loaded = loader.load_entry(entry)
        assert loaded.sidecar is not None
        return entry.id, _gated_bytes(loaded), loaded.sidecar, (entry.onnx, entry.sidecar)
    path = Path(args.model_path)
    side = Path(args.sidecar) if args.sidecar else sidecar_beside(path)
    if side is None:
        raise UsageError(f"{path}: no sidecar beside it: pass --sidecar JSON")
    sidecar = Sidecar.load(side)
    loaded = loader.load_ad_hoc(path, sidecar=sidecar)
    return sidecar.model_id, _gated_bytes(loaded), sidecar, (path, side)


def _gated_bytes(loaded: LoadedModel) -> bytes:
    """The model's bytes, read again: the very bytes the gate passed, or an error.

    ``LoadedModel`` keeps no bytes, so they are read a second time and compared
    with the sha256 the gate saw: a file replaced in between is not quantised.
    """
    from vmafx_saliency.supply import loader

    _, data = loader.read_model_bytes(loaded.path)
    if loaded.sha256 != sha256_bytes(data):
        raise UsageError(
            f"{loaded.path} changed after the loader checked it: run the command again "
            "on a file nothing else writes"
        )
    return data


def register(sub: Subparsers) -> None:
    """quantize."""
    p = add_command(
        sub,
        "quantize",
        help="static INT8 (QDQ) model of a float one, measured against it and kept only "
        "within an accuracy budget",
        example="vmafx-saliency quantize --model saliency_student_v2 --calibration "
        "../shared/data/msra-b/images --clip ../shared/data/videos/foreman_cif.mp4 "
        "--output models/saliency_student_v2_int8.onnx   # in a checkout: --dataset is "
        "PASCAL-S\n  vmafx-saliency quantize --model saliency_student_v2 --calibration frames/ "
        "--clip clip.mp4 --dataset labelled/ --output student_int8.onnx",
        handler=_cmd_quantize,
    )
    model = p.add_argument_group("the float model")
    model.add_argument("--model", metavar="ID", help="a registered model")
    model.add_argument("--model-path", metavar="ONNX", help="an ONNX file (ad hoc)")
    model.add_argument("--sidecar", metavar="JSON", help="its sidecar (default: beside it)")
    cal = p.add_argument_group("calibration (never the evaluation set)")
    cal.add_argument("--calibration", required=True, metavar="DIR", help="images and/or clips")
    cal.add_argument(
        "--calibration-count",
        type=positive_int,
        default=64,
        metavar="N",
        help="the first N files of --calibration (default: %(default)s)",
    )
    cal.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    cal.add_argument("--percentile", type=float, help="for --method percentile (default: 99.999)")
    cal.add_argument("--per-tensor", action="store_true", help="one scale a tensor, not a channel")
    cal.add_argument("--keep-float", nargs="+", metavar="NODE", help="node names left in float")
    budget = p.add_argument_group("the accuracy budget (against the float model)")
    budget.add_argument(
        "--dataset",
        default=str(DEFAULT_DATASET) if DEFAULT_DATASET is not None else None,
        metavar="DIR",
        help=f"labelled images/ and masks/ (default: {_DATASET_DEFAULT})",
    )
    budget.add_argument("--no-dataset", action="store_true", help="measure on clips only")
    budget.add_argument("--limit", type=positive_int, metavar="N", help="the first N pairs only")
    budget.add_argument("--clip", nargs="+", metavar="VIDEO", help="clips for the Pearson check")
    budget.add_argument(
        "--clip-frames",
        type=positive_int,
        default=120,
        metavar="N",
        help="the first N frames of each clip (default: %(default)s)",
    )
    budget.add_argument(
        "--max-f-drop", type=float, default=0.01, metavar="D", help="default: %(default)s"
    )
    budget.add_argument(
        "--s-drop", type=float, default=0.01, metavar="D", help="S-measure; default: %(default)s"
    )
    budget.add_argument(
        "--min-pearson",
        type=float,
        default=0.995,
        metavar="R",
        help="per-frame saliency_mean Pearson on each clip (default: %(default)s)",
    )
    p.add_argument("--output", required=True, metavar="ONNX")
    p.add_argument("--id", metavar="ID", help="the new model's id (default: the output's stem)")
    p.add_argument(
        "--threads", type=positive_int, metavar="N", help="inference threads, at most 256"
    )
    p.add_argument("--force", action="store_true", help="replace existing outputs")
