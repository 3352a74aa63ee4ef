"""Train ``saliency_student_v2`` by distillation from the u2netp mirror.

The recipe, in order:

1. **Teacher labels.** The teacher (an ONNX model through the loader gate, by
   path or registry id) labels every training image once in its best setting:
   RGB, 320x320, upstream pre-processing (:func:`export.preprocess_upstream`).
   The raw fused map ``d0`` is kept (no per-image min-max: the extractor
   reports the raw map's mean, so the student must learn its absolute level)
   and stored as an 8-bit PNG at 320x320 in a cache keyed by the teacher's
   sha256, beside a provenance JSON.
2. **Deployment input.** The student sees what the extractor feeds it: BT.601
   luma of the image as full-range 8-bit, resized to the inference size and
   scaled exactly as :func:`extract.preprocess` does for the student's sidecar,
   tiled to three channels. So it learns to reproduce the RGB teacher from luma.
3. **Training.** BCE + soft IoU against the soft teacher map, Adam, cosine
   schedule, flips / random scaled crops / brightness-contrast on the luma,
   fixed seed, deterministic on CPU, a checkpoint every epoch (``--resume``),
   model selection on a held-out split of the training images against the
   teacher (never on PASCAL-S, which is refused as a training folder).
4. **Export** with the mirror's export-plus-check (ONNX opset 17, parity against
   PyTorch on real images at 320x320 and an odd size, op-allowlist scan,
   deployment contract, no BatchNormalization left), a manifest, the sidecar
   and a training record.

torch, onnx and Pillow are imported lazily (the ``export`` extra).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import pickle
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from vmafx_saliency import __version__
from vmafx_saliency._util import (
    PROJECT_ROOT,
    SHARED_DIR,
    atomic_write_bytes,
    atomic_write_text,
    check_can_write,
    check_out_folder,
    require,
    sha256_bytes,
    sha256_file,
)
from vmafx_saliency.errors import (
    ExportError,
    InputFileError,
    TrainingDivergedError,
    UsageError,
)
from vmafx_saliency.supply.registry import Preprocessing, Sidecar

log = logging.getLogger(__name__)

MODEL_ID = "saliency_student_v2"
LICENSE_SPDX = "LicenseRef-BSD-3-Clause-Plus-Patent"
OPSET = 17
# Student vs ONNX Runtime, max abs difference of the [0, 1] map (issue 7).
PARITY_TOLERANCE = 1e-4
PARITY_SIZES: tuple[tuple[int, int], ...] = ((320, 320), (333, 517))
LABEL_SIZE = (320, 320)
LABEL_PROTOCOL = {
    "colour_mode": "rgb",
    "size": [LABEL_SIZE[0], LABEL_SIZE[1]],
    "preprocessing": "vmafx_saliency.supply.export.preprocess_upstream (bilinear resize, "
    "divide by the image max, ImageNet mean/std)",
    "output": "saliency_map (u2netp d0), raw: not min-max normalised",
    "storage": "8-bit grey PNG, round(clip(map, 0, 1) * 255)",
}
# The teacher on what the extractor feeds it (``--teacher-input luma``): the
# student's own input, so every label is one a luma-only model can reach.
LUMA_LABEL_PROTOCOL = {
    **LABEL_PROTOCOL,
    "colour_mode": "luma_tile",
    "preprocessing": "BT.601 luma (full-range 8-bit) of the RGB image, then "
    "vmafx_saliency.video.extract.preprocess with the teacher's sidecar (luma tiled to RGB)",
}
TEACHER_INPUTS = ("rgb", "luma")
TRAINING_RECORD_SCHEMA = "vmafx-saliency/training-record/v1"
MANIFEST_SCHEMA = "vmafx-saliency/export-manifest/v1"
PROVENANCE_SCHEMA = "vmafx-saliency/teacher-labels/v1"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# The student is a drop-in for the mirror: the same sidecar pre-processing.
STUDENT_PREPROCESSING = Preprocessing(
    colour_mode="luma_tile",
    inference_size=(320, 320),
    scaling="divide_by_max",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    luma_range="auto",
)
SIDECAR_NOTES = (
    "saliency_student_v2: tiny U-Net distilled from u2netp_mirror_v1 on luma tiled to RGB; "
    "same pre-processing as the mirror (320x320, divide by the image max, ImageNet mean/std)."
)
DESCRIPTION = (
    "Tiny U-Net saliency model trained by vmafx-saliency by distillation from the "
    "u2netp mirror (u2netp_mirror_v1) on luma tiled to RGB."
)

_SHARED_DATA = SHARED_DIR / "data"
DEFAULT_IMAGES = _SHARED_DATA / "msra-b" / "images"
DEFAULT_TEACHER = PROJECT_ROOT / "models" / "u2netp_mirror_v1.onnx"
PARITY_IMAGES = _SHARED_DATA / "images"
# Held-out benchmark data must never reach training or model selection.
_HELD_OUT = re.compile(r"pascal[-_ ]?s", re.IGNORECASE)


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmafx-saliency" / "teacher"


def _torch() -> Any:
    return require("torch", purpose="training")


def _pil_image() -> Any:
    return require("PIL.Image", purpose="training")


def _versions() -> dict[str, str]:
    versions = {"vmafx_saliency": __version__, "python": platform.python_version()}
    for name in ("torch", "onnx", "onnxruntime", "numpy", "PIL"):
        module = sys.modules.get(name)
        if module is None:
            with contextlib.suppress(ImportError):
                module = __import__(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "?"))
    return versions


def _dump_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


# --- data -------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One training image and where its label comes from."""

    path: Path
    sha256: str
    mask: Path | None = None  # ground truth (a --gt-root pair); None: the teacher labels it


def refuse_held_out(path: Path) -> None:
    """PASCAL-S is the held-out test set: refuse it anywhere in training."""
    for text in (str(path), str(path.resolve())):
        if _HELD_OUT.search(text):
            raise UsageError(
                f"{path} looks like PASCAL-S, the held-out test set: it is never used for "
                "training or model selection; pass other image folders"
            )


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The folder's images in path order (with ``recursive``, its sub-folders' too)."""
    refuse_held_out(folder)
    if not folder.is_dir():
        raise InputFileError(f"image folder {folder} not found: check the path")
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for path in files:
        refuse_held_out(path)
    if not files:
        raise InputFileError(f"image folder {folder} holds no .jpg/.png images")
    return files


def collect_samples(
    image_dirs: Sequence[Path],
    gt_root: Path | None = None,
    *,
    limit: int | None = None,
    recursive: bool = False,
) -> list[Sample]:
    """Every image of the folders (teacher-labelled) plus the ``gt_root`` pairs.

    Duplicates (same bytes) are kept once, so a folder given twice does not
    weigh double and cannot leak across the split.
    """
    samples: list[Sample] = []
    seen: set[str] = set()
    for folder in image_dirs:
        for path in list_images(folder, recursive=recursive)[:limit]:
            digest = sha256_file(path)
            if digest not in seen:
                seen.add(digest)
                samples.append(Sample(path, digest))
    if gt_root is not None:
        refuse_held_out(gt_root)
        masks = gt_root / "masks"
        for path in list_images(gt_root / "images")[:limit]:
            mask = next(
                (m for m in (masks / f"{path.stem}{s}" for s in (".png", ".jpg")) if m.is_file()),
                None,
            )
            if mask is None:
                raise InputFileError(f"{path}: no mask {masks / path.stem}.png in --gt-root")
            digest = sha256_file(path)
            if digest not in seen:
                seen.add(digest)
                samples.append(Sample(path, digest, mask))
    if not samples:
        raise InputFileError("no training images: pass --images DIR")
    return samples


def split_samples(
    samples: Sequence[Sample], *, val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """A fixed (seeded) train/validation split; order-independent (sorted by sha256)."""
    if not 0.0 < val_fraction < 1.0:
        raise UsageError(f"--val-fraction {val_fraction}: give a fraction in (0, 1)")
    ordered = sorted(samples, key=lambda s: s.sha256)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ordered))
    n_val = max(1, round(len(ordered) * val_fraction))
    if n_val >= len(ordered):
        raise UsageError(f"{len(ordered)} image(s) are too few for a validation split")
    val_idx = set(int(i) for i in order[:n_val])
    train = [s for i, s in enumerate(ordered) if i not in val_idx]
    val = [s for i, s in enumerate(ordered) if i in val_idx]
    return train, val


def image_list_sha256(samples: Iterable[Sample]) -> str:
    text = "".join(f"{s.sha256}  {s.path.name}\n" for s in samples)
    return sha256_bytes(text.encode("utf-8"))


def bt601_luma(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> full-range 8-bit BT.601 luma (what a full-range YUV file holds)."""
    arr = rgb.astype(np.float32)
    luma = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
    out: np.ndarray = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return out


def load_rgb(path: Path) -> np.ndarray:
    pil_image = _pil_image()
    try:
        with pil_image.open(path) as img:
            rgb: np.ndarray = np.asarray(img.convert("RGB"), dtype=np.uint8)
            return rgb
    except OSError as exc:
        raise InputFileError(f"cannot read image {path}: {exc}") from exc


