"""The teacher's labels: one run of the teacher per image, kept in a cache, loaded as arrays.

The teacher (an ONNX model through the loader gate, by path or registry id)
labels every training image once in its best setting: RGB, 320x320, upstream
pre-processing (:func:`export.preprocess_upstream`), or, with ``--teacher-input
luma``, the student's own luma input. The raw fused map ``d0`` is kept (no
per-image min-max: the extractor reports the raw map's mean, so the student must
learn its absolute level) and stored as an 8-bit PNG at 320x320 in a cache keyed
by the teacher's sha256, beside a provenance JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import atomic_write_bytes, decode_image, read_capped
from vmafx_saliency.errors import (
    ExportError,
    ExtractionError,
    InputFileError,
    UnknownModelError,
    UsageError,
)
from vmafx_saliency.science.train.config import (
    DEFAULT_TEACHER,
    MIRROR_ID,
    MODEL_ID,
    TEACHER_INPUTS,
)
from vmafx_saliency.science.train.data import (
    Arrays,
    Sample,
    bt601_luma,
    load_rgb,
    luma_plane,
    require_pil_image,
)
from vmafx_saliency.science.train.report import dump_json, time_left, versions
from vmafx_saliency.supply.registry import Preprocessing, Sidecar
from vmafx_saliency.supply.runs import run_map

PROVENANCE_SCHEMA = "vmafx-saliency/teacher-labels/v1"
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
    "vmafx_saliency.video.extract.preprocess with the teacher's sidecar (luma resized by "
    "swscale's bilinear filter, vmafx_saliency.video.scale; tiled to RGB)",
}


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmafx-saliency" / "teacher"


@dataclass(frozen=True)
class Teacher:
    """The teacher's ONNX Runtime session and identity."""

    session: Any
    sha256: str
    source: str
    # Set for ``--teacher-input luma``: the teacher's sidecar pre-processing.
    luma_pre: Preprocessing | None = None

    def label(self, rgb: np.ndarray, *, name: str = "an image") -> np.ndarray:
        """RGB uint8 -> the raw d0 map at :data:`LABEL_SIZE`, float32 [H, W].

        ``name`` (the image's) is for the error of a run that fails or a map
        that is not finite: a broken label would otherwise train the student.
        """
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
            x = preprocess_upstream(require_pil_image().fromarray(rgb, "RGB"), LABEL_SIZE)
        what = f"the teacher {self.source} on image {name}"
        out = run_map(self.session, x, what=what, advice=_TEACHER_ADVICE)
        plane: np.ndarray = np.ascontiguousarray(out[0, 0], dtype=np.float32)
        if not np.all(np.isfinite(plane)):
            raise ExtractionError(
                f"{what}: the map holds NaN or infinite values; {_TEACHER_ADVICE}"
            )
        return plane


_TEACHER_ADVICE = (
    "the teacher is broken for this input: use another teacher (--teacher; teacher= in Python)"
)


def load_teacher(
    teacher: str | Path, *, threads: int | None = None, teacher_input: str = "rgb"
) -> Teacher:
    """A teacher by file path (ad hoc: scanned and contract-checked) or registry id (pinned).

    ``teacher_input`` ``luma`` labels from luma tiled to RGB, with the teacher's
    sidecar pre-processing (beside the file, or the registry entry's).
    """
    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import sidecar_beside

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

        try:
            entry = Registry.load().get(teacher)
        except UnknownModelError as exc:
            raise UnknownModelError(
                f"teacher {teacher}: {exc}; or pass --teacher with the mirror's ONNX file"
            ) from exc
        loaded = loader.load_entry(entry, threads=threads)
        source = f"registry:{teacher}"
    if loaded is not None:
        pre = None
        if teacher_input == "luma":
            if loaded.sidecar is None:  # load_entry always reads one; keep mypy honest
                raise UsageError(f"teacher {teacher}: no sidecar")
            pre = loaded.sidecar.preprocessing
        return Teacher(loaded.session, loaded.sha256, source, luma_pre=pre)
    where = (
        f"export it where train looks by default (vmafx-saliency export --checkpoint "
        f"u2netp.pth --output {DEFAULT_TEACHER})"
        if isinstance(DEFAULT_TEACHER, Path)
        else "export it (vmafx-saliency export --checkpoint u2netp.pth --output "
        f"{MIRROR_ID}.onnx) and pass that file"
    )
    raise InputFileError(
        f"teacher {teacher} is neither a file nor a registry id: pass --teacher with the "
        f"mirror's ONNX or its id, or {where}"
    )


