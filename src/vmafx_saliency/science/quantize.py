"""INT8 models with a measured accuracy budget: calibrate, quantise, measure, refuse or keep.

:func:`quantize_model` calibrates on a folder of images or clips that is not
the evaluation set, pre-processed exactly as the extractor feeds the model
(the sidecar's pipeline, luma tiled), quantises through
:func:`vmafx_saliency.supply.quantize.quantize_qdq`, then measures the
candidate against its float parent:

- on a labelled set (PASCAL-S), the deployment protocol: max F and S-measure
  of each (the evaluator's own metrics, ``DatasetMetrics``);
- on clips: the per-frame ``saliency_mean`` of each, their Pearson
  correlation and mean absolute difference.

A candidate beyond the :class:`AccuracyBudget` (default: 0.01 in max F and S,
Pearson >= 0.995) is refused with its figures (:class:`QuantizeError`); a kept
one comes with a manifest recording the recipe, the calibration set's digest
and the figures.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmafx_saliency._util import require_extra, sha256_bytes, walk_files
from vmafx_saliency.errors import OutputError, QuantizeError, UsageError
from vmafx_saliency.supply.registry import QUANTIZATION_MANIFEST_SCHEMA, Preprocessing, Sidecar
from vmafx_saliency.supply.runs import run_map

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import Registry

# An image or a clip for calibration; far above any in ../shared.
_MAX_FILE_BYTES = 512 << 20
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
CLIP_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".webm", ".y4m", ".ts"})


@dataclass(frozen=True, kw_only=True)
class AccuracyBudget:
    """How far a quantised model may fall from its float parent."""

    max_f: float = 0.01
    s_measure: float = 0.01
    min_pearson: float = 0.995

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("max F drop", self.max_f, 0.0, 1.0),
            ("S-measure drop", self.s_measure, 0.0, 1.0),
            ("minimum Pearson", self.min_pearson, -1.0, 1.0),
        ):
            if not low <= value <= high:  # NaN fails too
                raise UsageError(f"{name} {value}: give a number from {low} to {high}")


@dataclass(frozen=True)
class CalibrationSet:
    """The files calibration reads (sorted), and a digest of their names and bytes."""

    folder: Path
    files: tuple[Path, ...]
    digest: str
    file_digests: tuple[str, ...] = ()  # each file's sha256, in the order of ``files``

    @classmethod
    def from_folder(
        cls, folder: Path, *, count: int, exclude: Path | None = None
    ) -> CalibrationSet:
        """The first ``count`` images or clips of ``folder``; never files of ``exclude``."""
        folder = Path(folder)
        if not folder.is_dir():
            raise QuantizeError(
                f"--calibration {folder} is not a folder: give a folder of images or clips "
                "(none of them the evaluation set's)"
            )
        files = tuple(
            p
            for p in walk_files(folder, what="calibration folder")
            if p.suffix.lower() in IMAGE_SUFFIXES | CLIP_SUFFIXES
        )[:count]
        if not files:
            raise QuantizeError(
                f"calibration folder {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                "or clips: pass a folder of frames like the ones the model will see"
            )
        digests = {p: sha256_bytes(_read(p)) for p in files}
        if exclude is not None:
            _refuse_overlap(folder, digests, Path(exclude))
        lines = "".join(f"{p.relative_to(folder)}\0{digests[p]}\n" for p in files)
        digest = hashlib.sha256(lines.encode()).hexdigest()
        return cls(folder, files, digest, tuple(digests[p] for p in files))

    def check_apart_from(self, clips: Sequence[Path]) -> None:
        """Refuse clips the budget cannot measure on (not plain files), or that calibrate."""
        for clip in clips:
            if clip.suffix.lower() not in CLIP_SUFFIXES:
                raise QuantizeError(
                    f"--clip {clip}: give a clip that says its own size "
                    f"({', '.join(sorted(CLIP_SUFFIXES))}); raw YUV can be wrapped losslessly "
                    "with ffmpeg -f rawvideo -pix_fmt yuv420p -s WxH -i in.yuv out.y4m"
                )
            if sha256_bytes(_read(clip)) in self.file_digests:
                raise QuantizeError(
                    f"--clip {clip} is also in the calibration folder {self.folder}: measuring "
                    "on a calibration clip would flatter the budget; calibrate on other clips"
                )

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": len(self.files), "sha256": self.digest}


def _read(path: Path) -> bytes:
    """A calibration or evaluation file: a plain file, capped (never a pipe or a device)."""
    from vmafx_saliency._util import read_capped

    return read_capped(path, cap=_MAX_FILE_BYTES, what="image or clip", error=QuantizeError)


def _refuse_overlap(folder: Path, digests: dict[Path, str], evaluation: Path) -> None:
    """Calibrating on the evaluation set would flatter the budget: refuse any shared file."""
    evaluation = evaluation.resolve()
    if folder.resolve() == evaluation or evaluation in folder.resolve().parents:
        raise QuantizeError(
            f"calibration folder {folder} lies in the evaluation set {evaluation}: calibrate "
            "on other frames (MSRA-B, your own clips)"
        )
    files = walk_files(evaluation, what="evaluation set")
    held_out = {sha256_bytes(_read(p)) for p in files if p.is_file()}
    shared = [p.name for p, d in digests.items() if d in held_out]
    if shared:
        raise QuantizeError(
            f"calibration folder {folder} shares {len(shared)} file(s) with the evaluation set "
            f"{evaluation} (first: {shared[0]}): calibrate on other frames"
        )


def calibration_tensors(
    calibration: CalibrationSet, pre: Preprocessing, *, frames_per_clip: int = 8
) -> Iterator[np.ndarray]:
    """Model inputs as the extractor makes them: images as JPEG's luma, clips' own luma."""
    from vmafx_saliency.science.evaluate.dataset import read_image
    from vmafx_saliency.science.evaluate.protocols import deployment_input

    for path in calibration.files:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield deployment_input(read_image(path), pre)
        else:
            yield from _clip_tensors(path, pre, frames=frames_per_clip)


def _clip_tensors(path: Path, pre: Preprocessing, *, frames: int) -> Iterator[np.ndarray]:
    """``frames`` model inputs spread evenly over the clip."""
    return _clip_inputs(path, pre, frames=frames, spread=True)


def _clip_inputs(
    path: Path, pre: Preprocessing, *, frames: int, spread: bool = False
) -> Iterator[np.ndarray]:
    """The model inputs of the clip's first ``frames`` frames, or with ``spread`` of
    ``frames`` frames spread evenly over it (every n-th, by the count it declares)."""
    from vmafx_saliency.video.extract import frame_input, resolve_size
    from vmafx_saliency.video.frames import open_video

    with open_video(path) as source:
        info = source.info
        size = resolve_size(pre, None, (info.height, info.width))
        step = max(1, (info.frame_count or frames) // frames) if spread else 1
        for frame in source:
            if frame.index // step >= frames:
                break
            if frame.index % step == 0:
                yield frame_input(frame, pre=pre, color_range=info.color_range, size=size)


# --- the budget ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFigures:
    dataset: str
    pairs: int
    parent: dict[str, float]  # max_f, s_measure
    candidate: dict[str, float]


@dataclass(frozen=True)
class VideoFigures:
    clip: str
    frames: int
    pearson: float
    mean_abs_diff: float


@dataclass(frozen=True, kw_only=True)
class BudgetCheck:
    """Where the budget is measured: a labelled set, clips, and how much of each."""

    dataset: Path | None
    clips: tuple[Path, ...] = ()
    limit: int | None = None  # labelled pairs; None: all
    video_frames: int = 120  # frames of each clip
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    threads: int | None = None


@dataclass(frozen=True)
class AccuracyReport:
    images: ImageFigures | None
    videos: tuple[VideoFigures, ...]
    budget: AccuracyBudget

    def problems(self) -> list[str]:
        """Each way the candidate is beyond the budget, in words with its figures."""
        found = []
        if self.images is not None:
            for metric, allowed in (
                ("max_f", self.budget.max_f),
                ("s_measure", self.budget.s_measure),
            ):
                drop = self.images.parent[metric] - self.images.candidate[metric]
                if drop > allowed:
                    found.append(
                        f"{metric} {self.images.candidate[metric]:.4f} against "
                        f"{self.images.parent[metric]:.4f} (a drop of {drop:.4f} > {allowed})"
                    )
        for video in self.videos:
            if not video.pearson >= self.budget.min_pearson:
                found.append(
                    f"{video.clip}: per-frame saliency_mean Pearson {video.pearson:.4f} < "
                    f"{self.budget.min_pearson}"
                )
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": {
                "max_f_drop": self.budget.max_f,
                "s_measure_drop": self.budget.s_measure,
                "min_pearson": self.budget.min_pearson,
            },
            "images": None if self.images is None else vars(self.images),
            "videos": [vars(v) for v in self.videos],
            "within_budget": not self.problems(),
        }


def measure(parent: Any, candidate: Any, pre: Preprocessing, check: BudgetCheck) -> AccuracyReport:
    """The candidate's figures against its parent's (two ONNX Runtime sessions)."""
    images = None
    if check.dataset is not None:
        images = _measure_images(parent, candidate, pre, Path(check.dataset), check.limit)
    videos = tuple(
        _measure_clip(parent, candidate, pre, clip, check.video_frames) for clip in check.clips
    )
    return AccuracyReport(images, videos, check.budget)


_ROLES = ("the float parent", "the quantised model")
_RUN_ADVICE = "the model cannot run this input: quantise with another recipe, or check the parent"


def _measure_images(
    parent: Any, candidate: Any, pre: Preprocessing, dataset: Path, limit: int | None
) -> ImageFigures:
    from vmafx_saliency.science.evaluate.dataset import load_pair, pair_dataset
    from vmafx_saliency.science.evaluate.metrics import DatasetMetrics
    from vmafx_saliency.science.evaluate.protocols import deployment_input, deployment_output

    pairs = pair_dataset(dataset, limit=limit)
    scores = (DatasetMetrics(), DatasetMetrics())
    for pair in pairs:
        loaded = load_pair(pair)
        tensor = deployment_input(loaded.image, pre)
        hw = (loaded.image.shape[0], loaded.image.shape[1])
        for session, role, metrics in zip((parent, candidate), _ROLES, scores, strict=True):
            what = f"{role} on image {pair.stem!r}"
            saliency = run_map(session, tensor, what=what, advice=_RUN_ADVICE)
            metrics.step(deployment_output(saliency[0, 0], hw), loaded.mask)
    figures = [m.get_results()[0] for m in scores]
    keys = ("max_f", "s_measure")
    return ImageFigures(
        str(dataset),
        len(pairs),
        {k: figures[0][k] for k in keys},
        {k: figures[1][k] for k in keys},
    )


def _measure_clip(
    parent: Any, candidate: Any, pre: Preprocessing, clip: Path, frames: int
) -> VideoFigures:
    means: tuple[list[float], list[float]] = ([], [])
    for index, tensor in enumerate(_clip_inputs(clip, pre, frames=frames)):
        for session, role, out in zip((parent, candidate), _ROLES, means, strict=True):
            what = f"{role} on {clip.name}'s sample {index}"
            saliency = run_map(session, tensor, what=what, advice=_RUN_ADVICE)
            out.append(float(saliency.mean()))
    a, b = (np.asarray(m, dtype=np.float64) for m in means)
    return VideoFigures(clip.name, len(a), _pearson(a, b), float(np.abs(a - b).mean()))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; a flat series agrees only with an equal flat series (r is undefined)."""
    if len(a) > 1 and a.std() > 0 and b.std() > 0:
        return float(np.corrcoef(a, b)[0, 1])
    return 1.0 if np.allclose(a, b, atol=1e-6) else 0.0


