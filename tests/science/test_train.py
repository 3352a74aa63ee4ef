"""Student training: deployment input, split, label cache, resume, and a tiny end-to-end run."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from vmafx_saliency._util import sha256_bytes  # noqa: E402
from vmafx_saliency.cli import train as _cli_train  # noqa: E402
from vmafx_saliency.cli.main import main  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    ExportError,
    InputFileError,
    TrainingDivergedError,
    UsageError,
)
from vmafx_saliency.nets.student import SideHeads, StudentUNet  # noqa: E402
from vmafx_saliency.science import train  # noqa: E402
from vmafx_saliency.supply import contract  # noqa: E402
from vmafx_saliency.supply import scan as onnxscan  # noqa: E402
from vmafx_saliency.supply.registry import Preprocessing, Sidecar  # noqa: E402
from vmafx_saliency.video.extract import preprocess  # noqa: E402

COMMITTED_STUDENT = Path(__file__).resolve().parents[2] / "models" / "saliency_student_v2.onnx"

TINY = train.TrainConfig(
    epochs=3, batch_size=2, crop=48, steps_per_epoch=3, val_fraction=0.34, lr=1e-2
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, loaded machine two threads thrash on tiny convs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def six_images(tmp_path_factory: pytest.TempPathFactory, images_dir: Path) -> Path:
    """Six of the shared demo images (mixed sizes, RGB and RGBA)."""
    folder = tmp_path_factory.mktemp("train-images")
    for path in train.list_images(images_dir)[:6]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weights teacher ONNX that meets the contract (fast labels)."""
    torch.manual_seed(3)
    data = train.student_onnx_bytes(StudentUNet((4, 4, 8), stem_convs=1))
    path = tmp_path_factory.mktemp("teacher") / "tiny_teacher.onnx"
    path.write_bytes(data)
    return path


# --- deployment input -------------------------------------------------------


@pytest.mark.parametrize("size", [(320, 320), (333, 517)])
def test_deployment_input_equals_extract_preprocess(
    images_dir: Path, size: tuple[int, int]
) -> None:
    for path in train.list_images(images_dir)[:3]:
        rgb = train.load_rgb(path)
        want = preprocess(
            train.bt601_luma(rgb),
            bit_depth=8,
            color_range="full",
            pre=train.STUDENT_PREPROCESSING,
            size=size,
        )
        got = train.deployment_input(torch.from_numpy(train.luma_plane(rgb, size))[None]).numpy()
        assert got.shape == want.shape == (1, 3, *size)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_deployment_input_keeps_a_black_frame_black_and_honours_unit_range() -> None:
    black = np.zeros((40, 60, 3), dtype=np.uint8)
    pre = train.STUDENT_PREPROCESSING
    got = train.deployment_input(torch.from_numpy(train.luma_plane(black, (40, 60)))[None])
    want = preprocess(
        np.zeros((40, 60), np.uint8), bit_depth=8, color_range="full", pre=pre, size=(40, 60)
    )
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    unit = Preprocessing(
        "luma_tile", (40, 60), "unit_range", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "auto"
    )
    grey = np.full((40, 60, 3), 128, dtype=np.uint8)
    got = train.deployment_input(torch.from_numpy(train.luma_plane(grey, (40, 60)))[None], unit)
    want = preprocess(
        train.bt601_luma(grey), bit_depth=8, color_range="full", pre=unit, size=(40, 60)
    )
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


def test_bt601_luma_of_primaries() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert train.bt601_luma(rgb).tolist() == [[76, 150, 29, 255]]


# --- data and split ---------------------------------------------------------


def test_split_is_fixed_disjoint_and_complete(six_images: Path) -> None:
    samples = train.collect_samples([six_images])
    a_train, a_val = train.split_samples(samples, val_fraction=0.34, seed=0)
    b_train, b_val = train.split_samples(list(reversed(samples)), val_fraction=0.34, seed=0)
    assert (a_train, a_val) == (b_train, b_val)  # independent of listing order
    names_train = {s.sha256 for s in a_train}
    names_val = {s.sha256 for s in a_val}
    assert not names_train & names_val
    assert names_train | names_val == {s.sha256 for s in samples}
    assert len(a_val) == 2


def test_duplicate_folders_do_not_leak_across_the_split(six_images: Path) -> None:
    samples = train.collect_samples([six_images, six_images])
    assert len(samples) == 6


@pytest.mark.parametrize("name", ["pascal-s", "PASCAL_S", "pascals"])
def test_pascal_s_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name / "images"
    folder.mkdir(parents=True)
    with pytest.raises(UsageError, match="held-out"):
        train.collect_samples([folder])
    with pytest.raises(UsageError, match="held-out"):
        train.collect_samples([], gt_root=tmp_path / name)


def test_default_data_is_not_pascal_s() -> None:
    train.refuse_held_out(train.DEFAULT_IMAGES)
    assert "pascal" not in str(train.DEFAULT_IMAGES).lower()


# --- label cache ------------------------------------------------------------


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


# --- training ---------------------------------------------------------------


def _arrays(n: int, seed: int) -> train.Arrays:
    rng = np.random.default_rng(seed)
    luma = rng.random((n, 40, 40), dtype=np.float32)
    yy, xx = np.mgrid[:40, :40]
    blob = ((yy - 20) ** 2 + (xx - 20) ** 2 < 120).astype(np.float32)
    label = np.repeat(blob[None], n, axis=0) * rng.uniform(0.6, 1.0, (n, 1, 1)).astype(np.float32)
    return train.Arrays(luma, label, tuple(f"{i}" for i in range(n)))


def test_resume_reaches_the_same_weights(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32)
    data, val = _arrays(6, 0), _arrays(2, 1)
    whole = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    part = train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", stop_after=1)
    assert part.interrupted and len(part.history) == 1
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", resume=True)
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    strip = [dataclasses.replace(h, seconds=0.0) for h in whole.history]
    assert [dataclasses.replace(h, seconds=0.0) for h in resumed.history] == strip
    a = torch.load(tmp_path / "a.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("done", "total", "seconds", "said"),
    [
        (50, 200, 100.0, ", about 5 min left"),  # 150 more at 2 s each
        (10, 20, 30.0, ", about 30 s left"),  # under 90 s is said in seconds
        (1, 3, 50.0, ", about 2 min left"),  # 100 s
        (0, 20, 0.0, ""),  # no pace yet
        (20, 20, 60.0, ""),  # done
    ],
)
def test_time_left_extrapolates_the_pace_so_far(
    done: int, total: int, seconds: float, said: str
) -> None:
    assert train.time_left(done, total, seconds) == said


def test_each_epoch_line_says_how_long_is_left_and_the_last_does_not(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32)
    lines = io.StringIO()
    train.train_student(
        cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "p.pt", progress=lines
    )
    epochs = [line for line in lines.getvalue().splitlines() if line.startswith("epoch ")]
    assert len(epochs) == cfg.epochs
    assert all(" left" in line for line in epochs[:-1])
    assert " left" not in epochs[-1]


def _exported_student(tmp_path: Path, widths: tuple[int, ...] = (16, 32, 32, 32, 40, 40)) -> Path:
    torch.manual_seed(7)
    path = tmp_path / f"student_{len(widths)}.onnx"
    path.write_bytes(train.student_onnx_bytes(StudentUNet(widths).eval()))
    return path