def label_to_png(label: np.ndarray) -> bytes:
    pil_image = require_pil_image()
    arr = np.rint(np.clip(label, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    pil_image.fromarray(arr, "L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def png_to_label(path: Path) -> np.ndarray:
    """A cached label as float32 [H, W] in [0, 1]; a damaged one is refused, never relabelled:
    labels are written atomically, so a bad one is tampering or a failing disk to look at."""
    try:
        grey = decode_image(require_pil_image(), path, mode="L")
    except InputFileError as exc:
        why = exc.__cause__ if exc.__cause__ is not None else "more pixels than a label holds"
        raise InputFileError(
            f"cached teacher label {path} is damaged ({why}): delete the cache folder "
            f"{path.parent} and run again (its labels are made anew)"
        ) from exc
    return np.asarray(grey, dtype=np.float32) / 255.0


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
    (``src/vmafx_saliency/models/saliency_student_v2.training.json``), so benchmarks that read
    cached labels find the ones its training run filled.
    """
    from vmafx_saliency.supply.registry import committed_registry_path

    record = committed_registry_path().parent / f"{MODEL_ID}.training.json"
    sha256 = json.loads(record.read_text(encoding="utf-8"))["teacher"]["sha256"]
    return label_cache_dir(default_cache_root(), str(sha256), teacher_input)


def label_protocol(teacher_input: str) -> dict[str, object]:
    return dict(LUMA_LABEL_PROTOCOL if teacher_input == "luma" else LABEL_PROTOCOL)


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
    protocol = label_protocol(teacher_input)
    images = _cached_images(provenance_path, teacher_sha256, protocol)
    # Said before labelling: the labels an interrupted run leaves are of this protocol.
    _write_provenance(provenance_path, teacher_sha256, protocol, images)
    todo = [s for s in samples if s.mask is None and not (cache_dir / f"{s.sha256}.png").is_file()]
    reused = sum(1 for s in samples if s.mask is None) - len(todo)
    start = time.perf_counter()
    session: Teacher | None = None
    for index, sample in enumerate(todo):
        if session is None:
            session = teacher if isinstance(teacher, Teacher) else teacher()
            _check_cache_key(session, teacher_sha256, teacher_input)
        label = session.label(load_rgb(sample.path), name=str(sample.path))
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
    _write_provenance(provenance_path, teacher_sha256, protocol, images)
    return LabelStats(cache_dir, len(todo), reused, time.perf_counter() - start)


_LABEL_NAME = re.compile(r"[0-9a-f]{64}\.png")  # a label: the image's sha256
# About 120 bytes an image: far more than any image set of ours (MSRA-B: 5,000).
_MAX_PROVENANCE_BYTES = 64 << 20


def _cached_images(
    provenance_path: Path, teacher_sha256: str, protocol: dict[str, object]
) -> dict[str, str]:
    """The cache's images (sha256 to name), once its labels are known to follow ``protocol``.

    Labels of another protocol (an earlier pre-processing), or of none known (no
    readable provenance), are deleted, to be made again: the cache is the
    product's own, and its provenance must describe every label in it.
    """
    old = None
    if provenance_path.is_file():
        # A file that cannot be read (permissions, a failing disk, over the cap) is an
        # error to look at, not a reason to delete hours of labels.
        raw = read_capped(provenance_path, cap=_MAX_PROVENANCE_BYTES, what="label provenance")
        # Not JSON, or nested too deep: no protocol known.
        with contextlib.suppress(ValueError):
            old = json_loads(raw)
    if isinstance(old, dict):
        images = old.get("images")
        if (
            isinstance(images, dict)
            and old.get("teacher_sha256") == teacher_sha256
            and old.get("protocol") == protocol
        ):
            return {str(k): str(v) for k, v in images.items()}
    for stale in provenance_path.parent.glob("*.png"):
        if _LABEL_NAME.fullmatch(stale.name):  # the cache's own names; others are not ours
            stale.unlink()
    return {}


def _write_provenance(
    path: Path, teacher_sha256: str, protocol: dict[str, object], images: dict[str, str]
) -> None:
    provenance = {
        "schema": PROVENANCE_SCHEMA,
        "teacher_sha256": teacher_sha256,
        "protocol": protocol,
        "images": dict(sorted(images.items())),
        "versions": versions(),
    }
    atomic_write_bytes(path, dump_json(provenance))


def _check_cache_key(session: Teacher, teacher_sha256: str, teacher_input: str) -> None:
    """The teacher that labels is the one the cache is keyed by, loaded for its input."""
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


def load_arrays(samples: Sequence[Sample], cache_dir: Path, size: tuple[int, int]) -> Arrays:
    """The samples' luma planes and labels (cached teacher maps, or --gt-root masks) at ``size``."""
    pil_image = require_pil_image()
    luma = np.empty((len(samples), *size), dtype=np.float32)
    label = np.empty((len(samples), *size), dtype=np.float32)
    for i, sample in enumerate(samples):
        luma[i] = luma_plane(load_rgb(sample.path), size)
        if sample.mask is None:
            target = png_to_label(cache_dir / f"{sample.sha256}.png")
        else:  # a --gt-root mask: the capped reader, as for every image
            target = np.asarray(decode_image(pil_image, sample.mask, mode="L"), np.float32) / 255
        if target.shape != size:
            from vmafx_saliency.video.resize import resize_plane

            target = resize_plane(target, size)
        label[i] = target
    return Arrays(luma, label, tuple(s.path.name for s in samples))


__all__ = [
    "LABEL_PROTOCOL",
    "LABEL_SIZE",
    "LUMA_LABEL_PROTOCOL",
    "PROVENANCE_SCHEMA",
    "LabelStats",
    "Teacher",
    "default_cache_root",
    "ensure_labels",
    "label_cache_dir",
    "label_protocol",
    "label_to_png",
    "load_arrays",
    "load_teacher",
    "png_to_label",
    "shipped_label_cache",
]