# --- quantise, measure, keep or refuse ---------------------------------------------------


@dataclass(frozen=True)
class Quantized:
    data: bytes
    manifest: dict[str, Any]
    report: AccuracyReport


def check_extra() -> None:
    """The quantize extra, before any file is read: onnx, and the images and metrics of
    the calibration set and the budget."""
    require_extra(
        "quantize",
        {
            "onnx": "quantize",
            "PIL.Image": "quantize (image loading)",
            "py_sod_metrics": "quantize (the budget's metrics)",
        },
    )


def quantize_model(
    parent: bytes,
    *,
    parent_id: str,
    pre: Preprocessing,
    calibration: CalibrationSet,
    recipe: Any,
    check: BudgetCheck,
) -> Quantized:
    """Quantise ``parent`` and keep it only within ``check.budget`` (else QuantizeError)."""
    if not check.clips:
        # The registry records the Pearson budget: it must have been measured.
        raise UsageError(
            "no clip to measure the per-frame Pearson on: give at least one --clip "
            "(the budget is measured, never assumed)"
        )
    from vmafx_saliency.supply import contract, scan
    from vmafx_saliency.supply.quantize import quantize_qdq
    from vmafx_saliency.video.extract import check_threads

    if check.threads is not None:
        check_threads(check.threads)
    calibration.check_apart_from(check.clips)  # before any work: missing, pipes, shared bytes

    data = quantize_qdq(parent, calibration_tensors(calibration, pre), recipe=recipe)
    scan.check_bytes(data, path=f"{parent_id} (int8)")
    sessions = [
        contract.make_session(model, source=name, threads=check.threads)
        for model, name in ((parent, parent_id), (data, f"{parent_id} (int8)"))
    ]
    report = measure(sessions[0], sessions[1], pre, check)
    problems = report.problems()
    if problems:
        raise QuantizeError(
            f"the int8 model of {parent_id} is beyond its accuracy budget: "
            f"{'; '.join(problems)}: nothing written; try another recipe (--method, "
            "--keep-float) or more calibration frames",
            figures=figures_table(report),
        )
    manifest = {
        "schema": QUANTIZATION_MANIFEST_SCHEMA,
        "parent": {"id": parent_id, "sha256": sha256_bytes(parent)},
        "output": {"sha256": sha256_bytes(data), "bytes": len(data)},
        "quant_mode": "static",
        "recipe": recipe.to_json(),
        "calibration": calibration.to_json(),
        "accuracy": report.to_json(),
    }
    return Quantized(data, manifest, report)