def test_init_from_an_exported_student_starts_from_its_weights(tmp_path: Path) -> None:
    # Fine-tuning the shipped student: at a negligible rate the run ends with the
    # ONNX's own (folded) convolution weights, and the record names the file's sha256.
    onnx_path = _exported_student(tmp_path)
    cfg = dataclasses.replace(
        TINY, crop=32, epochs=1, lr=1e-12, min_lr=0.0, init_from=str(onnx_path)
    )
    outcome = train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "f.pt")
    net = StudentUNet(cfg.widths)
    net.load_state_dict(outcome.best_state)
    loaded = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    folded = [weight for weight, _ in train.folded_convs(onnx_path)]
    # Module order and graph order agree for this net (the head is last in both).
    assert len(loaded) == len(folded)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(loaded, folded, strict=True))
    fresh = train.train_student(
        dataclasses.replace(cfg, init_from=None), _arrays(4, 0), _arrays(2, 1),
        checkpoint=tmp_path / "g.pt",
    )  # fmt: skip
    assert not torch.allclose(fresh.best_state["head.weight"], folded[-1], atol=1e-3)


def test_init_from_onnx_gives_the_files_map_and_needs_same_shaped_convs(tmp_path: Path) -> None:
    onnx_path = _exported_student(tmp_path)
    net = StudentUNet()
    planes = _arrays(3, 0).luma
    train.init_from_onnx(train.TrainConfig(), net, onnx_path, planes)  # parity checked inside
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = train.deployment_input(torch.from_numpy(planes[2:3]))
    want = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(net.eval()(x).numpy() - want).max() < 1e-5


def test_the_shipped_student_is_a_net_of_the_train_defaults() -> None:
    # `train --init-from models/saliency_student_v2.onnx` (the README's fine-tune)
    # must need no architecture options: the defaults build the shipped net, and
    # the check counts its convolutions (19: a three-convolution stem).
    shipped = COMMITTED_STUDENT
    train.check_init_from(train.TrainConfig(init_from=str(shipped)))
    assert len(train.folded_convs(shipped)) == 19
    one_conv_stem = train.TrainConfig(init_from=str(shipped), stem_convs=1)
    with pytest.raises(UsageError, match="19 convolutions for a net of 17"):
        train.check_init_from(one_conv_stem)


def test_init_from_an_onnx_of_other_widths_is_refused_before_any_labelling(
    tmp_path: Path,
) -> None:
    onnx_path = _exported_student(tmp_path, widths=(8, 12, 16))
    empty = tmp_path / "empty"
    empty.mkdir()  # would be refused too, but only after the --init-from check
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(onnx_path))
    want = r"not a student of --widths 16,32,32,32,40,40, --stem-convs 3; give the options"
    with pytest.raises(UsageError, match=want):
        train.run_training(out_dir=tmp_path / "run", image_dirs=[empty], cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match=want):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "h.pt")
    assert not (tmp_path / "h.pt").exists()


def test_init_from_a_missing_checkpoint_is_refused_before_any_labelling(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, init_from=str(tmp_path / "absent" / "checkpoint.pt"))
    with pytest.raises(InputFileError, match=r"checkpoint\.pt: no such file: give a run's"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def _assert_init_from_refused(
    cfg: train.TrainConfig, error: type[Exception], match: str, tmp_path: Path
) -> None:
    """Refused by the early check (before any labelling) and by the library's own."""
    with pytest.raises(error, match=match):
        train.check_init_from(cfg)
    with pytest.raises(error, match=match):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "h.pt")
    assert not (tmp_path / "h.pt").exists()


def test_init_from_a_checkpoint_of_another_stem_is_refused(tmp_path: Path) -> None:
    # Widening would leave the extra stem convolutions at their random start: a
    # checkpoint from before --stem-convs 3 became the default must say so.
    old = dataclasses.replace(TINY, crop=32, epochs=1, widths=(4, 4, 8), stem_convs=1)
    checkpoint = tmp_path / "old.pt"
    train.train_student(old, _arrays(4, 0), _arrays(2, 1), checkpoint=checkpoint)
    cfg = dataclasses.replace(old, stem_convs=3, init_from=str(checkpoint))
    want = r"--stem-convs 1; this run builds 3 widths, --stem-convs 3: give the checkpoint's"
    _assert_init_from_refused(cfg, UsageError, want, tmp_path)
    # The same stem is taken, wider or not.
    train.check_init_from(dataclasses.replace(cfg, stem_convs=1, widths=(4, 6, 8)))
    # Narrower is refused: widen_from copies every old channel, so it cannot shrink.
    narrow = dataclasses.replace(cfg, stem_convs=1, widths=(4, 2, 8))
    want = r"--widths 4,4,8; this run's --widths 4,2,8 is narrower at stage 1: .* never narrowed"
    _assert_init_from_refused(narrow, UsageError, want, tmp_path)


def _resume_from(checkpoint: Path, match: str) -> None:
    """``train_student`` resuming from ``checkpoint`` refuses it with ``match``."""
    with pytest.raises(InputFileError, match=match):
        train.train_student(
            dataclasses.replace(TINY, crop=32),
            _arrays(4, 0),
            _arrays(2, 1),
            checkpoint=checkpoint,
            resume=True,
        )


