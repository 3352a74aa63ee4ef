"""Teacher labels: the cache, its provenance and key, luma labels, ground-truth masks."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._onnx_models import nan_on_bright_model, refused_on_bright_model  # noqa: E402
from tests._train import COMMITTED_STUDENT  # noqa: E402
from vmafx_saliency._util import sha256_bytes  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    ExportError,
    ExtractionError,
    InputFileError,
    ModelRunError,
    UsageError,
)
from vmafx_saliency.science import train  # noqa: E402
from vmafx_saliency.video.extract import preprocess  # noqa: E402


def test_label_cache_is_reused_and_records_provenance(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    samples = train.collect_samples([six_images])
    sha = sha256_bytes(tiny_teacher.read_bytes())
    calls: list[int] = []

    def factory() -> train.Teacher:
        calls.append(1)
        return train.load_teacher(tiny_teacher)

    first = train.ensure_labels(samples, factory, tmp_path, teacher_sha256=sha)
    assert (first.computed, first.reused) == (6, 0)
    assert first.cache_dir == tmp_path / sha[:16]
    label = train.png_to_label(first.cache_dir / f"{samples[0].sha256}.png")
    assert label.shape == train.LABEL_SIZE
    stamps = {p.name: p.stat().st_mtime_ns for p in first.cache_dir.glob("*.png")}

    second = train.ensure_labels(samples, factory, tmp_path, teacher_sha256=sha)
    assert (second.computed, second.reused) == (0, 6)
    assert calls == [1]  # a fully cached run never builds a teacher session
    assert {p.name: p.stat().st_mtime_ns for p in first.cache_dir.glob("*.png")} == stamps

    provenance = json.loads((first.cache_dir / "provenance.json").read_text())
    assert provenance["teacher_sha256"] == sha
    assert provenance["protocol"]["size"] == [320, 320]
    assert "raw" in provenance["protocol"]["output"]
    assert provenance["images"] == {s.sha256: s.path.name for s in samples}
    assert "torch" in provenance["versions"]


def _ensure(samples: list[train.Sample], teacher: Path, root: Path) -> train.LabelStats:
    """Labels for ``samples`` by the teacher at ``teacher``, cached under ``root``."""
    sha = sha256_bytes(teacher.read_bytes())
    return train.ensure_labels(samples, lambda: train.load_teacher(teacher), root,
                               teacher_sha256=sha)  # fmt: skip


def test_labels_of_another_protocol_are_made_again_and_stale_ones_removed(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    # A cache filled under an earlier pre-processing (its provenance says so) must
    # not pass for this one: every label is made again, and labels of images this
    # run does not list go, so a later run cannot reuse them under the new name.
    samples = train.collect_samples([six_images])
    first = _ensure(samples, tiny_teacher, tmp_path)
    provenance_path = first.cache_dir / "provenance.json"
    provenance = json.loads(provenance_path.read_text())
    provenance["protocol"]["preprocessing"] = "an earlier resize"
    provenance_path.write_text(json.dumps(provenance))
    (first.cache_dir / f"{'f' * 64}.png").write_bytes(b"a label of an image not listed")
    (first.cache_dir / "girl.png").write_bytes(b"a user's image, not a label: kept")

    again = _ensure(samples[:4], tiny_teacher, tmp_path)
    assert (again.computed, again.reused) == (4, 0)
    assert sorted(p.stem for p in first.cache_dir.glob("*.png")) == sorted(
        [*(s.sha256 for s in samples[:4]), "girl"]
    )
    provenance = json.loads(provenance_path.read_text())
    assert provenance["protocol"] == train.LABEL_PROTOCOL
    assert provenance["images"] == {s.sha256: s.path.name for s in samples[:4]}


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"images": 3}',
        "not json",
        # Nested past the parser's recursion: unreadable too, never a RecursionError.
        pytest.param("[" * 200_000 + "]" * 200_000, id="nested-200k-deep"),
    ],
)
def test_a_provenance_of_another_shape_only_means_labelling_again(
    tmp_path: Path, six_images: Path, tiny_teacher: Path, text: str
) -> None:
    samples = train.collect_samples([six_images])[:2]
    sha = sha256_bytes(tiny_teacher.read_bytes())
    folder = train.label_cache_dir(tmp_path, sha)
    folder.mkdir(parents=True)
    (folder / "provenance.json").write_text(text)
    stats = _ensure(samples, tiny_teacher, tmp_path)
    assert (stats.computed, stats.reused) == (2, 0)


def test_a_provenance_that_cannot_be_read_is_an_error_and_keeps_the_labels(
    tmp_path: Path, six_images: Path, tiny_teacher: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing disk (or, as another user, permissions) must not cost every label."""
    import errno

    from vmafx_saliency._util import read_capped as real

    samples = train.collect_samples([six_images])[:2]
    _ensure(samples, tiny_teacher, tmp_path)
    folder = train.label_cache_dir(tmp_path, sha256_bytes(tiny_teacher.read_bytes()))
    kept = sorted(p.name for p in folder.glob("*.png"))
    assert len(kept) == 2

    def failing_disk(path: Path, **kwargs: Any) -> bytes:
        if path.name == "provenance.json":
            raise InputFileError(f"cannot read label provenance {path}: {os.strerror(errno.EIO)}")
        return real(path, **kwargs)

    monkeypatch.setattr("vmafx_saliency.science.train.labels.read_capped", failing_disk)
    with pytest.raises(InputFileError, match=r"cannot read label provenance .*Input/output"):
        _ensure(samples, tiny_teacher, tmp_path)
    assert sorted(p.name for p in folder.glob("*.png")) == kept