def check_model_id(model_id: str, *, named: str = "") -> None:
    """The id the quantised model is written and registered under must be a registry id.

    ``named``: where the id came from, for the message (the CLI's options).
    """
    from vmafx_saliency.supply.registry.documents import MODEL_ID_RULE, is_model_id

    if not is_model_id(model_id):
        raise UsageError(
            f"model id {model_id!r}{named}: {MODEL_ID_RULE}; it names the model in the registry"
        )


def output_files(output: Path) -> tuple[Path, Path, Path]:
    """The model, its sidecar and its manifest, as :func:`write_quantized` names them."""
    output = Path(output)
    return (
        output,
        output.with_name(f"{output.stem}.sidecar.json"),
        output.with_name(f"{output.name}.manifest.json"),
    )


def check_outputs(
    output: Path,
    *,
    parent_files: Sequence[Path] = (),
    registry: Registry | None = None,
    force: bool,
) -> None:
    """An .onnx path whose three files are none of the parent's nor of a registered
    model's, even with ``force`` (a pinned model overwritten stops loading), and
    that clobber nothing without ``force``. ``registry``: default, the committed
    one and the overlay."""
    from vmafx_saliency._util import check_can_write
    from vmafx_saliency.supply.registry import Registry

    output = Path(output)
    if output.suffix != ".onnx" or output.name.startswith("-"):
        raise UsageError(
            f"--output {output}: name an .onnx file (its sidecar and manifest go beside it)"
        )
    entries = (registry if registry is not None else Registry.load()).entries()
    registered = [(e.id, f.resolve()) for e in entries for f in (e.onnx, e.sidecar)]
    parents = [p.resolve() for p in parent_files]
    for path in output_files(output):
        if path.resolve() in parents:
            raise UsageError(
                f"--output {output} would overwrite the float model's {path.name}: "
                "choose another path"
            )
        owner = next((i for i, f in registered if path.resolve() == f), None)
        if owner is not None:
            raise UsageError(
                f"--output {output} would overwrite {path.name} of the registered model "
                f"{owner}, even with --force: choose another path"
            )
        check_can_write(path, force=force)