class _TouchOnLoad:
    """Unpickling this creates ``marker``: what a hostile checkpoint.pt could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = tmp_path / "checkpoint.pt"
    torch.save({"config": {}, "best_state": _TouchOnLoad(marker)}, hostile)
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(hostile))
    want = (
        r"--init-from .*checkpoint\.pt: not a checkpoint that `vmafx-saliency train` wrote "
        r"\(it would call getattr when read\); give a run's checkpoint\.pt"
    )
    _assert_init_from_refused(cfg, InputFileError, want, tmp_path)
    _resume_from(hostile, r"--resume from .*checkpoint\.pt: not a checkpoint.*; start afresh")
    assert not marker.exists()
    # The payload is live: a plain unpickling runs it.
    torch.load(hostile, weights_only=False)
    assert marker.exists()


def _torch_file_cut_in_half(path: Path) -> bytes:
    torch.save({"config": {}, "best_state": {}}, path)
    raw = path.read_bytes()
    return raw[: len(raw) // 2]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ({"model": {}}, "a PyTorch file without a training config, not a checkpoint that .*"),
        (b"not a zip, not a pickle", r"not a checkpoint that .* \(not a PyTorch pickle\)"),
        (b"", r"not a checkpoint that .* \(empty or cut short\)"),
        ("half", r"not a checkpoint that .* \(truncated, or not a PyTorch zip file\)"),
        (b"some notes, written by hand\n", r"not a checkpoint that .* \(not a PyTorch file\)"),
    ],
)
def test_init_from_a_pt_that_is_not_a_train_checkpoint_is_refused(
    tmp_path: Path, content: dict[str, Any] | bytes | str, said: str
) -> None:
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "half":
        path.write_bytes(_torch_file_cut_in_half(tmp_path / "whole.pt"))
    else:
        torch.save(content, path)
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(path))
    want = f"--init-from .*weights.pt: {said}; give a run's checkpoint.pt"
    _assert_init_from_refused(cfg, InputFileError, want, tmp_path)
    # torch's own text would advise weights_only=False: running the file's code.
    with pytest.raises(InputFileError) as caught:
        train.check_init_from(cfg)
    assert "weights_only" not in str(caught.value)


def test_resume_from_a_checkpoint_cut_short_says_to_start_afresh(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.pt"
    cut = _torch_file_cut_in_half(tmp_path / "whole.pt")
    checkpoint.write_bytes(cut)
    want = (
        r"--resume from .*checkpoint\.pt: not a checkpoint .* \(truncated, or not a "
        r"PyTorch zip file\); start afresh without --resume, or with another --out"
    )
    _resume_from(checkpoint, want)
    assert checkpoint.read_bytes() == cut  # left as it was, for the user to look at


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"not a protobuf \xff\xfe", "cannot read it as ONNX"),
        (b"", "holds no Conv node: give a student exported by `train`"),  # an empty ModelProto
    ],
)
def test_init_from_a_file_that_is_not_a_student_is_refused(
    tmp_path: Path, content: bytes, said: str
) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(bad))
    with pytest.raises(InputFileError, match=f"model.onnx: {said}"):
        train.check_init_from(cfg)  # what run_training asks first


def test_init_from_a_missing_onnx_is_refused(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, init_from=str(tmp_path / "absent.onnx"))
    with pytest.raises(InputFileError, match=r"absent\.onnx: no such file"):
        train.check_init_from(cfg)


def _conv_graph(nodes: list[Any], initialisers: list[Any]) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
        initializer=initialisers,
    )
    return bytes(helper.make_model(graph).SerializeToString())


def test_init_from_an_onnx_whose_conv_weights_are_computed_is_refused(tmp_path: Path) -> None:
    # Weights made by a node (here a Constant), not stored: not a graph `train` exported.
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1, 3, 3, 3), np.float32), name="w")
    path = tmp_path / "made.onnx"
    path.write_bytes(
        _conv_graph(
            [
                helper.make_node("Constant", [], ["w"], value=weight),
                helper.make_node("Conv", ["x", "w"], ["y"], name="made", pads=[1, 1, 1, 1]),
            ],
            [],
        )
    )
    with pytest.raises(InputFileError, match="Conv made takes its weights from another node"):
        train.folded_convs(path)


def test_folded_convs_follow_identity_aliases_and_stop_at_a_cycle(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    w = np.arange(27, dtype=np.float32).reshape(1, 3, 3, 3)
    stored = [
        numpy_helper.from_array(w, name="w"),
        numpy_helper.from_array(np.array([0.5], np.float32), name="b"),
    ]

    def graph(name: str, identities: list[tuple[str, str]], bias: str) -> Path:
        path = tmp_path / f"{name}.onnx"
        nodes = [helper.make_node("Identity", [src], [dst]) for src, dst in identities]
        conv = helper.make_node("Conv", ["x", "w", bias], ["y"], name="c", pads=[1, 1, 1, 1])
        path.write_bytes(_conv_graph([*nodes, conv], stored))
        return path

    [(weight, bias)] = train.folded_convs(graph("shared", [("b", "b1"), ("b1", "b2")], "b2"))
    assert np.array_equal(weight.numpy(), w)
    assert bias is not None and bias.tolist() == [0.5]
    cycle = graph("cycle", [("p", "q"), ("q", "p")], "q")
    with pytest.raises(InputFileError, match="Conv c takes its weights from another node"):
        train.folded_convs(cycle)


def test_init_from_an_onnx_that_computes_another_map_is_refused(tmp_path: Path) -> None:
    # Same convolution shapes, other padding on the head: the shapes match, the map not.
    import onnx

    model = onnx.load(str(_exported_student(tmp_path)))
    head = [node for node in model.graph.node if node.op_type == "Conv"][-1]
    for attribute in head.attribute:
        if attribute.name == "pads":
            attribute.ints[:] = [0, 0, 0, 0]
    path = tmp_path / "repadded.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UsageError, match="differs from the file's own map by up to"):
        train.init_from_onnx(train.TrainConfig(), StudentUNet(), path, _arrays(2, 0).luma)


def test_init_from_an_onnx_the_scanner_refuses_is_refused(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    stored = [numpy_helper.from_array(np.ones((1, 3, 3, 3), np.float32), name="w")]
    path = tmp_path / "odd.onnx"
    path.write_bytes(
        _conv_graph(
            [
                helper.make_node("Conv", ["x", "w"], ["c"], name="c", pads=[1, 1, 1, 1]),
                helper.make_node("Tanh", ["c"], ["y"]),  # not on the allowlist
            ],
            stored,
        )
    )
    with pytest.raises(InputFileError, match=r"the scanner refuses it .*vmafx-saliency scan"):
        train.init_from_onnx(train.TrainConfig(), StudentUNet(), path, _arrays(2, 0).luma)


def _batchnorm_state(net: StudentUNet) -> dict[str, Any]:
    """The BatchNorm entries of ``net``'s state dict (gamma, beta and statistics)."""
    names = {name for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    return {k: v for k, v in net.state_dict().items() if k.rpartition(".")[0] in names}


def test_freeze_batchnorm_trains_the_convolutions_and_keeps_the_files_batchnorms(
    tmp_path: Path,
) -> None:
    onnx_path = _exported_student(tmp_path)
    data, val = _arrays(6, 0), _arrays(2, 1)
    cfg = dataclasses.replace(TINY, crop=32, epochs=2, init_from=str(onnx_path))
    start = StudentUNet()
    train.init_from_onnx(cfg, start, onnx_path, data.luma)  # what train_student starts from
    initial = start.state_dict()

    def trained(c: train.TrainConfig, name: str) -> dict[str, Any]:
        train.train_student(c, data, val, checkpoint=tmp_path / name)
        state: dict[str, Any] = torch.load(tmp_path / name, weights_only=False)["model"]
        return state

    frozen = trained(dataclasses.replace(cfg, freeze_batchnorm=True), "frozen.pt")
    free = trained(cfg, "free.pt")
    kept = _batchnorm_state(start)
    assert len(kept) == 5 * len(
        [m for m in start.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    )  # weight, bias, running_mean, running_var, num_batches_tracked
    assert all(torch.equal(frozen[k], v) for k, v in kept.items())
    assert not all(torch.equal(free[k], v) for k, v in kept.items())  # train mode moves them
    convs = [k for k in initial if k.endswith("conv.weight") or k == "head.weight"]
    assert convs and all(not torch.allclose(frozen[k], initial[k]) for k in convs)


def test_freeze_batchnorm_without_init_from_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, freeze_batchnorm=True)
    want = r"--freeze-batchnorm keeps the BatchNorms of the net it starts from.*give --init-from"
    with pytest.raises(UsageError, match=want):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match=want):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "f.pt")
    assert not (tmp_path / "f.pt").exists()