def test_an_interrupted_labelling_resumes_where_it_stopped(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    samples = train.collect_samples([six_images])
    sha = sha256_bytes(tiny_teacher.read_bytes())
    teacher = train.load_teacher(tiny_teacher)
    labelled: list[int] = []
    real_label = teacher.label

    def label_three_then_stop(rgb: np.ndarray, *, name: str) -> np.ndarray:
        if len(labelled) == 3:
            raise KeyboardInterrupt
        labelled.append(1)
        return real_label(rgb, name=name)

    object.__setattr__(teacher, "label", label_three_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train.ensure_labels(samples, teacher, tmp_path, teacher_sha256=sha)
    # The provenance was written before labelling: the three labels left are known
    # to be of this protocol, and kept.
    resumed = _ensure(samples, tiny_teacher, tmp_path)
    assert (resumed.computed, resumed.reused) == (3, 3)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (refused_on_bright_model, ModelRunError, r" failed at 320x320 \(.*out of data bounds"),
        (nan_on_bright_model, ExtractionError, r": the map holds NaN or infinite values"),
    ],
)
def test_a_teacher_broken_on_an_image_is_refused_naming_it_and_caches_nothing(
    tmp_path: Path, build: Callable[[], bytes], error: type[Exception], message: str
) -> None:
    """Such a teacher passes the loader's probe (noise) and breaks on a white image."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), "white").save(images / "white.png")
    teacher = tmp_path / "broken.onnx"
    teacher.write_bytes(build())
    samples = train.collect_samples([images])
    with pytest.raises(error, match=rf"^the teacher {re.escape(str(teacher))} on image "
                       rf".*white\.png{message}.*use another teacher \(--teacher"):  # fmt: skip
        _ensure(samples, teacher, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.png"))  # no label was written


def test_a_teacher_with_another_hash_is_refused(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    samples = train.collect_samples([six_images])[:1]
    with pytest.raises(Exception, match="cache key"):
        train.ensure_labels(
            samples, lambda: train.load_teacher(tiny_teacher), tmp_path, teacher_sha256="0" * 64
        )


def _teacher_with_sidecar(tmp_path: Path, tiny_teacher: Path) -> Path:
    folder = tmp_path / "teacher_with_sidecar"
    folder.mkdir()
    model = folder / "teacher.onnx"
    model.write_bytes(tiny_teacher.read_bytes())
    (folder / "teacher.sidecar.json").write_text(json.dumps(train.student_sidecar().to_json()))
    return model


def test_luma_labels_are_the_teacher_on_the_extractor_input(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    import onnxruntime as ort

    teacher = _teacher_with_sidecar(tmp_path, tiny_teacher)
    samples = train.collect_samples([six_images])
    sha = sha256_bytes(teacher.read_bytes())
    stats = train.ensure_labels(
        samples,
        lambda: train.load_teacher(teacher, teacher_input="luma"),
        tmp_path / "cache",
        teacher_sha256=sha,
        teacher_input="luma",
    )
    assert stats.cache_dir == tmp_path / "cache" / f"{sha[:16]}-luma"  # beside, not over, RGB
    session = ort.InferenceSession(str(teacher), providers=["CPUExecutionProvider"])
    pre = train.student_sidecar().preprocessing
    for sample in samples:
        # Independently: BT.601 luma through the extractor's own pre-processing.
        x = preprocess(
            train.bt601_luma(train.load_rgb(sample.path)),
            bit_depth=8,
            color_range="full",
            pre=pre,
            size=train.LABEL_SIZE,
        )
        want = np.clip(session.run(None, {"input": x})[0][0, 0], 0.0, 1.0)
        got = train.png_to_label(stats.cache_dir / f"{sample.sha256}.png")
        np.testing.assert_allclose(got, want, rtol=0, atol=0.5 / 255 + 1e-6)
    provenance = json.loads((stats.cache_dir / "provenance.json").read_text())
    assert provenance["protocol"]["colour_mode"] == "luma_tile"


def test_luma_labels_need_the_teachers_sidecar(tiny_teacher: Path) -> None:
    with pytest.raises(UsageError, match=r"--teacher-input luma: .* has no sidecar beside it"):
        train.load_teacher(tiny_teacher, teacher_input="luma")
    with pytest.raises(UsageError, match="--teacher-input 'yuv': give one of rgb, luma"):
        train.load_teacher(tiny_teacher, teacher_input="yuv")


def test_shipped_label_cache_names_the_committed_students_teacher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import onnx

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = onnx.load(str(COMMITTED_STUDENT), load_external_data=False)
    teacher = {p.key: p.value for p in model.metadata_props}["teacher_sha256"]
    root = train.default_cache_root()
    assert train.shipped_label_cache() == root / teacher[:16]
    assert train.shipped_label_cache("luma") == root / f"{teacher[:16]}-luma"


def test_an_rgb_teacher_cannot_fill_the_luma_cache(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    teacher = _teacher_with_sidecar(tmp_path, tiny_teacher)
    samples = train.collect_samples([six_images])[:1]
    with pytest.raises(ExportError, match="loaded for another input than 'luma'"):
        train.ensure_labels(
            samples,
            lambda: train.load_teacher(teacher),
            tmp_path / "cache",
            teacher_sha256=sha256_bytes(teacher.read_bytes()),
            teacher_input="luma",
        )


def test_gt_root_pairs_use_their_masks_not_the_teacher(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    from PIL import Image

    root = tmp_path / "duts-like"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for path in train.list_images(six_images)[:2]:
        shutil.copy(path, root / "images" / path.name)
        Image.new("L", (50, 40), 255).save(root / "masks" / f"{path.stem}.png")
    samples = train.collect_samples([], gt_root=root)
    assert len(samples) == 2 and all(s.mask is not None for s in samples)
    sha = sha256_bytes(tiny_teacher.read_bytes())
    stats = train.ensure_labels(
        samples, lambda: train.load_teacher(tiny_teacher), tmp_path, teacher_sha256=sha
    )
    assert stats.computed == 0
    arrays = train.load_arrays(samples, stats.cache_dir, (32, 32))
    assert arrays.label.shape == (2, 32, 32)
    assert float(arrays.label.min()) == pytest.approx(1.0, abs=1e-6)


def test_a_missing_teacher_says_where_train_looks_by_default(tmp_path: Path) -> None:
    with pytest.raises(
        InputFileError,
        match=rf"teacher .*missing\.onnx is neither a file nor a registry id: .* --output "
        rf"{re.escape(str(train.DEFAULT_TEACHER))}\)",
    ):
        train.load_teacher(tmp_path / "missing.onnx")
    # In a checkout (this one): the hint works from any folder.
    assert isinstance(train.DEFAULT_TEACHER, Path) and train.DEFAULT_TEACHER.is_absolute()


def test_installed_the_default_teacher_is_the_registered_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No checkout: no models/ to export into; the hint says to pass the exported file.
    from vmafx_saliency.science.train import labels

    monkeypatch.setattr(labels, "DEFAULT_TEACHER", train.MIRROR_ID)
    with pytest.raises(
        InputFileError,
        match=r"missing\.onnx is neither a file nor a registry id: .* or export it \(vmafx-"
        r"saliency export --checkpoint u2netp\.pth --output u2netp_mirror_v1\.onnx\) and pass "
        r"that file$",
    ):
        train.load_teacher(tmp_path / "missing.onnx")
    # The registered mirror named by default, and not registered: the file is the way out.
    from vmafx_saliency.errors import UnknownModelError

    monkeypatch.setenv("VMAFX_SALIENCY_REGISTRY", str(tmp_path / "no-overlay.json"))
    with pytest.raises(
        UnknownModelError,
        match=r"^teacher u2netp_mirror_v1: no model 'u2netp_mirror_v1' .* release asset.*; or "
        r"pass --teacher with the mirror's ONNX file$",
    ):
        train.load_teacher(train.MIRROR_ID)


def test_a_damaged_cached_label_says_to_delete_the_cache(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    # Labels are written atomically: a cut one is no interrupted run of ours, and is
    # said, not relabelled silently.
    samples = train.collect_samples([six_images])[:2]
    stats = _ensure(samples, tiny_teacher, tmp_path)
    label = stats.cache_dir / f"{samples[1].sha256}.png"
    label.write_bytes(label.read_bytes()[:100])
    with pytest.raises(
        InputFileError,
        match=rf"cached teacher label \S+{samples[1].sha256}\.png is damaged \(.*\): delete "
        rf"the cache folder {re.escape(str(stats.cache_dir))} and run again",
    ):
        train.load_arrays(samples, stats.cache_dir, (32, 32))


def _claimed_size_png(path: Path, width: int, height: int) -> None:
    """A small grey PNG whose header claims ``width`` x ``height`` (a decompression bomb's)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data[12:29]  # "IHDR" + 13 bytes of header; its CRC follows
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("size", "said"),
    [
        ((8_000, 8_000), r": 8000x8000 pixels, over the 50,000,000"),  # our cap
        ((20_000, 10_000), r" \(.*decompression bomb"),  # past PIL's own limit too
    ],
)
def test_a_gt_mask_past_the_pixel_cap_is_refused_in_one_line(
    tmp_path: Path, six_images: Path, size: tuple[int, int], said: str
) -> None:
    root = tmp_path / "duts-like"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    path = train.list_images(six_images)[0]
    shutil.copy(path, root / "images" / path.name)
    _claimed_size_png(root / "masks" / f"{path.stem}.png", *size)
    samples = train.collect_samples([], gt_root=root)
    with pytest.raises(InputFileError, match=rf"masks/{path.stem}\.png{said}"):
        train.load_arrays(samples, tmp_path, (32, 32))