def write_quantized(
    quantized: Quantized,
    *,
    output: Path,
    model_id: str,
    sidecar: Sidecar,
    force: bool,
    parent_files: Sequence[Path] = (),
    registry: Registry | None = None,
) -> tuple[Path, Path, Path]:
    """Write the model, its sidecar (the parent's pipeline, its own id) and its manifest.

    Each is checked before any is written (:func:`check_outputs`: never a
    parent's or a registered model's file, nothing clobbered without ``force``)
    and written atomically; the ONNX goes last, so a model never lies without
    its sidecar and manifest. They are written as a set: if one cannot be, none
    is, the files of an earlier run stay as they were, and the error is one line.
    """
    import dataclasses
    import json

    from vmafx_saliency._util import atomic_writer

    check_model_id(model_id)
    check_outputs(output, parent_files=parent_files, registry=registry, force=force)
    output, side, manifest = output_files(output)
    notes = f"{model_id}: the static INT8 (QDQ) model of {quantized.manifest['parent']['id']}."
    own = dataclasses.replace(sidecar, model_id=model_id, notes=notes)
    doc = {**quantized.manifest, "model_id": model_id}
    contents = (
        (output, quantized.data),
        (manifest, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()),
        (side, (json.dumps(own.to_json(), indent=2, sort_keys=True) + "\n").encode()),
    )
    try:
        # All three are written to temporaries before any is renamed into place (the
        # contexts close in reverse: the sidecar, the manifest, then the model), so a
        # failed write leaves the earlier set, or nothing, as it was.
        with contextlib.ExitStack() as stack:
            for path, data in contents:
                stack.enter_context(atomic_writer(path, force=force)).write(data)
    except OSError as exc:
        raise OutputError(
            f"cannot write the quantised model's files beside {output}: {exc.strerror or exc}: "
            "give an --output in a folder you can write to"
        ) from exc
    return output, side, manifest


def figures_table(report: AccuracyReport) -> Sequence[str]:
    """The figures as lines for a terminal."""
    lines = []
    if report.images is not None:
        i = report.images
        for metric in ("max_f", "s_measure"):
            lines.append(
                f"{metric:<10} fp32 {i.parent[metric]:.4f}  int8 {i.candidate[metric]:.4f}  "
                f"({i.pairs} pairs of {Path(i.dataset).name}, deployment protocol)"
            )
    for v in report.videos:
        lines.append(
            f"{v.clip}: saliency_mean Pearson {v.pearson:.5f}, mean |difference| "
            f"{v.mean_abs_diff:.5f} over {v.frames} frames"
        )
    return lines