@pytest.mark.parametrize(
    ("change", "run_args", "want"),
    [
        ({"epochs": 0}, {}, "--epochs 0: give a whole number of 1 or more"),
        ({"batch_size": 0}, {}, "--batch-size 0: give a whole number of 1 or more"),
        ({"crop": -8}, {}, "--crop -8: give a whole number of 1 or more"),
        # 0 would otherwise read as None, "one pass over the split"
        ({"steps_per_epoch": 0}, {}, "--steps-per-epoch 0: give a whole number of 1 or more"),
        ({}, {"limit": 0}, "--limit 0: give a whole number of 1 or more"),
        ({}, {"threads": 0}, "--threads 0: give a whole number of 1 or more"),
        ({"lr": 0.0}, {}, r"--lr 0.0: give a learning rate > 0"),
        ({"lr": math.nan}, {}, r"--lr nan: give a learning rate > 0"),
    ],
)
def test_a_schedule_no_run_can_use_is_refused_before_any_labelling(
    tmp_path: Path, change: dict[str, Any], run_args: dict[str, Any], want: str
) -> None:
    cfg = dataclasses.replace(TINY, **change)
    with pytest.raises(UsageError, match=want):
        train.run_training(
            out_dir=tmp_path / "run",
            image_dirs=[tmp_path / "absent"],  # labelling would fail on this, not hang
            cfg=cfg,
            progress=None,
            **run_args,
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("change", "want"),
    [
        ({"steps_per_epoch": 0}, r"--steps-per-epoch 0: give a whole number of 1 or more"),
        ({"epochs": 0}, r"--epochs 0: give a whole number of 1 or more"),
        ({"lr": 0.0}, r"--lr 0\.0: give a learning rate > 0"),
    ],
)
def test_train_student_refuses_the_same_schedules_when_called_directly(
    tmp_path: Path, change: dict[str, Any], want: str
) -> None:
    # Not only through run_training: 0 steps would otherwise train a whole pass,
    # and 0 epochs return an outcome with no history.
    cfg = dataclasses.replace(TINY, crop=32, **change)
    with pytest.raises(UsageError, match=want):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--out", "x", "--epochs", "0"],
        ["train", "--out", "x", "--batch-size", "0"],
        ["train", "--out", "x", "--crop", "0"],
        ["train", "--out", "x", "--steps-per-epoch", "0"],
        ["train", "--out", "x", "--limit", "0"],
        ["train", "--out", "x", "--threads", "0"],
        ["views", "synth", "--out", "x", "--recipe", "mix", "--limit", "0"],
        ["views", "frames", "clip.mp4", "--out", "x", "--every", "0"],
    ],
)
def test_cli_counts_are_whole_numbers_from_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert f"{argv[-2]}: '0': give 1 or more" in capsys.readouterr().err


def test_a_run_seed_changes_the_draws_and_nothing_else(tmp_path: Path) -> None:
    """--run-seed equal to --seed is the default run; another draws other weights
    and batches from the same data (the split is made by the caller from --seed)."""
    cfg = dataclasses.replace(TINY, crop=32, epochs=1)
    data, val = _arrays(6, 0), _arrays(2, 1)

    def weights(c: train.TrainConfig, name: str) -> dict[str, Any]:
        train.train_student(c, data, val, checkpoint=tmp_path / name)
        state: dict[str, Any] = torch.load(tmp_path / name, weights_only=False)["model"]
        return state

    default = weights(cfg, "default.pt")
    same = weights(dataclasses.replace(cfg, run_seed=cfg.seed), "same.pt")
    other = weights(dataclasses.replace(cfg, run_seed=cfg.seed + 1), "other.pt")
    assert all(torch.equal(default[k], same[k]) for k in default)
    assert any(not torch.allclose(default[k], other[k]) for k in default if k.endswith("weight"))
    assert train.run_seed(cfg) == cfg.seed
    assert train.run_seed(dataclasses.replace(cfg, run_seed=5)) == 5