def luma_plane(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB -> the extractor's luma plane at ``size``: full-range unit, resized.

    These are the first steps of :func:`extract.preprocess` (8-bit, full range);
    :func:`deployment_input` does the rest on a batch.
    """
    from vmafx_saliency.video.extract import luma_to_unit
    from vmafx_saliency.video.resize import resize_plane

    luma = bt601_luma(rgb)
    if luma.shape != size:  # same order as extract.preprocess: resize, then range
        luma = resize_plane(luma.astype(np.float32), size)
    plane = luma_to_unit(luma, bit_depth=8, limited=False)
    return np.ascontiguousarray(plane, dtype=np.float32)


def deployment_input(planes: Any, pre: Preprocessing = STUDENT_PREPROCESSING) -> Any:
    """Batch of unit luma planes (torch [N, H, W]) -> model input [N, 3, H, W].

    The torch form of the rest of :func:`extract.preprocess`: the sidecar's
    scaling (divide by each image's max; a black image stays black), then
    per-channel mean/std on the plane tiled to three channels.
    """
    torch = _torch()
    x = planes.to(torch.float32)
    if pre.scaling == "divide_by_max":
        peak = x.amax(dim=(1, 2), keepdim=True)
        x = torch.where(peak > 0, x / torch.where(peak > 0, peak, torch.ones_like(peak)), x)
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x[:, None, :, :] - mean) / std


# --- teacher labels ---------------------------------------------------------


@dataclass(frozen=True)
class Teacher:
    """The teacher's ONNX Runtime session and identity."""

    session: Any
    sha256: str
    source: str
    # Set for ``--teacher-input luma``: the teacher's sidecar pre-processing.
    luma_pre: Preprocessing | None = None

    def label(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 -> the raw d0 map at :data:`LABEL_SIZE`, float32 [H, W]."""
        from vmafx_saliency.supply.export import preprocess_upstream
        from vmafx_saliency.video.extract import preprocess

        if self.luma_pre is not None:
            x = preprocess(
                bt601_luma(rgb),
                bit_depth=8,
                color_range="full",
                pre=self.luma_pre,
                size=LABEL_SIZE,
            )
        else:
            x = preprocess_upstream(_pil_image().fromarray(rgb, "RGB"), LABEL_SIZE)
        name = self.session.get_inputs()[0].name
        out = np.asarray(self.session.run(None, {name: x})[0], dtype=np.float32)
        plane: np.ndarray = np.ascontiguousarray(out[0, 0])
        return plane


def load_teacher(
    teacher: str | Path, *, threads: int | None = None, teacher_input: str = "rgb"
) -> Teacher:
    """A teacher by file path (ad hoc: scanned and contract-checked) or registry id (pinned).

    ``teacher_input`` ``luma`` labels from luma tiled to RGB, with the teacher's
    sidecar pre-processing (beside the file, or the registry entry's).
    """
    from vmafx_saliency.supply import loader
    from vmafx_saliency.video.job import sidecar_beside

    if teacher_input not in TEACHER_INPUTS:
        raise UsageError(
            f"--teacher-input {teacher_input!r}: give one of {', '.join(TEACHER_INPUTS)}"
        )
    path = Path(teacher)
    loaded: loader.LoadedModel | None = None
    if path.is_file():
        sidecar_path = sidecar_beside(path)
        sidecar = Sidecar.load(sidecar_path) if sidecar_path is not None else None
        if teacher_input == "luma" and sidecar is None:
            raise UsageError(
                f"--teacher-input luma: {path} has no sidecar beside it "
                f"({path.stem}.sidecar.json) to say how it pre-processes luma"
            )
        loaded = loader.load_ad_hoc(path, sidecar=sidecar, threads=threads)
        source = str(path)
    elif isinstance(teacher, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", teacher) and not path.suffix:
        from vmafx_saliency.supply.registry import Registry

        entry = Registry.load().get(teacher)
        loaded = loader.load_entry(entry, threads=threads)
        source = f"registry:{teacher}"
    if loaded is not None:
        pre = None
        if teacher_input == "luma":
            if loaded.sidecar is None:  # load_entry always reads one; keep mypy honest
                raise UsageError(f"teacher {teacher}: no sidecar")
            pre = loaded.sidecar.preprocessing
        return Teacher(loaded.session, loaded.sha256, source, luma_pre=pre)
    raise InputFileError(
        f"teacher {teacher} is neither a file nor a registry id: pass --teacher with the "
        f"mirror's ONNX or its id, or export it where train looks by default "
        f"(vmafx-saliency export --checkpoint u2netp.pth --output {DEFAULT_TEACHER})"
    )


def label_to_png(label: np.ndarray) -> bytes:
    pil_image = _pil_image()
    arr = np.rint(np.clip(label, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    pil_image.fromarray(arr, "L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def png_to_label(path: Path) -> np.ndarray:
    pil_image = _pil_image()
    with pil_image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


@dataclass(frozen=True)
class LabelStats:
    cache_dir: Path
    computed: int
    reused: int
    seconds: float


def label_cache_dir(cache_root: Path, teacher_sha256: str, teacher_input: str = "rgb") -> Path:
    suffix = "" if teacher_input == "rgb" else f"-{teacher_input}"
    return cache_root / f"{teacher_sha256[:16]}{suffix}"


def shipped_label_cache(teacher_input: str = "rgb") -> Path:
    """The label cache of the teacher the committed student was trained on.

    The teacher's sha256 comes from the committed training record
    (``models/saliency_student_v2.training.json``), so benchmarks that read
    cached labels find the ones its training run filled.
    """
    from vmafx_saliency.supply.registry import committed_registry_path

    record = committed_registry_path().parent / f"{MODEL_ID}.training.json"
    sha256 = json.loads(record.read_text(encoding="utf-8"))["teacher"]["sha256"]
    return label_cache_dir(default_cache_root(), str(sha256), teacher_input)


def label_protocol(teacher_input: str) -> dict[str, object]:
    return dict(LUMA_LABEL_PROTOCOL if teacher_input == "luma" else LABEL_PROTOCOL)


def time_left(done: int, total: int, seconds: float) -> str:
    """``", about N min left"`` at the pace of the first ``done`` of ``total`` items.

    Empty before the first item and after the last: a run of an hour or more
    (labelling, then training) should say when it will end.
    """
    if done <= 0 or done >= total:
        return ""
    left = seconds / done * (total - done)
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


def ensure_labels(
    samples: Sequence[Sample],
    teacher: Teacher | Callable[[], Teacher],
    cache_root: Path,
    *,
    teacher_sha256: str,
    teacher_input: str = "rgb",
    progress: TextIO | None = None,
) -> LabelStats:
    """Label every teacher-labelled sample not yet in the cache; update the provenance.

    ``teacher`` may be a factory, so a fully cached run never builds a session.
    Labels are keyed by the image's sha256, so renamed or re-listed images are
    not labelled twice.
    """
    cache_dir = label_cache_dir(cache_root, teacher_sha256, teacher_input)
    cache_dir.mkdir(parents=True, exist_ok=True)
    provenance_path = cache_dir / "provenance.json"
    images: dict[str, str] = {}
    if provenance_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            old = json.loads(provenance_path.read_text(encoding="utf-8"))
            if old.get("teacher_sha256") == teacher_sha256:
                images = {str(k): str(v) for k, v in old.get("images", {}).items()}
    todo = [s for s in samples if s.mask is None and not (cache_dir / f"{s.sha256}.png").is_file()]
    reused = sum(1 for s in samples if s.mask is None) - len(todo)
    start = time.perf_counter()
    session: Teacher | None = None
    for index, sample in enumerate(todo):
        if session is None:
            session = teacher if isinstance(teacher, Teacher) else teacher()
            if session.sha256 != teacher_sha256:
                raise ExportError(
                    f"teacher {session.source} has sha256 {session.sha256}, expected "
                    f"{teacher_sha256}: the cache key would lie"
                )
            if (session.luma_pre is not None) != (teacher_input == "luma"):
                raise ExportError(
                    f"teacher {session.source} was loaded for another input than "
                    f"{teacher_input!r}: the cache key would lie"
                )
        label = session.label(load_rgb(sample.path))
        atomic_write_bytes(cache_dir / f"{sample.sha256}.png", label_to_png(label))
        images[sample.sha256] = sample.path.name
        if progress is not None and (index + 1) % 50 == 0:
            elapsed = time.perf_counter() - start
            print(
                f"teacher: labelled {index + 1}/{len(todo)} "
                f"({elapsed:.0f} s{time_left(index + 1, len(todo), elapsed)})",
                file=progress,
            )
    for sample in samples:
        if sample.mask is None:
            images.setdefault(sample.sha256, sample.path.name)
    provenance = {
        "schema": PROVENANCE_SCHEMA,
        "teacher_sha256": teacher_sha256,
        "protocol": label_protocol(teacher_input),
        "images": dict(sorted(images.items())),
        "versions": _versions(),
    }
    atomic_write_bytes(provenance_path, _dump_json(provenance))
    return LabelStats(cache_dir, len(todo), reused, time.perf_counter() - start)


# --- the data set in memory -------------------------------------------------


@dataclass(frozen=True)
class Arrays:
    """Luma planes (deployment steps up to the resize) and labels, both [N, H, W] float32."""

    luma: np.ndarray
    label: np.ndarray
    names: tuple[str, ...]


def load_arrays(samples: Sequence[Sample], cache_dir: Path, size: tuple[int, int]) -> Arrays:
    pil_image = _pil_image()
    luma = np.empty((len(samples), *size), dtype=np.float32)
    label = np.empty((len(samples), *size), dtype=np.float32)
    for i, sample in enumerate(samples):
        luma[i] = luma_plane(load_rgb(sample.path), size)
        if sample.mask is None:
            target = png_to_label(cache_dir / f"{sample.sha256}.png")
        else:
            with pil_image.open(sample.mask) as img:
                target = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        if target.shape != size:
            from vmafx_saliency.video.resize import resize_plane

            target = resize_plane(target, size)
        label[i] = target
    return Arrays(luma, label, tuple(s.path.name for s in samples))


# --- training ---------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; everything that changes the result is here."""

    epochs: int = 70
    batch_size: int = 16
    lr: float = 3e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    crop: int = 224
    scale_min: float = 0.6
    iou_weight: float = 1.0
    brightness: float = 0.2
    contrast: float = 0.3
    val_fraction: float = 0.1
    seed: int = 0
    # The seed of the initial weights, batch order and augmentation; None: ``seed``.
    # Another run seed keeps ``seed``'s split (and the views made from it), so two
    # runs differ only by their random draws: the recipe's run-to-run spread.
    run_seed: int | None = None
    widths: tuple[int, ...] = (16, 32, 32, 32, 40, 40)
    stem_convs: int = 3  # nets.student.DEFAULT_STEM_CONVS
    separable: bool = False  # depthwise-separable blocks after the stem
    size: tuple[int, int] = (320, 320)
    steps_per_epoch: int | None = None  # None: one pass over the training split
    l1_weight: float = 0.0  # + l1_weight * mean |sigmoid(logits) - target|
    init_from: str | None = None  # a train checkpoint (widened if narrower) or student ONNX
    teacher_input: str = "rgb"  # the teacher labels RGB (its best setting) or luma tiled
    loss: str = "bce_iou"  # or "structure" (F3Net) or "fmeasure" (BCE + soft F-measure)
    # NHWC tensors: oneDNN's CPU convolutions are faster on them (the student card's
    # note on threads); the numbers differ from NCHW in the last bits, so it is part
    # of the configuration (runs before attempt 12 trained NCHW).
    channels_last: bool = True
    # bf16 runs the forward pass under torch.autocast (weights, optimiser state,
    # loss and validation stay float32): on a CPU with AMX a step costs about half
    # (benchmarks/train_step.py); fp32, the default, reproduces earlier runs.
    precision: str = "fp32"
    # > 0: also keep an exponential moving average of the weights and BatchNorm
    # statistics (torch.optim.swa_utils, updated after every step); each epoch
    # validates both, and the selection may pick either. 0, the default, is off
    # and reproduces earlier runs.
    ema_decay: float = 0.0
    # > 0: deep supervision. Each coarser decoder output gets a training-only 1x1
    # head (nets.student.SideHeads) and the loss adds side_weight x the same loss on
    # each side map, at its own size; selection and export use the main map only.
    # 0, the default, is off and reproduces earlier runs.
    side_weight: float = 0.0
    # True: every BatchNorm stays in eval mode with its statistics, gamma and beta
    # fixed, so only the convolutions train. For fine-tuning from --init-from: train
    # mode would renormalise with batch statistics and let Adam move the small gammas
    # that load_folded gives low-variance channels by about the rate at every step.
    freeze_batchnorm: bool = False


LOSSES = ("bce_iou", "structure", "fmeasure")
F_BETA2 = 0.3  # the F-measure's beta^2 in --loss fmeasure, the benchmark's (Achanta et al. 2009)
# What each --loss computes, in the training record's words.
LOSS_DESCRIPTIONS = {
    "bce_iou": "BCE(logits, teacher map) + iou_weight * soft IoU",
    "structure": "F3Net structure loss: (1 + 5 |avgpool31(t) - t|)-weighted BCE + "
    "iou_weight * weighted IoU",
    "fmeasure": "BCE(logits, teacher map) + iou_weight * (1 - soft F-measure, beta^2 0.3): "
    "FLoss (Zhao et al., ICCV 2019)",
}
PRECISIONS = ("fp32", "bf16")


def _check_ema(cfg: TrainConfig) -> None:
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise UsageError(
            f"--ema-decay {cfg.ema_decay}: give a decay in [0, 1) (0 turns the average off; "
            "0.999 averages over about the last 1,000 steps)"
        )


def _diverged(cfg: TrainConfig, what: str) -> TrainingDivergedError:
    # A resume keeps the run's --lr, so the way on is a new run.
    return TrainingDivergedError(
        f"{what}: the training diverged at --lr {cfg.lr:g}; run again with a lower --lr "
        "and --force (or another --out)"
    )


def _check_loss_weights(cfg: TrainConfig) -> None:
    """Every weight of a loss term is finite and >= 0 (0 leaves the term out)."""
    for flag, value, hint in (
        (
            "--side-weight",
            cfg.side_weight,
            "for each side map's loss (0 turns deep supervision off)",
        ),
        ("--iou-weight", cfg.iou_weight, "(0 leaves that term out)"),
        ("--l1-weight", cfg.l1_weight, "(0 leaves that term out)"),
    ):
        if not (math.isfinite(value) and value >= 0.0):
            raise UsageError(f"{flag} {value}: give a weight >= 0 {hint}")


def _check_schedule(cfg: TrainConfig, *, limit: int | None, threads: int | None) -> None:
    """Refuse, before any labelling, counts and a rate that no run can use.

    (Found later, they would cost the first run on a fresh machine its labelling,
    and a zero ``steps_per_epoch`` would be read as "one pass".)
    """
    counts = {
        "--epochs": cfg.epochs,
        "--batch-size": cfg.batch_size,
        "--crop": cfg.crop,
        "--steps-per-epoch": cfg.steps_per_epoch,
        "--limit": limit,
        "--threads": threads,
    }
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: give a whole number of 1 or more")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0.0):
        raise UsageError(
            f"--lr {cfg.lr}: give a learning rate > 0 (section 2 of the student's card: "
            "3e-3 from scratch, 1e-3 and 5e-4 for the later stages)"
        )


def _check_freeze_batchnorm(cfg: TrainConfig) -> None:
    if cfg.freeze_batchnorm and not cfg.init_from:
        raise UsageError(
            "--freeze-batchnorm keeps the BatchNorms of the net it starts from, and a fresh "
            "net's are identities: give --init-from (a run's checkpoint.pt or a student ONNX)"
        )


def freeze_batchnorm(net: Any) -> None:
    """Put every BatchNorm of ``net`` in eval mode with its gamma and beta untrainable.

    Call after each ``net.train()``, which would put them back in train mode.
    """
    torch = _torch()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.requires_grad_(False)


def _autocast_bf16(cfg: TrainConfig) -> bool:
    """Whether the forward pass runs under bf16 autocast; refuses an unknown precision."""
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"--precision {cfg.precision!r}: give one of {', '.join(PRECISIONS)}")
    return cfg.precision == "bf16"


def native_bf16(torch: Any) -> bool | None:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); None if torch can't tell.

    Without either, autocast still gives bf16's numerics but emulates them: a
    224-crop step took 7.35x the float32 one on a Zen 3 with AVX2 only
    (``benchmarks/train_step.py --threads 2``, 2026-12-04).
    """
    # torch.cpu has no public probe; these two private ones are what its own CPU tests use.
    unknown = False
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(torch.cpu, name, None)
        if probe is None:
            unknown = True
        elif probe():
            return True
    return None if unknown else False


def warn_if_bf16_emulated(torch: Any, cfg: TrainConfig) -> None:
    """Log a warning when ``--precision bf16`` would run emulated on this CPU.

    A warning, not a refusal: emulated bf16 is slow but gives the same numbers,
    which is what a user re-running a bf16 recipe (attempt 15B's) wants.
    """
    if _autocast_bf16(cfg) and native_bf16(torch) is False:
        log.warning(
            "--precision bf16: this CPU has no native bf16 (neither AVX512-BF16 nor AMX), so "
            "autocast emulates it and each step takes several times the float32 one (7.35x "
            "on a Zen 3 with AVX2 only); train with --precision fp32 on this machine unless "
            "you need the bf16 recipe's numbers (benchmarks/train_step.py times both)"
        )


def optimizer_step(
    torch: Any,
    net: Any,
    optimizer: Any,
    x: Any,
    y: Any,
    cfg: TrainConfig,
    *,
    bf16: bool,
    sides: Any = None,
) -> float:
    """One training step on a batch: forward (under bf16 autocast if asked), loss, update.

    The loss is taken on float32 logits either way; with ``sides`` (the
    :class:`~vmafx_saliency.nets.student.SideHeads` of ``cfg.side_weight``) it
    adds ``cfg.side_weight`` x the same loss on each side map. Returns the
    batch's loss. ``benchmarks/train_step.py`` times exactly this step.
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if sides is None:
            logits, side_logits = net.forward_logits(x), []
        else:
            logits, coarse = net.forward_decoder(x)
            side_logits = sides(coarse)
    loss = _loss(torch, logits.float(), y, cfg.iou_weight, cfg.l1_weight, cfg.loss)
    if side_logits:
        from vmafx_saliency.nets.student import side_targets

        for side, target in zip(side_logits, side_targets(y, side_logits), strict=True):
            side_loss = _loss(torch, side.float(), target, cfg.iou_weight, cfg.l1_weight, cfg.loss)
            loss = loss + cfg.side_weight * side_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_mae: float
    val_max_f: float
    lr: float
    seconds: float
    extra_val_mae: float | None = None  # the train-only held-out set (e.g. video clips)
    extra_val_max_f: float | None = None
    # The same figures for the moving average of the weights (--ema-decay), if kept.
    ema_val_mae: float | None = None
    ema_val_max_f: float | None = None
    ema_extra_val_mae: float | None = None
    ema_extra_val_max_f: float | None = None


def run_seed(cfg: TrainConfig) -> int:
    """The seed of a run's random draws (weights, batches, augmentation)."""
    return cfg.seed if cfg.run_seed is None else cfg.run_seed


def _seed_everything(torch: Any, seed: int) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def _augment_batch(
    torch: Any, arrays: Arrays, idx: np.ndarray, rng: np.random.Generator, cfg: TrainConfig
) -> tuple[Any, Any]:
    """Random scaled crop + flips + brightness/contrast on the luma; labels follow geometry."""
    functional = require("torch.nn.functional", purpose="training")
    height, width = arrays.luma.shape[1:]
    crop = cfg.crop
    xs, ys = [], []
    for i in idx:
        scale = math.sqrt(rng.uniform(cfg.scale_min, 1.0))
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch = min(height, max(8, round(height * scale / math.sqrt(aspect))))
        cw = min(width, max(8, round(width * scale * math.sqrt(aspect))))
        top = int(rng.integers(0, height - ch + 1))
        left = int(rng.integers(0, width - cw + 1))
        pair = np.stack(
            [
                arrays.luma[i, top : top + ch, left : left + cw],
                arrays.label[i, top : top + ch, left : left + cw],
            ]
        )
        if rng.random() < 0.5:
            pair = pair[:, :, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(pair))[None]
        t = functional.interpolate(
            t, size=(crop, crop), mode="bilinear", align_corners=False, antialias=True
        )[0]
        luma = t[0]
        # Brightness / contrast as a camera or encoder would shift the luma.
        gain = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        offset = rng.uniform(-cfg.brightness, cfg.brightness)
        mid = float(luma.mean())
        luma = ((luma - mid) * gain + mid + offset).clamp(0.0, 1.0)
        xs.append(luma)
        ys.append(t[1].clamp(0.0, 1.0))
    return deployment_input(torch.stack(xs)), torch.stack(ys)[:, None]


def _loss(
    torch: Any,
    logits: Any,
    target: Any,
    iou_weight: float,
    l1_weight: float = 0.0,
    kind: str = "bce_iou",
) -> Any:
    """BCE + ``iou_weight`` x soft IoU against the soft teacher map (+ optional L1).

    ``kind`` ``fmeasure`` puts ``iou_weight`` x (1 - soft F-measure) in the IoU
    term's place: with TP = sum(p t), FP = sum(p (1 - t)) and FN = sum((1 - p) t),
    F = (1 + b2) TP / ((1 + b2) TP + b2 FN + FP) = (1 + b2) sum(p t) /
    (b2 sum(t) + sum(p)), b2 = 0.3 as in the benchmark's max F: the "FLoss" of
    Zhao et al., "Optimizing the F-measure for threshold-free salient object
    detection", ICCV 2019, which aims the training at max F's precision bias.

    ``kind`` ``structure`` weights both terms per pixel by
    ``1 + 5 |avgpool31(target) - target|``, which is large near the teacher's
    object boundaries and in small structures: the "structure loss" of F3Net
    (Wei, Wang and Huang, AAAI 2020, ``structure_loss`` in their code), which
    aims the training at the regions S-measure and F-measure punish.
    """
    functional = require("torch.nn.functional", purpose="training")
    prob = torch.sigmoid(logits)
    if kind == "structure":
        weight = 1.0 + 5.0 * torch.abs(_box_mean(target, 31) - target)
        bce_map = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        bce = ((weight * bce_map).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))).mean()
        inter = (prob * target * weight).sum(dim=(1, 2, 3))
        union = ((prob + target) * weight).sum(dim=(1, 2, 3))
        iou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    elif kind == "bce_iou":
        bce = functional.binary_cross_entropy_with_logits(logits, target)
        inter = (prob * target).sum(dim=(1, 2, 3))
        union = (prob + target - prob * target).sum(dim=(1, 2, 3))
        iou = 1.0 - (inter + 1.0) / (union + 1.0)
    elif kind == "fmeasure":
        bce = functional.binary_cross_entropy_with_logits(logits, target)
        tp = (prob * target).sum(dim=(1, 2, 3))
        # +1 on both sides, as for the IoU: an empty map against an empty target scores 1.
        f = ((1.0 + F_BETA2) * tp + 1.0) / (
            F_BETA2 * target.sum(dim=(1, 2, 3)) + prob.sum(dim=(1, 2, 3)) + 1.0
        )
        iou = 1.0 - f
    else:
        raise UsageError(f"--loss {kind!r}: give one of {', '.join(LOSSES)}")
    loss = bce + iou_weight * iou.mean()
    if l1_weight:
        loss = loss + l1_weight * (prob - target).abs().mean()
    return loss


def _box_mean(x: Any, size: int) -> Any:
    """``avg_pool2d(x, size, stride=1, padding=size // 2)`` (zeros outside, counted)
    from running sums along each axis: two cumsums instead of size^2 adds per pixel."""
    functional = require("torch.nn.functional", purpose="training")
    half = size // 2
    out = x
    for dim in (2, 3):
        pad = [0, 0, 0, 0]
        pad[2 * (3 - dim)] = half + 1  # F.pad lists the last dimension first
        pad[2 * (3 - dim) + 1] = half
        sums = functional.pad(out, pad).cumsum(dim=dim)
        length = out.shape[dim]
        out = sums.narrow(dim, size, length) - sums.narrow(dim, 0, length)
    return out / float(size * size)


def max_f_measure(pred: np.ndarray, gt: np.ndarray, beta2: float = 0.3) -> float:
    """Max over 256 thresholds of the F-measure (beta^2 = 0.3) of one map vs a binary mask."""
    p = np.rint(np.clip(pred, 0, 1) * 255).astype(np.int64).ravel()
    g = gt.ravel().astype(bool)
    pos = np.bincount(p[g], minlength=256)[::-1].cumsum()  # true positives at threshold >= t
    alln = np.bincount(p, minlength=256)[::-1].cumsum()
    n_gt = int(g.sum())
    if n_gt == 0:
        return 1.0 if alln[-1] == 0 else 0.0
    precision = pos / np.maximum(alln, 1)
    recall = pos / n_gt
    f = (1 + beta2) * precision * recall / np.maximum(beta2 * precision + recall, 1e-12)
    return float(f.max())


def evaluate_val(torch: Any, net: Any, arrays: Arrays, batch: int = 8) -> tuple[float, float]:
    """Mean MAE vs the teacher map and mean max-F vs the teacher binarised at 0.5.

    A net whose maps are not finite (a diverged run) scores ``(nan, nan)``.
    """
    net.eval()
    maes, fs = [], []
    with torch.no_grad():
        for start in range(0, len(arrays.luma), batch):
            x = deployment_input(torch.from_numpy(arrays.luma[start : start + batch]))
            pred = net(x)[:, 0].numpy()
            if not np.isfinite(pred).all():
                return math.nan, math.nan
            for p, t in zip(pred, arrays.label[start : start + batch], strict=True):
                maes.append(float(np.abs(p - t).mean()))
                fs.append(max_f_measure(p, t > 0.5))
    return float(np.mean(maes)), float(np.mean(fs))


def build_student(cfg: TrainConfig) -> Any:
    from vmafx_saliency.nets.student import StudentUNet

    return StudentUNet(cfg.widths, stem_convs=cfg.stem_convs, separable=cfg.separable)


# Training planes whose statistics set the BatchNorms of a net started from an ONNX.
ONNX_INIT_PLANES = 64


def _onnx_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputFileError(f"--init-from {path}: no such file") from exc
    except OSError as exc:
        raise InputFileError(f"--init-from {path}: cannot read it: {exc}") from exc


def folded_convs(path: Path, data: bytes | None = None) -> list[tuple[Any, Any]]:
    """An exported student's Conv weights and biases, in graph order, as torch tensors.

    ``data``: the file's bytes, if the caller has read them already. Only the
    Conv initialisers are read here; :func:`init_from_onnx` runs the graph,
    after the scanner, to check the net loaded from them.
    """
    torch = _torch()
    onnx = require("onnx", purpose="training")
    numpy_helper = require("onnx.numpy_helper", purpose="training")
    decode_error = require("google.protobuf.message", purpose="training").DecodeError
    try:
        model = onnx.load_from_string(data if data is not None else _onnx_bytes(path))
    except decode_error as exc:
        raise InputFileError(f"--init-from {path}: cannot read it as ONNX: {exc}") from exc
    weights = {i.name: i for i in model.graph.initializer}
    # The exporter shares equal initialisers (e.g. the zero biases of an untrained net)
    # through Identity nodes: follow those to the stored tensor.
    aliases = {
        node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"
    }

    def stored(name: str) -> str:
        seen = set()
        while name not in weights and name in aliases and name not in seen:
            seen.add(name)
            name = aliases[name]
        return name

    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        names = [stored(n) for n in node.input[1:] if n]
        if not names or any(n not in weights for n in names):
            raise InputFileError(
                f"--init-from {path}: Conv {node.name or '?'} takes its weights from another "
                "node, not from the file's initialisers: give a student exported by `train`"
            )
        tensors = [torch.from_numpy(numpy_helper.to_array(weights[n]).copy()) for n in names]
        convs.append((tensors[0], tensors[1] if len(tensors) > 1 else None))
    if not convs:
        raise InputFileError(
            f"--init-from {path}: holds no Conv node: give a student exported by `train` "
            "(e.g. models/saliency_student_v2.onnx)"
        )
    return convs


def _not_this_student(cfg: TrainConfig, path: Path, exc: ValueError) -> UsageError:
    return UsageError(
        f"--init-from {path}: {exc}: it is not a student of --widths "
        f"{','.join(map(str, cfg.widths))}, --stem-convs {cfg.stem_convs}"
        f"{', --separable' if cfg.separable else ''}; give the options it was trained with"
    )


def check_checkpoint_architecture(cfg: TrainConfig, path: Path, saved: dict[str, Any]) -> None:
    """Refuse a ``--init-from`` checkpoint whose net ``widen_from`` cannot carry over.

    Widening takes a checkpoint of narrower widths, but the depth, the stem's
    convolutions and the block kind must be ``cfg``'s: a stem of other depth would
    leave layers at their random start (or miss some) without a word.
    """
    # Checkpoints from before --stem-convs and --separable had one and plain blocks.
    old_stem = int(saved.get("stem_convs", 1))
    old_separable = bool(saved.get("separable", False))
    old_depth = len(saved.get("widths") or ())
    if (old_stem, old_separable, old_depth) != (cfg.stem_convs, cfg.separable, len(cfg.widths)):
        raise UsageError(
            f"--init-from {path}: a checkpoint of a net with {old_depth} widths, "
            f"--stem-convs {old_stem}{', --separable' if old_separable else ''}; this run "
            f"builds {len(cfg.widths)} widths, --stem-convs {cfg.stem_convs}"
            f"{', --separable' if cfg.separable else ''}: give the checkpoint's --stem-convs "
            "and block kind (and as many widths, each at least its own)"
        )
    old_widths = [int(w) for w in saved.get("widths") or ()]
    narrower = [i for i, (o, n) in enumerate(zip(old_widths, cfg.widths, strict=True)) if n < o]
    if narrower:
        raise UsageError(
            f"--init-from {path}: a checkpoint of --widths {','.join(map(str, old_widths))}; "
            f"this run's --widths {','.join(map(str, cfg.widths))} is narrower at stage "
            f"{narrower[0]}: a net can be widened from a checkpoint, never narrowed; give "
            "widths each at least the checkpoint's"
        )


def _unreadable_reason(exc: BaseException) -> str:
    """Why torch could not read a .pt, in our words.

    torch's own text advises ``weights_only=False`` (running the file's code),
    which is the one thing not to do with a file from elsewhere, so only the
    name of a refused global is kept from it.
    """
    if isinstance(exc, EOFError):
        return "empty or cut short"
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            return f"it would call {found.group(1)} when read"
        return "not a PyTorch pickle"
    if isinstance(exc, RuntimeError):
        return "truncated, or not a PyTorch zip file"
    return "not a PyTorch file"


def load_checkpoint(path: Path, *, flag: str) -> dict[str, Any]:
    """A ``checkpoint.pt`` that ``train`` wrote, read without running code from it.

    A .pt file is a pickle, and unpickling one runs whatever callables it names;
    ours hold only tensors, numbers, strings and containers, so ``weights_only``
    loading reads them all and refuses anything else (an ``--init-from`` may be
    a file from elsewhere). ``flag`` names the option that gave the path.
    """
    # The hint names what the user can do from the option that gave the path.
    if flag.startswith("--resume"):
        hint = "start afresh without --resume, or with another --out"
    else:
        hint = "give a run's checkpoint.pt or a student ONNX"
    torch = _torch()  # outside the try: a missing torch is its own, named error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        # Unreadable is not unparseable: the checkpoint may be fine.
        raise InputFileError(
            f"{flag} {path}: cannot be read ({exc.strerror or exc}): check its permissions"
        ) from exc
    except Exception as exc:
        # Any file may be given, and every way it fails to parse (a text file gives
        # KeyError, a zip of other things RuntimeError) is one answer: not ours.
        raise InputFileError(
            f"{flag} {path}: not a checkpoint that `vmafx-saliency train` wrote "
            f"({_unreadable_reason(exc)}); {hint}"
        ) from exc
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise InputFileError(
            f"{flag} {path}: a PyTorch file without a training config, not a checkpoint that "
            f"`vmafx-saliency train` wrote; {hint}"
        )
    return state


def _init_onnx(cfg: TrainConfig) -> Path | None:
    """The student ONNX that ``--init-from`` names; None for a checkpoint or no init."""
    if cfg.init_from and Path(cfg.init_from).suffix.lower() == ".onnx":
        return Path(cfg.init_from)
    return None


def check_init_from(cfg: TrainConfig) -> None:
    """Refuse, before any labelling, an ``--init-from`` that cannot start this net.

    A checkpoint must exist and hold a net of ``cfg``'s depth, stem and block
    kind; an ONNX must hold the convolutions of ``cfg``'s net.
    """
    if not cfg.init_from:
        return
    path = _init_onnx(cfg)
    if path is None:
        checkpoint = Path(cfg.init_from)
        if not checkpoint.is_file():
            raise InputFileError(
                f"--init-from {cfg.init_from}: no such file: give a run's checkpoint.pt or a "
                "student ONNX"
            )
        state = load_checkpoint(checkpoint, flag="--init-from")
        check_checkpoint_architecture(cfg, checkpoint, dict(state["config"]))
        return
    from vmafx_saliency.nets.student import match_convs

    convs = folded_convs(path)
    try:
        match_convs(build_student(cfg), [tuple(weight.shape) for weight, _ in convs])
    except ValueError as exc:
        raise _not_this_student(cfg, path, exc) from exc


def init_from_onnx(cfg: TrainConfig, net: Any, path: Path, planes: np.ndarray) -> None:
    """Start ``net`` from an exported student (e.g. the shipped one) to fine-tune it.

    ``planes`` are training luma planes: their statistics set the BatchNorms
    (:func:`~vmafx_saliency.nets.student.load_folded`). The loaded net must then
    compute the file's own map in ONNX Runtime on two of them (the scanner
    passes the graph first): convolutions of the same shapes in another order,
    or with other strides or padding, would otherwise load without a word.
    """
    from vmafx_saliency.nets.student import load_folded
    from vmafx_saliency.supply.export import ParityInput, parity_check
    from vmafx_saliency.supply.scan import scan_bytes

    torch = _torch()
    data = _onnx_bytes(path)
    report = scan_bytes(data, path=str(path))
    if not report.allowed:
        raise InputFileError(
            f"--init-from {path}: the scanner refuses it ({report.violations[0].detail}): "
            f"run `vmafx-saliency scan {path}` for the report"
        )
    sample = deployment_input(torch.from_numpy(np.ascontiguousarray(planes[:ONNX_INIT_PLANES])))
    try:
        load_folded(net, folded_convs(path, data), sample)
    except ValueError as exc:
        raise _not_this_student(cfg, path, exc) from exc
    planes_in = [
        ParityInput(f"training plane {i}", x[None].numpy()) for i, x in enumerate(sample[:2])
    ]
    # The export's own comparison, with no tolerance, so the refusal below can say how far.
    figures = parity_check(net, data, planes_in, math.inf)
    diff = max(figure.max_abs_diff for figure in figures)
    if diff > PARITY_TOLERANCE:
        raise UsageError(
            f"--init-from {path}: the net loaded from its convolutions differs from "
            f"the file's own map by up to {diff:.2e} (tolerance {PARITY_TOLERANCE}): "
            "its graph is not a StudentUNet as `train` exports it"
        )


def build_side_heads(cfg: TrainConfig, net: Any) -> Any:
    """The training-only side heads of ``cfg.side_weight`` for ``net``; None when it is 0."""
    if not cfg.side_weight:
        return None
    from vmafx_saliency.nets.student import SideHeads

    return SideHeads(net)


def trained_parameters(net: Any, sides: Any) -> list[Any]:
    """What the optimiser updates: the net's trainable parameters, then any side heads'."""
    params = [*net.parameters(), *(sides.parameters() if sides is not None else ())]
    return [p for p in params if p.requires_grad]


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    # Cosine from lr to min_lr over all steps (a short linear warm-up first).
    warm = min(100, total // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainOutcome:
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_state: dict[str, Any]
    seconds: float
    interrupted: bool = False
    best_weights: str = "raw"  # "raw": the optimiser's weights; "ema": their moving average


def train_student(
    cfg: TrainConfig,
    train: Arrays,
    val: Arrays,
    *,
    checkpoint: Path,
    resume: bool = False,
    stop_after: int | None = None,
    progress: TextIO | None = None,
    extra_val: Arrays | None = None,
    data_key: str | None = None,
) -> TrainOutcome:
    """Train, checkpointing after every epoch; ``stop_after`` simulates an interruption.

    ``data_key`` names the data (images, split, teacher) in the checkpoint, so
    that a resume on other data can be refused (:func:`check_resume_data`).

    Every random draw comes from generators derived from (seed, epoch), so a run
    resumed from the checkpoint of epoch k ends with the same weights as one
    that was never interrupted.
    """
    torch = _torch()
    bf16 = _autocast_bf16(cfg)
    _check_ema(cfg)
    _check_loss_weights(cfg)
    _check_schedule(cfg, limit=None, threads=None)
    _check_freeze_batchnorm(cfg)
    _seed_everything(torch, run_seed(cfg))
    net = build_student(cfg)
    if cfg.init_from and not (resume and checkpoint.is_file()):
        onnx_init = _init_onnx(cfg)
        if onnx_init is not None:
            init_from_onnx(cfg, net, onnx_init, train.luma)
        else:
            from vmafx_saliency.nets.student import widen_from

            init = load_checkpoint(Path(cfg.init_from), flag="--init-from")
            check_checkpoint_architecture(cfg, Path(cfg.init_from), dict(init["config"]))
            widen_from(net, init["best_state"], tuple(init["config"]["widths"]))
    # Built after the net (and any --init-from): fresh, seeded heads every run.
    sides = build_side_heads(cfg, net)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if cfg.freeze_batchnorm:
        freeze_batchnorm(net)
    optimizer = torch.optim.Adam(
        trained_parameters(net, sides), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    average = None
    if cfg.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        average = AveragedModel(
            net,
            multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),  # type: ignore[no-untyped-call]
            use_buffers=True,
        )
    n = len(train.luma)
    steps = cfg.steps_per_epoch or max(1, n // cfg.batch_size)
    total = steps * cfg.epochs
    history: list[EpochRecord] = []
    best_state: dict[str, Any] = {}
    best_epoch, best_key, best_weights = 0, (-1.0, 0.0), "raw"
    first_epoch = 1
    elapsed = 0.0
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, flag="--resume from")
        saved = dict(state["config"])
        saved.setdefault("precision", "fp32")  # checkpoints from before --precision trained fp32
        saved.setdefault("ema_decay", 0.0)  # and from before --ema-decay kept no average
        saved.setdefault("side_weight", 0.0)  # and from before --side-weight had no side heads
        saved.setdefault("run_seed", None)  # and from before --run-seed drew from --seed
        saved.setdefault("freeze_batchnorm", False)  # and before --freeze-batchnorm trained BN
        if saved != asdict(cfg):
            raise UsageError(
                f"{checkpoint} was written with other hyper-parameters: resume with the same "
                "options, or start afresh without --resume (or with another --out)"
            )
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochRecord(**h) for h in state["history"]]
        best_state, best_epoch = state["best_state"], int(state["best_epoch"])
        best_key = (float(state["best_key"][0]), float(state["best_key"][1]))
        best_weights = str(state.get("best_weights", "raw"))
        if average is not None:
            average.load_state_dict(state["ema"])
        if sides is not None:
            sides.load_state_dict(state["sides"])
        first_epoch = int(state["epoch"]) + 1
        elapsed = float(state.get("seconds", 0.0))
        torch.set_rng_state(state["torch_rng"])
        if progress is not None:
            print(f"resumed from {checkpoint} after epoch {first_epoch - 1}", file=progress)
    for epoch in range(first_epoch, cfg.epochs + 1):
        start = time.perf_counter()
        net.train()
        if cfg.freeze_batchnorm:
            freeze_batchnorm(net)
        rng = np.random.default_rng([run_seed(cfg), epoch])
        order = np.concatenate(
            [rng.permutation(n) for _ in range(math.ceil(steps * cfg.batch_size / n))]
        )
        losses = []
        lr = cfg.lr
        for step in range(steps):
            lr = _lr_at(cfg, (epoch - 1) * steps + step, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x, y = _augment_batch(torch, train, idx, rng, cfg)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            losses.append(optimizer_step(torch, net, optimizer, x, y, cfg, bf16=bf16, sides=sides))
            if not math.isfinite(losses[-1]):
                # The weights are now NaN too: every later step and figure would be.
                raise _diverged(
                    cfg, f"the loss became {losses[-1]} at epoch {epoch}, step {step + 1}"
                )
            if average is not None:
                average.update_parameters(net)
        val_mae, val_f = evaluate_val(torch, net, val)
        if not math.isfinite(val_mae):
            # The last step's loss was taken before its update, which can be what
            # sent the weights out of range: the maps show it.
            raise _diverged(cfg, f"the validation maps became NaN or infinite in epoch {epoch}")
        extra = evaluate_val(torch, net, extra_val) if extra_val is not None else None
        ema = evaluate_val(torch, average.module, val) if average is not None else None
        ema_extra = (
            evaluate_val(torch, average.module, extra_val)
            if average is not None and extra_val is not None
            else None
        )
        seconds = time.perf_counter() - start
        elapsed += seconds
        record = EpochRecord(
            epoch, float(np.mean(losses)), round(val_mae, 6), round(val_f, 6), lr, round(seconds, 1)
        )
        if extra is not None:
            record = dataclasses.replace(
                record, extra_val_mae=round(extra[0], 6), extra_val_max_f=round(extra[1], 6)
            )
        if ema is not None:
            record = dataclasses.replace(
                record, ema_val_mae=round(ema[0], 6), ema_val_max_f=round(ema[1], 6)
            )
        if ema_extra is not None:
            record = dataclasses.replace(
                record,
                ema_extra_val_mae=round(ema_extra[0], 6),
                ema_extra_val_max_f=round(ema_extra[1], 6),
            )
        history.append(record)
        candidates = [("raw", (val_f, -val_mae), net)]
        if average is not None and ema is not None:
            candidates.append(("ema", (ema[1], -ema[0]), average.module))
        for weights, key, source in candidates:
            if key > best_key:
                best_key, best_epoch, best_weights = key, epoch, weights
                best_state = {k: v.detach().clone() for k, v in source.state_dict().items()}
        if progress is not None:
            print(
                f"epoch {epoch}/{cfg.epochs}: loss {record.train_loss:.4f}  val MAE {val_mae:.4f}  "
                f"val maxF {val_f:.4f}  lr {lr:.2e}  {seconds:.0f} s"
                + time_left(epoch, cfg.epochs, elapsed)
                + (f"  extra-val MAE {extra[0]:.4f} maxF {extra[1]:.4f}" if extra else "")
                + (f"  EMA val maxF {ema[1]:.4f}" if ema else "")
                + (f"  *best ({best_weights})" if best_epoch == epoch else ""),
                file=progress,
                flush=True,
            )
        state = {
            "config": asdict(cfg),
            "epoch": epoch,
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": [asdict(h) for h in history],
            "best_state": best_state,
            "best_epoch": best_epoch,
            "best_key": list(best_key),
            "best_weights": best_weights,
            "ema": average.state_dict() if average is not None else None,
            "sides": sides.state_dict() if sides is not None else None,
            "seconds": elapsed,
            "torch_rng": torch.get_rng_state(),
            "data": data_key,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(checkpoint, buffer.getvalue())
        if stop_after is not None and epoch >= stop_after and epoch < cfg.epochs:
            return TrainOutcome(
                tuple(history),
                best_epoch,
                best_state,
                elapsed,
                interrupted=True,
                best_weights=best_weights,
            )
    return TrainOutcome(tuple(history), best_epoch, best_state, elapsed, best_weights=best_weights)


# --- export -----------------------------------------------------------------


@dataclass(frozen=True)
class StudentExport:
    onnx_bytes: bytes
    sha256: str
    params: int
    macs_320: int
    op_counts: dict[str, int]
    parity: tuple[Any, ...]


def parity_inputs(images: Path | None = None) -> list[Any]:
    """Real images pre-processed the deployment way at :data:`PARITY_SIZES`."""
    from vmafx_saliency.supply.export import ParityInput, synthetic_image
    from vmafx_saliency.video.extract import preprocess

    torch_free = []
    folder = images if images is not None else PARITY_IMAGES
    files = list_images(folder) if folder.is_dir() else []
    for index, size in enumerate(PARITY_SIZES):
        if files:
            path = files[index % len(files)]
            rgb, name = load_rgb(path), path.name
        else:
            rgb, name = np.asarray(synthetic_image(size, seed=index)), f"synthetic(seed={index})"
        x = preprocess(
            bt601_luma(rgb), bit_depth=8, color_range="full", pre=STUDENT_PREPROCESSING, size=size
        )
        torch_free.append(ParityInput(name, x))
    return torch_free


def flush_subnormal_weights(model: Any) -> int:
    """Set the float32 initialisers' subnormal values to zero in place; return how many.

    Folding a BatchNorm whose gamma is tiny leaves weights below 1.2e-38, and
    arithmetic on subnormals is slow on x86: on the Intel Xeon of 2026-12-04
    the shipped student ran at 29.91 ms a frame in ONNX Runtime with its 3,056
    of them and 12.55 ms without, with the same map
    (benchmarks/subnormal_weights.py). Zero is within 1.2e-38 of each.
    """
    onnx = require("onnx", purpose="export")
    flushed = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = onnx.numpy_helper.to_array(tensor)
        subnormal = (values != 0) & (np.abs(values) < np.finfo(np.float32).tiny)
        if subnormal.any():
            flushed += int(subnormal.sum())
            cleaned = np.where(subnormal, np.float32(0.0), values).astype(np.float32)
            tensor.CopyFrom(onnx.numpy_helper.from_array(cleaned, tensor.name))
    return flushed


def _finalise(raw: bytes, *, teacher_sha256: str, training_sha256: str) -> bytes:
    onnx = require("onnx", purpose="export")
    model = onnx.load_from_string(raw)
    flush_subnormal_weights(model)
    model.producer_name = "vmafx-saliency"
    model.producer_version = __version__
    model.doc_string = f"{MODEL_ID}: {DESCRIPTION} {LICENSE_SPDX}"
    metadata = {
        "model_id": MODEL_ID,
        "source": "fork-trained",
        "license": LICENSE_SPDX,
        "teacher_sha256": teacher_sha256,
        "training_data_sha256": training_sha256,
        "description": DESCRIPTION,
    }
    # The exporter cannot infer the channel count through the final dynamic
    # Resize; the contract wants it spelled out: [1, 1, height, width].
    dims = model.graph.output[0].type.tensor_type.shape.dim
    for index, value in enumerate((1, 1, "height", "width")):
        dims[index].Clear()
        if isinstance(value, int):
            dims[index].dim_value = value
        else:
            dims[index].dim_param = value
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejects the exported graph: {exc}") from exc
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def student_onnx_bytes(net: Any, *, teacher_sha256: str = "", training_sha256: str = "") -> bytes:
    """The student's ONNX bytes (eval mode: BatchNorm folded), metadata set, checker run."""
    from vmafx_saliency.supply.export import export_onnx_bytes

    raw = export_onnx_bytes(net.eval(), opset=OPSET)
    return _finalise(raw, teacher_sha256=teacher_sha256, training_sha256=training_sha256)


def export_student(
    net: Any,
    *,
    teacher_sha256: str = "",
    training_sha256: str = "",
    images: Path | None = None,
) -> StudentExport:
    """Export + check: ONNX opset 17, parity, scan, contract, BatchNorm folded."""
    from vmafx_saliency.nets.student import count_macs, count_params
    from vmafx_saliency.supply import contract
    from vmafx_saliency.supply import scan as onnxscan
    from vmafx_saliency.supply.export import count_ops, parity_check

    net = net.eval()
    data = student_onnx_bytes(net, teacher_sha256=teacher_sha256, training_sha256=training_sha256)
    figures = parity_check(net, data, parity_inputs(images), PARITY_TOLERANCE)
    ops = count_ops(data)
    if "BatchNormalization" in ops:
        raise ExportError("BatchNormalization survived the export: export the net in eval mode")
    report = onnxscan.scan_bytes(data, path=MODEL_ID)
    if report.violations:
        raise ExportError(f"the op-allowlist scanner refuses the export: {report.violations[0]}")
    contract.check_contract_bytes(data, source=MODEL_ID)
    return StudentExport(
        data, sha256_bytes(data), count_params(net), count_macs(net), ops, tuple(figures)
    )


def student_sidecar(pre: Preprocessing = STUDENT_PREPROCESSING) -> Sidecar:
    return Sidecar(
        model_id=MODEL_ID,
        preprocessing=pre,
        output_range=(0.0, 1.0),
        opset=OPSET,
        notes=SIDECAR_NOTES,
    )


# --- the command ------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    onnx: Path
    manifest: Path
    sidecar: Path
    record: Path
    export: StudentExport
    outcome: TrainOutcome
    labels: LabelStats
    wall_seconds: float

    def render(self) -> str:
        best = self.outcome.history[self.outcome.best_epoch - 1]
        ema = self.outcome.best_weights == "ema"
        mae = best.ema_val_mae if ema else best.val_mae
        max_f = best.ema_val_max_f if ema else best.val_max_f
        lines = [
            f"wrote {self.onnx} ({len(self.export.onnx_bytes):,} bytes, "
            f"sha256 {self.export.sha256})",
            f"wrote {self.manifest}",
            f"wrote {self.sidecar}",
            f"wrote {self.record}",
            f"  {MODEL_ID}: {self.export.params:,} parameters, "
            f"{self.export.macs_320 / 1e9:.3f} GMAC at 320x320, opset {OPSET}",
            f"  best epoch {best.epoch}{' (moving average)' if ema else ''}: "
            f"val MAE {mae:.4f}, val maxF {max_f:.4f} (vs the teacher)",
            f"  teacher labels: {self.labels.computed} computed, {self.labels.reused} reused "
            f"({self.labels.cache_dir})",
            f"  wall time {self.wall_seconds / 60:.1f} min",
        ]
        for fig in self.export.parity:
            lines.append(
                f"  parity {fig.height}x{fig.width}: max |ORT - torch| = {fig.max_abs_diff:.2e} "
                f"<= {fig.tolerance:.0e} ({fig.image})"
            )
        return "\n".join(lines)


def data_key(
    *,
    train: Sequence[Sample],
    val: Sequence[Sample],
    extra_val: Sequence[Sample],
    teacher_sha256: str,
    teacher_input: str,
) -> str:
    """What a run trains and selects on, by content: one digest for the checkpoint."""
    masks = [(s.sha256, sha256_file(s.mask)) for s in [*train, *val] if s.mask is not None]
    doc: dict[str, object] = {
        "train": image_list_sha256(train),
        "val": image_list_sha256(val),
        "extra_val": image_list_sha256(extra_val),
        "teacher": teacher_sha256,
        "teacher_input": teacher_input,
    }
    if masks:  # only then: a run without --gt-root keeps the digest it had before
        doc["masks"] = masks  # --gt-root ground truth, by content
    return sha256_bytes(json.dumps(doc, sort_keys=True).encode())


def check_resume_data(checkpoint: Path, key: str) -> None:
    """Refuse, before any labelling, a resume whose images or teacher differ from the run's.

    Checkpoints from before the key was kept are resumed as they were.
    """
    saved = load_checkpoint(checkpoint, flag="--resume from").get("data")
    if saved is None:
        log.warning(
            "%s was written before checkpoints named their data: resuming without checking "
            "that the images, split and teacher are the same",
            checkpoint,
        )
    elif saved != key:
        raise UsageError(
            f"{checkpoint} was trained on other data (images, split or teacher): resume with "
            "the same --images, --train-only, --extra-val, --gt-root, --limit and --teacher, "
            "or start afresh without --resume (or with another --out)"
        )


def run_training(
    *,
    out_dir: Path,
    image_dirs: Sequence[Path] = (DEFAULT_IMAGES,),
    gt_root: Path | None = None,
    teacher: str | Path = DEFAULT_TEACHER,
    cache_root: Path | None = None,
    cfg: TrainConfig = TrainConfig(),
    resume: bool = False,
    force: bool = False,
    limit: int | None = None,
    stop_after: int | None = None,
    parity_images: Path | None = None,
    progress: TextIO | None = sys.stderr,
    command: Sequence[str] = (),
    threads: int | None = None,
    train_only_dirs: Sequence[Path] = (),
    extra_val_dirs: Sequence[Path] = (),
) -> TrainResult:
    """Label, train, export; every output lands in ``out_dir``.

    ``threads`` sets torch's intra-op threads: on a loaded shared machine one
    thread is several times faster than two that wait on each other.
    """
    _check_schedule(cfg, limit=limit, threads=threads)
    if not 0.0 < cfg.scale_min <= 1.0:
        raise UsageError(f"--scale-min {cfg.scale_min}: give a fraction of the area in (0, 1]")
    if cfg.teacher_input not in TEACHER_INPUTS:
        raise UsageError(
            f"--teacher-input {cfg.teacher_input!r}: give one of {', '.join(TEACHER_INPUTS)}"
        )
    if cfg.loss not in LOSSES:
        raise UsageError(f"--loss {cfg.loss!r}: give one of {', '.join(LOSSES)}")
    _autocast_bf16(cfg)
    _check_ema(cfg)
    _check_loss_weights(cfg)
    _check_freeze_batchnorm(cfg)
    check_init_from(cfg)
    wall_start = time.perf_counter()
    torch = _torch()
    warn_if_bf16_emulated(torch, cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    check_out_folder(out_dir, purpose="the run")
    onnx_path = out_dir / f"{MODEL_ID}.onnx"
    manifest_path = out_dir / f"{MODEL_ID}.onnx.manifest.json"
    sidecar_path = out_dir / f"{MODEL_ID}.sidecar.json"
    record_path = out_dir / f"{MODEL_ID}.training.json"
    checkpoint = out_dir / "checkpoint.pt"
    if not resume:
        for path in (onnx_path, manifest_path, sidecar_path, record_path, checkpoint):
            check_can_write(path, force=force)
    samples = collect_samples(list(image_dirs), gt_root, limit=limit)
    train_s, val_s = split_samples(samples, val_fraction=cfg.val_fraction, seed=cfg.seed)
    # Train-only folders (e.g. frames of video clips) never enter the split, and the
    # extra validation folders (whole held-out clips) are reported, never selected on.
    seen = {s.sha256 for s in samples}
    extra_train: list[Sample] = []
    if train_only_dirs:
        extra_train = [
            s
            for s in collect_samples(list(train_only_dirs), recursive=True, limit=limit)
            if s.sha256 not in seen
        ]
    seen |= {s.sha256 for s in extra_train}
    extra_val_s: list[Sample] = []
    if extra_val_dirs:
        extra_val_s = [
            s
            for s in collect_samples(list(extra_val_dirs), recursive=True, limit=limit)
            if s.sha256 not in seen
        ]
    train_s = train_s + extra_train
    teacher_path = Path(teacher)
    teacher_sha = sha256_file(teacher_path) if teacher_path.is_file() else ""
    teacher_obj: Teacher | None = None
    mode = cfg.teacher_input
    if not teacher_sha:
        teacher_obj = load_teacher(teacher, teacher_input=mode)
        teacher_sha = teacher_obj.sha256
    key = data_key(
        train=train_s,
        val=val_s,
        extra_val=extra_val_s,
        teacher_sha256=teacher_sha,
        teacher_input=mode,
    )
    if resume and checkpoint.is_file():
        check_resume_data(checkpoint, key)
    root = cache_root if cache_root is not None else default_cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(
            f"--label-cache {root}: cannot be made ({exc.strerror}): give a folder you can write to"
        ) from exc
    labels = ensure_labels(
        [*samples, *extra_train, *extra_val_s],
        teacher_obj
        if teacher_obj is not None
        else (lambda: load_teacher(teacher, teacher_input=mode)),
        root,
        teacher_sha256=teacher_sha,
        teacher_input=mode,
        progress=progress,
    )
    if progress is not None:
        print(
            f"data: {len(train_s)} train / {len(val_s)} val images; teacher labels "
            f"{labels.computed} computed, {labels.reused} cached in {labels.cache_dir}",
            file=progress,
            flush=True,
        )
    train_a = load_arrays(train_s, labels.cache_dir, cfg.size)
    val_a = load_arrays(val_s, labels.cache_dir, cfg.size)
    extra_val_a = load_arrays(extra_val_s, labels.cache_dir, cfg.size) if extra_val_s else None
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = train_student(
        cfg,
        train_a,
        val_a,
        checkpoint=checkpoint,
        resume=resume,
        stop_after=stop_after,
        progress=progress,
        extra_val=extra_val_a,
        data_key=key,
    )
    net = build_student(cfg)
    net.load_state_dict(outcome.best_state)
    if outcome.interrupted:
        raise UsageError(f"stopped after epoch {stop_after}: resume with --resume")
    data_sha = image_list_sha256(samples)
    export = export_student(
        net, teacher_sha256=teacher_sha, training_sha256=data_sha, images=parity_images
    )
    wall = time.perf_counter() - wall_start
    versions = _versions()
    record = {
        "schema": TRAINING_RECORD_SCHEMA,
        "model_id": MODEL_ID,
        "command": list(command),
        "data": {
            "image_dirs": [_display(p) for p in image_dirs],
            "gt_root": _display(gt_root) if gt_root is not None else None,
            "count": len(samples),
            "train": len(train_s),
            "val": len(val_s),
            "split": {"val_fraction": cfg.val_fraction, "seed": cfg.seed, "by": "sha256 order"},
            "image_list_sha256": data_sha,
            "train_list_sha256": image_list_sha256(train_s),
            "val_list_sha256": image_list_sha256(val_s),
            "held_out_never_used": "PASCAL-S",
            **(
                {
                    "train_only_dirs": [_display(p) for p in train_only_dirs],
                    "train_only": len(extra_train),
                    "extra_val_dirs": [_display(p) for p in extra_val_dirs],
                    "extra_val": len(extra_val_s),
                    "extra_val_list_sha256": image_list_sha256(extra_val_s),
                    "extra_val_role": "reported per epoch, never used for selection",
                }
                if train_only_dirs or extra_val_dirs
                else {}
            ),
        },
        "teacher": {
            "sha256": teacher_sha,
            "source": _display(teacher_path) if teacher_path.is_file() else str(teacher),
            "protocol": label_protocol(cfg.teacher_input),
        },
        "student_input": "BT.601 luma (full-range 8-bit) of the RGB image, then "
        f"vmafx_saliency.video.extract.preprocess semantics with {sidecar_path.name}",
        "hyperparameters": asdict(cfg),
        # What --init-from named, by content: a path alone does not say which weights.
        "init_from_sha256": sha256_file(Path(cfg.init_from)) if cfg.init_from else None,
        "loss": LOSS_DESCRIPTIONS[cfg.loss]
        + (" + l1_weight * L1(map, teacher map)" if cfg.l1_weight else "")
        + (
            " + side_weight * (the same loss on each coarser decoder output's 1x1 side "
            "head, against the teacher map averaged down to its size; training only)"
            if cfg.side_weight
            else ""
        ),
        "optimizer": "Adam, linear warm-up then cosine to min_lr"
        + (
            "; BatchNorms frozen (eval mode, the init's statistics, gamma and beta)"
            if cfg.freeze_batchnorm
            else ""
        ),
        "history": [asdict(h) for h in outcome.history],
        "best_epoch": outcome.best_epoch,
        "best_weights": outcome.best_weights,
        "selection": "highest val max-F vs the teacher binarised at 0.5 (ties: lower val MAE)"
        + (
            f", over the optimiser's weights and their moving average (decay {cfg.ema_decay})"
            if cfg.ema_decay
            else ""
        ),
        "train_seconds": round(outcome.seconds, 1),
        "wall_seconds": round(wall, 1),
        "label_seconds": round(labels.seconds, 1),
        "output": {"file": onnx_path.name, "sha256": export.sha256},
        "versions": versions,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # Steps cost several times more where bf16 is emulated: say which kind of CPU ran.
            "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
            "native_bf16": native_bf16(torch),
        },
    }
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model_id": MODEL_ID,
        "source": {
            "type": "fork-trained",
            "teacher": {"model": "u2netp_mirror_v1", "sha256": teacher_sha},
            "training_record": record_path.name,
            "licence": {"spdx": LICENSE_SPDX, "file": "LICENSE"},
            "architecture": {
                "source": "vmafx_saliency.nets.student.StudentUNet",
                "widths": list(cfg.widths),
                "stem_convs": cfg.stem_convs,
                "separable": cfg.separable,
            },
        },
        "export": {
            "opset": OPSET,
            "input_names": ["input"],
            "output_names": ["saliency_map"],
            "dynamic_axes": {"height": 2, "width": 3},
            "exporter": "torch.onnx (TorchScript, dynamo=False)",
            "versions": {
                k: versions[k]
                for k in ("vmafx_saliency", "torch", "onnx", "onnxruntime")
                if k in versions
            },
        },
        "output": {
            "file": onnx_path.name,
            "sha256": export.sha256,
            "bytes": len(export.onnx_bytes),
        },
        "op_types": export.op_counts,
        "params": export.params,
        "macs_320x320": export.macs_320,
        "parity": [fig.to_json() for fig in export.parity],
    }
    atomic_write_bytes(onnx_path, export.onnx_bytes, force=True)
    atomic_write_bytes(manifest_path, _dump_json(manifest), force=True)
    atomic_write_bytes(sidecar_path, _dump_json(student_sidecar().to_json()), force=True)
    atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return TrainResult(
        out_dir, onnx_path, manifest_path, sidecar_path, record_path, export, outcome, labels, wall
    )


def _display(path: Path) -> str:
    """A path relative to the project root when it is under it or its parent (no home dirs)."""
    resolved = path.resolve()
    for base, prefix in ((PROJECT_ROOT, ""), (PROJECT_ROOT.parent, "../")):
        with contextlib.suppress(ValueError):
            return prefix + str(resolved.relative_to(base))
    return str(path)


__all__ = [
    "DEFAULT_IMAGES",
    "MODEL_ID",
    "STUDENT_PREPROCESSING",
    "Arrays",
    "EpochRecord",
    "LabelStats",
    "Sample",
    "StudentExport",
    "Teacher",
    "TrainConfig",
    "TrainOutcome",
    "TrainResult",
    "bt601_luma",
    "collect_samples",
    "deployment_input",
    "ensure_labels",
    "export_student",
    "load_teacher",
    "luma_plane",
    "max_f_measure",
    "run_training",
    "split_samples",
    "train_student",
]