def test_a_checkpoint_from_before_run_seed_resumes_with_the_split_seed(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    data, val = _arrays(4, 0), _arrays(2, 1)
    train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", stop_after=1)
    state = torch.load(tmp_path / "old.pt", weights_only=False)
    del state["config"]["run_seed"]  # as the code before --run-seed wrote it
    torch.save(state, tmp_path / "old.pt")
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", resume=True)
    assert [h.epoch for h in resumed.history] == [1, 2]
    with pytest.raises(UsageError, match="hyper-parameters"):
        train.train_student(
            dataclasses.replace(cfg, run_seed=3),
            data,
            val,
            checkpoint=tmp_path / "old.pt",
            resume=True,
        )


def test_resume_with_other_options_is_refused(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    data, val = _arrays(4, 0), _arrays(2, 1)
    train.train_student(cfg, data, val, checkpoint=tmp_path / "c.pt", stop_after=1)
    with pytest.raises(UsageError, match="hyper-parameters"):
        train.train_student(
            dataclasses.replace(cfg, lr=1e-4), data, val, checkpoint=tmp_path / "c.pt", resume=True
        )


@pytest.mark.parametrize("option", ["precision", "freeze_batchnorm"])
def test_a_checkpoint_from_before_an_option_resumes_as_it_trained(
    tmp_path: Path, option: str
) -> None:
    # Before --precision every run trained fp32, before --freeze-batchnorm with BN trained.
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    data, val = _arrays(4, 0), _arrays(2, 1)
    train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", stop_after=1)
    state = torch.load(tmp_path / "old.pt", weights_only=False)
    del state["config"][option]  # as the code before the option wrote it
    torch.save(state, tmp_path / "old.pt")
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "old.pt", resume=True)
    assert [h.epoch for h in resumed.history] == [1, 2]
    with pytest.raises(UsageError, match="hyper-parameters"):
        train.train_student(
            dataclasses.replace(cfg, precision="bf16"),
            data,
            val,
            checkpoint=tmp_path / "old.pt",
            resume=True,
        )


def test_max_f_measure() -> None:
    gt = np.zeros((10, 10), bool)
    gt[2:6, 2:6] = True
    assert train.max_f_measure(gt.astype(np.float32), gt) == pytest.approx(1.0)
    assert train.max_f_measure(np.zeros((10, 10), np.float32), gt) < 0.5


def test_train_end_to_end_on_six_images(
    tmp_path: Path, six_images: Path, tiny_teacher: Path, images_dir: Path
) -> None:
    out = tmp_path / "run"
    result = train.run_training(
        out_dir=out,
        image_dirs=[six_images],
        teacher=tiny_teacher,
        cache_root=tmp_path / "cache",
        cfg=TINY,
        parity_images=images_dir,
        progress=None,
    )
    losses = [h.train_loss for h in result.outcome.history]
    assert losses[-1] < losses[0]
    data = result.onnx.read_bytes()
    assert onnxscan.scan_bytes(data).violations == ()
    contract.check_contract_bytes(data, source="student")
    manifest = json.loads(result.manifest.read_text())
    assert manifest["model_id"] == "saliency_student_v2"
    assert manifest["output"]["sha256"] == sha256_bytes(data)
    assert manifest["source"]["type"] == "fork-trained"
    assert "BatchNormalization" not in manifest["op_types"]
    assert all(p["max_abs_diff"] <= 1e-4 for p in manifest["parity"])
    record = json.loads(result.record.read_text())
    assert record["data"]["count"] == 6 and record["data"]["val"] == 2
    assert record["teacher"]["sha256"] == sha256_bytes(tiny_teacher.read_bytes())
    assert len(record["history"]) == TINY.epochs
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["machine"]["native_bf16"] is train.native_bf16(torch)
    assert Sidecar.load(result.sidecar).preprocessing == train.STUDENT_PREPROCESSING
    assert record["init_from_sha256"] is None
    # Fine-tuning the model just exported, with the F-measure loss: the record says both.
    # At a tenth of the from-scratch rate, as a fine-tune runs (see load_folded).
    tuned = train.run_training(
        out_dir=tmp_path / "tuned",
        image_dirs=[six_images],
        teacher=tiny_teacher,
        cache_root=tmp_path / "cache",
        cfg=dataclasses.replace(
            TINY, epochs=1, lr=TINY.lr / 10, init_from=str(result.onnx), loss="fmeasure"
        ),
        parity_images=images_dir,
        progress=None,
    )
    tuned_record = json.loads(tuned.record.read_text())
    assert tuned_record["init_from_sha256"] == sha256_bytes(data)
    assert tuned_record["loss"].startswith("BCE(logits, teacher map) + iou_weight * (1 - soft F")
    # A second run without --force refuses to clobber the outputs.
    with pytest.raises(Exception, match="already exists"):
        train.run_training(
            out_dir=out,
            image_dirs=[six_images],
            teacher=tiny_teacher,
            cache_root=tmp_path / "cache",
            cfg=TINY,
            progress=None,
        )


def test_resume_on_other_data_is_refused_before_labelling(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    """The hyper-parameters alone do not say what a checkpoint was trained on."""
    out = tmp_path / "run"
    common: dict[str, Any] = {
        "out_dir": out,
        "image_dirs": [six_images],
        "teacher": tiny_teacher,
        "cache_root": tmp_path / "cache",
        "cfg": dataclasses.replace(TINY, epochs=2),
        "progress": None,
    }
    with pytest.raises(UsageError, match="stopped after epoch 1: resume with --resume"):
        train.run_training(**common, stop_after=1)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(
        UsageError,
        match=r"checkpoint\.pt was trained on other data \(images, split or teacher\): resume "
        r"with the same --images, --train-only, --extra-val, --gt-root, --limit and --teacher",
    ):
        train.run_training(**common, resume=True, limit=5)
    assert (out / "checkpoint.pt").read_bytes() == before
    # The same data resumes and finishes.
    result = train.run_training(**common, resume=True)
    assert len(result.outcome.history) == 2


def test_limit_takes_the_first_n_of_every_folder(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    from PIL import Image

    extra = tmp_path / "frames"
    extra.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(extra / f"{i}.png")
    result = train.run_training(
        out_dir=tmp_path / "run",
        image_dirs=[six_images],
        teacher=tiny_teacher,
        cache_root=tmp_path / "cache",
        cfg=dataclasses.replace(TINY, epochs=1),
        limit=4,
        train_only_dirs=[extra],
        progress=None,
    )
    data = json.loads(result.record.read_text())["data"]
    assert (data["count"], data["train_only"]) == (4, 4)


def test_the_data_digest_of_a_run_without_ground_truth_is_unchanged() -> None:
    """Checkpoints written before masks joined the digest still resume: for a run without
    --gt-root the digest is the one they keep."""
    a = train.Sample(Path("a.png"), "1" * 64)
    b = train.Sample(Path("b.png"), "2" * 64)
    doc = {
        "train": train.image_list_sha256([a]),
        "val": train.image_list_sha256([b]),
        "extra_val": train.image_list_sha256([]),
        "teacher": "t" * 64,
        "teacher_input": "rgb",
    }
    want = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    got = train.data_key(
        train=[a], val=[b], extra_val=[], teacher_sha256="t" * 64, teacher_input="rgb"
    )
    assert got == want


def test_an_out_that_is_a_file_or_a_cache_that_cannot_be_made_is_refused(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    kwargs: dict[str, Any] = {"image_dirs": [six_images], "teacher": tiny_teacher, "cfg": TINY}
    with pytest.raises(UsageError, match=r"--out .*afile: a file, not a folder"):
        train.run_training(out_dir=afile, cache_root=tmp_path / "cache", progress=None, **kwargs)
    assert afile.read_text() == "mine\n"
    with pytest.raises(InputFileError, match=r"--label-cache .*afile/cache: cannot be made"):
        train.run_training(
            out_dir=tmp_path / "run", cache_root=afile / "cache", progress=None, **kwargs
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("field", "flag"), [("iou_weight", "--iou-weight"), ("l1_weight", "--l1-weight")]
)
@pytest.mark.parametrize("value", [-1.0, math.nan])
def test_a_negative_or_nan_loss_weight_is_refused(field: str, flag: str, value: float) -> None:
    changes: dict[str, Any] = {"crop": 32, field: value}
    cfg = dataclasses.replace(TINY, **changes)
    with pytest.raises(UsageError, match=rf"{flag} {value}: give a weight >= 0"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=Path("/nonexistent"))


@pytest.mark.parametrize(
    ("steps", "said"),
    [
        (None, r"the loss became nan at epoch 1, step \d+"),
        # One step an epoch: its loss was taken before the update that broke the weights.
        (1, r"the validation maps became NaN or infinite in epoch 1"),
    ],
)
def test_a_diverging_run_stops_with_what_to_do(
    tmp_path: Path, steps: int | None, said: str
) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=3, lr=1e30, steps_per_epoch=steps)
    with pytest.raises(
        TrainingDivergedError,
        match=rf"{said}: the training diverged at --lr 1e\+30; run again with a lower --lr "
        r"and --force \(or another --out\)",
    ):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()  # no epoch finished: nothing to resume from


def test_cli_registers_train() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _cli_train.register(sub)
    args = parser.parse_args(["train", "--out", "x", "--widths", "8,16,24", "--epochs", "2"])
    assert args.widths == (8, 16, 24) and args.epochs == 2 and args.handler is not None
    assert args.ema_decay == 0.0
    args = parser.parse_args(["train", "--out", "x", "--ema-decay", "0.999"])
    assert args.ema_decay == pytest.approx(0.999)
    assert parser.parse_args(["train", "--out", "x", "--stem-convs", "2"]).stem_convs == 2


def test_an_interrupted_train_says_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmafx_saliency.cli.main import main

    out = tmp_path / "run"

    def interrupted(**kwargs: Any) -> Any:
        # Ctrl-C after the first epoch's checkpoint was written.
        kwargs["out_dir"].mkdir()
        (kwargs["out_dir"] / "checkpoint.pt").write_bytes(b"epoch 1")
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run_training", interrupted)
    assert main(["train", "--out", str(out), "--epochs", "2"]) == 130
    err = capsys.readouterr().err
    assert f"the last finished epoch is in {out / 'checkpoint.pt'}: carry on with the same " in err
    assert "and --resume" in err and err.rstrip().endswith("vmafx-saliency: interrupted")


def test_an_interrupt_before_this_run_checkpointed_gives_no_resume_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmafx_saliency.cli.main import main

    out = tmp_path / "run"
    out.mkdir()
    old = out / "checkpoint.pt"
    old.write_bytes(b"an earlier run's")
    os.utime(old, (1_000_000_000, 1_000_000_000))  # written long before this run

    def interrupted(**kwargs: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C while labelling, --force over the earlier run

    monkeypatch.setattr(train, "run_training", interrupted)
    assert main(["train", "--out", str(out), "--force"]) == 130
    assert "carry on" not in capsys.readouterr().err


def test_an_unreadable_checkpoint_is_not_called_unparseable(tmp_path: Path) -> None:
    # A folder stands for any file that cannot be read: the checkpoint may be fine.
    with pytest.raises(InputFileError, match=r"--resume from .*: cannot be read \(.*\): check"):
        train.load_checkpoint(tmp_path, flag="--resume from")


def test_cli_train_rejects_a_stem_without_convolutions(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _cli_train.register(sub)
    with pytest.raises(SystemExit) as excinfo:
        parser.parse_args(["train", "--out", "x", "--stem-convs", "0"])
    assert excinfo.value.code == 2
    assert "--stem-convs: '0': give 1 or more" in capsys.readouterr().err


def test_cli_defaults_equal_the_library_defaults() -> None:
    lib = train.TrainConfig()
    for name, value in dataclasses.asdict(_cli_train.DEFAULTS).items():
        assert getattr(lib, name) == value, name
    assert _cli_train.DEFAULT_TEACHER == train.DEFAULT_TEACHER
    assert _cli_train.TEACHER_INPUTS == train.TEACHER_INPUTS
    assert _cli_train.LOSSES == train.LOSSES
    assert _cli_train.PRECISIONS == train.PRECISIONS


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


@pytest.mark.parametrize("scale_min", [0.0, 1.5])
def test_a_crop_scale_outside_the_unit_interval_is_refused(
    tmp_path: Path, scale_min: float
) -> None:
    cfg = dataclasses.replace(TINY, scale_min=scale_min)
    with pytest.raises(UsageError, match=f"--scale-min {scale_min}: give a fraction"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_an_unknown_teacher_input_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, teacher_input="yuv")
    with pytest.raises(UsageError, match="--teacher-input 'yuv': give one of rgb, luma"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_an_unknown_loss_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, loss="focal")
    with pytest.raises(UsageError, match="--loss 'focal': give one of bce_iou, structure"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_an_unknown_precision_is_refused_before_any_work(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, precision="fp16")
    with pytest.raises(UsageError, match="--precision 'fp16': give one of fp32, bf16"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def _cpu_with_bf16(monkeypatch: pytest.MonkeyPatch, *, avx512_bf16: bool, amx: bool) -> None:
    # raising=False: the probes are private, and a torch without them must not error here.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "native"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
def test_native_bf16_is_either_avx512_bf16_or_amx(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, native: bool
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=avx512_bf16, amx=amx)
    assert train.native_bf16(torch) is native


@pytest.mark.parametrize(("avx512_bf16", "native"), [(True, True), (False, None)])
def test_native_bf16_with_a_probe_missing_is_unknown_unless_the_other_says_yes(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, native: bool | None
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=avx512_bf16, amx=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert train.native_bf16(torch) is native


def test_bf16_on_a_cpu_without_it_warns_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=False, amx=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = dataclasses.replace(TINY, precision="bf16")
    with (
        caplog.at_level(logging.WARNING, logger="vmafx_saliency.science.train"),
        pytest.raises(InputFileError, match=r"empty holds no \.jpg/\.png images"),
    ):
        train.run_training(out_dir=tmp_path / "run", image_dirs=[empty], cfg=cfg, progress=None)
    assert "no native bf16" in caplog.text
    assert "train with --precision fp32" in caplog.text


@pytest.mark.parametrize(("precision", "native"), [("bf16", True), ("fp32", False)])
def test_no_bf16_warning_where_bf16_is_native_or_not_asked_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, precision: str, native: bool
) -> None:
    _cpu_with_bf16(monkeypatch, avx512_bf16=native, amx=False)
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.science.train"):
        train.warn_if_bf16_emulated(torch, dataclasses.replace(TINY, precision=precision))
    assert caplog.text == ""


def _structure_loss_numpy(logits: np.ndarray, target: np.ndarray) -> float:
    """F3Net's structure loss written out in numpy: the second implementation."""
    total = 0.0
    for z, t in zip(logits[:, 0].astype(np.float64), target[:, 0].astype(np.float64), strict=True):
        padded = np.pad(t, 15)
        box = np.zeros_like(t)
        for dy in range(31):
            for dx in range(31):
                box += padded[dy : dy + t.shape[0], dx : dx + t.shape[1]]
        weight = 1.0 + 5.0 * np.abs(box / 31**2 - t)  # avg_pool2d counts the zero padding
        p = 1.0 / (1.0 + np.exp(-z))
        bce = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        wbce = (weight * bce).sum() / weight.sum()
        inter = (p * t * weight).sum()
        union = ((p + t) * weight).sum()
        total += wbce + 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return total / len(logits)


def _loss_case(
    seed: int, size: tuple[int, int], box: tuple[slice, slice]
) -> tuple[np.ndarray, np.ndarray]:
    """Two maps of logits, against a binary box and against a soft random target."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (2, 1, *size)).astype(np.float32)
    target = np.zeros((2, 1, *size), np.float32)
    target[0, 0][box] = 1.0
    target[1, 0] = rng.random(size, dtype=np.float32)
    return logits, target


def test_structure_loss_matches_a_numpy_implementation() -> None:
    logits, target = _loss_case(3, (24, 20), (slice(5, 15), slice(4, 12)))
    got = train._loss(
        torch, torch.from_numpy(logits), torch.from_numpy(target), 1.0, kind="structure"
    )
    assert float(got) == pytest.approx(_structure_loss_numpy(logits, target), rel=1e-5)


def test_structure_loss_on_an_empty_target_is_bce_plus_iou() -> None:
    # avgpool(0) - 0 = 0: every weight is 1, so both losses are the same number.
    logits = torch.from_numpy(np.random.default_rng(4).normal(0, 1, (2, 1, 16, 16)))
    target = torch.zeros_like(logits)
    plain = train._loss(torch, logits, target, 1.0, kind="bce_iou")
    structure = train._loss(torch, logits, target, 1.0, kind="structure")
    assert float(structure) == pytest.approx(float(plain), rel=1e-6)


def test_fmeasure_loss_matches_the_tp_fp_fn_definition() -> None:
    # The second implementation: F from its three counts, not the simplified sums.
    logits, target = _loss_case(5, (12, 10), (slice(2, 8), slice(3, 7)))
    z, t = logits.astype(np.float64), target.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    bce = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean()
    tp, fp, fn = (
        (p * t).sum((1, 2, 3)),
        (p * (1 - t)).sum((1, 2, 3)),
        ((1 - p) * t).sum((1, 2, 3)),
    )
    f = (1.3 * tp + 1.0) / (1.3 * tp + 0.3 * fn + fp + 1.0)
    want = bce + 0.7 * (1.0 - f).mean()
    got = train._loss(
        torch, torch.from_numpy(logits), torch.from_numpy(target), 0.7, kind="fmeasure"
    )
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_fmeasure_loss_by_hand_at_an_undecided_map() -> None:
    # p = 0.5 everywhere, 20 salient pixels of 100: F = (1.3 * 10 + 1) / (0.3 * 20 + 50 + 1)
    # = 14 / 57, and BCE at a zero logit is ln 2.
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, :2] = 1.0
    got = train._loss(torch, torch.zeros(1, 1, 10, 10), target, 1.0, kind="fmeasure")
    assert float(got) == pytest.approx(math.log(2) + 1.0 - 14 / 57, rel=1e-6)


def test_fmeasure_loss_costs_a_false_positive_more_than_a_miss_of_the_same_area() -> None:
    # beta^2 = 0.3 weighs precision over recall, as the benchmark's max F does; BCE is
    # symmetric at logits of +-6, so the difference is the F term's alone.
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, 2:6, 2:6] = 1.0  # 16 pixels
    exact = torch.where(target > 0, 6.0, -6.0)
    extra = exact.clone()
    extra[0, 0, 7:9, 2:6] = 6.0  # 8 false positives
    missed = exact.clone()
    missed[0, 0, 2:4, 2:6] = -6.0  # 8 misses
    cost = [
        float(train._loss(torch, x, target, 1.0, kind="fmeasure")) for x in (exact, extra, missed)
    ]
    assert cost[0] < cost[2] < cost[1]


def test_channels_last_trains_like_nchw(tmp_path: Path) -> None:
    # NHWC only changes the convolution kernels' summation order: the same run
    # in both layouts starts with the same loss and keeps nearly the same
    # validation figures (batch-2 BatchNorm amplifies the last-bit differences
    # over the steps, so the first epoch is compared tightly, the rest loosely).
    # Attempt 8E's narrower widths and one-convolution stem: the wider, deeper
    # default stem drifts apart faster within the first epoch's three steps,
    # which says nothing about the layout.
    cfg = dataclasses.replace(
        TINY,
        crop=32,
        loss="structure",
        lr=1e-3,
        widths=(8, 24, 32, 32, 40, 40),
        stem_convs=1,
    )
    data, val = _arrays(6, 0), _arrays(2, 1)
    nhwc = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    nchw = train.train_student(
        dataclasses.replace(cfg, channels_last=False), data, val, checkpoint=tmp_path / "b.pt"
    )
    first_a, first_b = nhwc.history[0], nchw.history[0]
    assert first_a.train_loss == pytest.approx(first_b.train_loss, rel=1e-4)
    assert first_a.val_mae == pytest.approx(first_b.val_mae, abs=1e-4)
    for a, b in zip(nhwc.history, nchw.history, strict=True):
        assert a.val_mae == pytest.approx(b.val_mae, abs=5e-3)


def test_bf16_trains_like_fp32_and_keeps_float32_weights(tmp_path: Path) -> None:
    # Autocast rounds the forward pass to bf16 (8 bits of mantissa): the same run
    # starts from the same loss within bf16's rounding and keeps close validation
    # figures, while the weights it saves stay float32 (the export needs them so).
    cfg = dataclasses.replace(TINY, crop=32, lr=1e-3, widths=(8, 24, 32, 32, 40, 40))
    data, val = _arrays(6, 0), _arrays(2, 1)
    fp32 = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    bf16 = train.train_student(
        dataclasses.replace(cfg, precision="bf16"), data, val, checkpoint=tmp_path / "b.pt"
    )
    assert bf16.history[0].train_loss == pytest.approx(fp32.history[0].train_loss, rel=2e-2)
    assert abs(bf16.history[0].train_loss - fp32.history[0].train_loss) > 1e-6  # it acted
    for a, b in zip(fp32.history, bf16.history, strict=True):
        assert b.val_mae == pytest.approx(a.val_mae, abs=2e-2)
    assert all(v.dtype == torch.float32 for v in bf16.best_state.values() if v.is_floating_point())


def test_train_student_itself_refuses_an_unknown_precision(tmp_path: Path) -> None:
    # Called directly (not through run_training) a bad precision must not train fp32 silently.
    cfg = dataclasses.replace(TINY, precision="fp16")
    with pytest.raises(UsageError, match="--precision 'fp16': give one of fp32, bf16"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_the_loss_itself_refuses_an_unknown_kind() -> None:
    # train_student is public: a bad config reaching it directly fails on the first step.
    logits = torch.zeros(1, 1, 4, 4)
    with pytest.raises(UsageError, match="--loss 'focal': give one of bce_iou, structure"):
        train._loss(torch, logits, torch.zeros_like(logits), 1.0, kind="focal")


# --- moving average of the weights (--ema-decay) ------------------------------


def test_the_moving_average_follows_its_formula_across_a_resume(tmp_path: Path) -> None:
    # One step per epoch: after epoch 1 the average is a copy of the weights w1
    # (the first update copies); after epoch 2 it is d * w1 + (1 - d) * w2, by hand.
    decay = 0.75
    cfg = dataclasses.replace(TINY, crop=32, epochs=2, steps_per_epoch=1, ema_decay=decay)
    data, val = _arrays(4, 0), _arrays(2, 1)
    ckpt = tmp_path / "e.pt"
    train.train_student(cfg, data, val, checkpoint=ckpt, stop_after=1)
    first = torch.load(ckpt, weights_only=False)
    w1 = first["model"]
    assert all(torch.equal(first["ema"][f"module.{k}"], w1[k]) for k in w1)
    done = train.train_student(cfg, data, val, checkpoint=ckpt, resume=True)
    second = torch.load(ckpt, weights_only=False)
    w2, avg = second["model"], second["ema"]
    moved = [k for k in w1 if w1[k].is_floating_point() and not torch.equal(w1[k], w2[k])]
    assert moved, "the second step changed no weight"
    for k in moved:
        expected = decay * w1[k] + (1 - decay) * w2[k]
        assert torch.allclose(avg[f"module.{k}"], expected, rtol=1e-5, atol=1e-7), k
    assert all(h.ema_val_max_f is not None and h.ema_val_mae is not None for h in done.history)
    source = "module." if done.best_weights == "ema" else ""
    table = avg if source else w2
    # The selected state is the chosen candidate of the chosen epoch; at epoch 1
    # the raw weights and the average are both w1.
    assert done.best_epoch in (1, 2)
    chosen = w1 if done.best_epoch == 1 else {k: table[f"{source}{k}"] for k in w1}
    assert all(torch.equal(done.best_state[k], chosen[k]) for k in w1)


def test_the_moving_average_is_off_by_default_and_the_raw_weights_are_selected(
    tmp_path: Path,
) -> None:
    cfg = dataclasses.replace(TINY, crop=32, epochs=1)
    outcome = train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "o.pt")
    assert outcome.best_weights == "raw"
    assert outcome.history[0].ema_val_max_f is None
    assert torch.load(tmp_path / "o.pt", weights_only=False)["ema"] is None


def test_a_near_zero_decay_averages_to_the_weights_themselves(tmp_path: Path) -> None:
    # decay 1e-9: the average is the last weights, so it validates like them.
    cfg = dataclasses.replace(TINY, crop=32, epochs=2, ema_decay=1e-9)
    outcome = train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "n.pt")
    for h in outcome.history:
        assert h.ema_val_mae == pytest.approx(h.val_mae, abs=1e-5)
        assert h.ema_val_max_f == pytest.approx(h.val_max_f, abs=1e-5)


def _whole_and_resumed(
    cfg: train.TrainConfig, tmp_path: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoints of an uninterrupted run and of one resumed after epoch 1,
    having checked that both record the same epochs and selection."""
    data, val = _arrays(6, 0), _arrays(2, 1)
    whole = train.train_student(cfg, data, val, checkpoint=tmp_path / "a.pt")
    train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", stop_after=1)
    resumed = train.train_student(cfg, data, val, checkpoint=tmp_path / "b.pt", resume=True)
    strip = [dataclasses.replace(h, seconds=0.0) for h in whole.history]
    assert [dataclasses.replace(h, seconds=0.0) for h in resumed.history] == strip
    assert resumed.best_weights == whole.best_weights
    a = torch.load(tmp_path / "a.pt", weights_only=False)
    b = torch.load(tmp_path / "b.pt", weights_only=False)
    return a, b


def test_resume_reaches_the_same_weights_with_the_moving_average(tmp_path: Path) -> None:
    a, b = _whole_and_resumed(dataclasses.replace(TINY, crop=32, ema_decay=0.9), tmp_path)
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_decay_outside_zero_to_one_is_refused_before_any_work(
    tmp_path: Path, decay: float
) -> None:
    cfg = dataclasses.replace(TINY, ema_decay=decay)
    with pytest.raises(UsageError, match=rf"--ema-decay {decay}: give a decay in \[0, 1\)"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="--ema-decay"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


# --- deep supervision (--side-weight) -----------------------------------------


def test_side_heads_read_the_coarser_decoders_and_leave_the_net_unchanged() -> None:
    torch.manual_seed(0)
    net = StudentUNet((4, 6, 8, 10)).eval()
    before = sum(p.numel() for p in net.parameters())
    sides = SideHeads(net)
    assert sum(p.numel() for p in net.parameters()) == before
    x = torch.rand(1, 3, 37, 50)
    logits, coarse = net.forward_decoder(x)
    assert torch.equal(logits, net.forward_logits(x))
    # Decoders merge into the skips 1/8, 1/4 and 1/2 (widths 8, 6, 4); the last feeds the head.
    assert [tuple(c.shape[1:]) for c in coarse] == [(8, 5, 7), (6, 10, 13)]
    maps = sides(coarse)
    assert [tuple(m.shape) for m in maps] == [(1, 1, 5, 7), (1, 1, 10, 13)]
    with pytest.raises(ValueError, match="1 decoder outputs for 2 side heads"):
        sides(coarse[:1])


def test_the_side_maps_add_their_weighted_loss_to_the_step() -> None:
    torch.manual_seed(1)
    net = StudentUNet((4, 6, 8))
    sides = SideHeads(net)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    cfg = dataclasses.replace(TINY, side_weight=0.5)
    with torch.no_grad():
        logits, coarse = net.forward_decoder(x)
        # One side map, at 1/4 (8x8); its target by hand: the mean of each 4x4 block.
        (side,) = sides(coarse)
        assert tuple(side.shape) == (2, 1, 8, 8)
        target = y.reshape(2, 1, 8, 4, 8, 4).mean(dim=(3, 5))
        main_loss = float(train._loss(torch, logits, y, 1.0))
        side_loss = float(train._loss(torch, side, target, 1.0))
    head = sides.heads[0]
    assert isinstance(head, torch.nn.Conv2d)
    head_before = head.weight.detach().clone()
    optimizer = torch.optim.SGD(list(net.parameters()) + list(sides.parameters()), lr=0.1)
    got = train.optimizer_step(torch, net, optimizer, x, y, cfg, bf16=False, sides=sides)
    assert got == pytest.approx(main_loss + 0.5 * side_loss, rel=1e-5)
    assert side_loss > 0.1  # the side term is not negligible, so the check has teeth
    assert not torch.equal(head.weight, head_before), "the side head got no update"


def test_resume_reaches_the_same_weights_with_side_heads(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, crop=32, side_weight=0.5)
    a, b = _whole_and_resumed(cfg, tmp_path)
    assert a["sides"].keys() == b["sides"].keys()
    assert all(torch.equal(a["sides"][k], b["sides"][k]) for k in a["sides"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # The side loss changes the training: the weights differ from a run without it.
    train.train_student(
        dataclasses.replace(cfg, side_weight=0.0),
        _arrays(6, 0),
        _arrays(2, 1),
        checkpoint=tmp_path / "p.pt",
    )
    plain = torch.load(tmp_path / "p.pt", weights_only=False)
    assert plain["sides"] is None
    assert not all(torch.equal(a["model"][k], plain["model"][k]) for k in a["model"])


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_a_negative_side_weight_is_refused_before_any_work(tmp_path: Path, weight: float) -> None:
    cfg = dataclasses.replace(TINY, side_weight=weight)
    with pytest.raises(UsageError, match=r"--side-weight nan|--side-weight -0.5: give a weight"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="--side-weight"):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def _subnormal_weights(model: Any) -> int:
    """Float32 initialiser values below float32's normal range, counted here, not by train."""
    import onnx

    tiny = np.finfo(np.float32).tiny
    arrays = (onnx.numpy_helper.to_array(t) for t in model.graph.initializer)
    return sum(int(((a != 0) & (np.abs(a) < tiny)).sum()) for a in arrays if a.dtype == np.float32)


def test_flush_subnormal_weights_zeroes_only_the_subnormals() -> None:
    import onnx

    tiny = np.finfo(np.float32).tiny
    values = np.array([tiny / 4, -tiny / 2, tiny, -2.0, 0.0, 1e-30], dtype=np.float32)
    ints = onnx.numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "shape")
    graph = onnx.helper.make_graph(
        [], "g", [], [], initializer=[onnx.numpy_helper.from_array(values, "w"), ints]
    )
    model = onnx.helper.make_model(graph)
    assert train.flush_subnormal_weights(model) == 2
    flushed = onnx.numpy_helper.to_array(model.graph.initializer[0])
    expected = np.array([0.0, 0.0, tiny, -2.0, 0.0, 1e-30], dtype=np.float32)
    np.testing.assert_array_equal(flushed, expected)
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(model.graph.initializer[1]), [1, 2])
    assert train.flush_subnormal_weights(model) == 0


def test_a_student_with_a_tiny_gamma_exports_without_subnormal_weights() -> None:
    import onnx

    torch.manual_seed(0)
    net = StudentUNet((4, 4, 8), stem_convs=1).eval()
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.weight[0] = 2e-38  # folding scales that channel's weights below float32's normal range
    from vmafx_saliency.supply.export import export_onnx_bytes

    raw = onnx.load_from_string(export_onnx_bytes(net, opset=train.OPSET))
    # The folded export must carry subnormal weights for this test to mean anything.
    assert _subnormal_weights(raw) > 0
    assert _subnormal_weights(onnx.load_from_string(train.student_onnx_bytes(net))) == 0


@pytest.mark.skipif(not COMMITTED_STUDENT.is_file(), reason="the committed student is absent")
def test_the_committed_student_has_no_subnormal_weights() -> None:
    import onnx

    assert _subnormal_weights(onnx.load_from_string(COMMITTED_STUDENT.read_bytes())) == 0


def test_a_missing_teacher_says_where_train_looks_by_default(tmp_path: Path) -> None:
    with pytest.raises(
        InputFileError,
        match=rf"teacher .*missing\.onnx is neither a file nor a registry id: .* --output "
        rf"{re.escape(str(train.DEFAULT_TEACHER))}\)",
    ):
        train.load_teacher(tmp_path / "missing.onnx")
    assert train.DEFAULT_TEACHER.is_absolute()  # the hint works from any folder
