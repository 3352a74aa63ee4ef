"""The whole run: a tiny end-to-end training, resume on other data, limits, refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import TINY  # noqa: E402
from vmafx_saliency._util import sha256_bytes  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    InputFileError,
    UsageError,
)
from vmafx_saliency.science import train  # noqa: E402
from vmafx_saliency.supply import contract  # noqa: E402
from vmafx_saliency.supply import scan as onnxscan  # noqa: E402
from vmafx_saliency.supply.registry import Sidecar  # noqa: E402


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
    from vmafx_saliency import schemas

    assert schemas.problems("export-manifest", manifest) == []  # what 'card --manifest' takes
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


def test_no_file_of_out_may_be_an_input_of_the_run_even_with_force(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    # Fine-tuning "in place": --out holds the model started from, or the teacher.
    out = tmp_path / "ft"
    out.mkdir()
    student = out / f"{train.MODEL_ID}.onnx"
    student.write_bytes(tiny_teacher.read_bytes())
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(b"a checkpoint")
    for teacher, init_from, said in (
        (tiny_teacher, str(student), f"--out's {student.name} {student} is --init-from"),
        (tiny_teacher, str(checkpoint), "--out's checkpoint.pt .* is --init-from"),
        (student, None, f"--out's {student.name} {student} is --teacher"),
    ):
        cfg = dataclasses.replace(TINY, init_from=init_from)
        with pytest.raises(UsageError, match=said + r".*: give the outputs paths apart"):
            train.run_training(
                out_dir=out,
                image_dirs=[six_images],
                teacher=teacher,
                cfg=cfg,
                cache_root=tmp_path / "cache",
                progress=None,
                force=True,
            )
    assert student.read_bytes() == tiny_teacher.read_bytes()
    assert checkpoint.read_bytes() == b"a checkpoint"
    with pytest.raises(UsageError, match=r"--out's \S+ \S+ is in --images "):
        train.run_training(out_dir=six_images / "run", image_dirs=[six_images],
                           teacher=tiny_teacher, cfg=TINY, progress=None)  # fmt: skip


def test_an_image_folder_may_not_share_the_label_cache(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    # Labels are written there and stale ones removed: images there could be lost,
    # and labels put among images would be read back as images.
    cache = tmp_path / "lc"
    images = cache / "9faa5da10243da3a"
    shutil.copytree(six_images, images)
    before = sorted(p.name for p in images.iterdir())
    for root, said in ((cache, "holds --images"), (six_images / "lc", "is in --images")):
        folder = images if root == cache else six_images
        with pytest.raises(UsageError, match=rf"--label-cache \S+ {said} \S+: give the outputs"):
            train.run_training(out_dir=tmp_path / "run", image_dirs=[folder], cache_root=root,
                               teacher=tiny_teacher, cfg=TINY, progress=None)  # fmt: skip
    assert sorted(p.name for p in images.iterdir()) == before
    assert not (tmp_path / "run").exists()


def test_an_image_linked_into_the_label_cache_is_refused(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    # The folder is apart from the cache, but one of its images is a link into it.
    from PIL import Image

    cache = tmp_path / "lc"
    kept = cache / "9faa5da10243da3a" / f"{'0' * 64}.png"  # named as a label would be
    kept.parent.mkdir(parents=True)
    rgb = np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(kept)  # an image of its own: images are told apart by content
    folder = tmp_path / "images"
    shutil.copytree(six_images, folder)
    (folder / "linked.png").symlink_to(kept)
    with pytest.raises(UsageError, match=r"--label-cache \S+ holds a training image \S+linked"):
        train.run_training(out_dir=tmp_path / "run", image_dirs=[folder], cache_root=cache,
                           teacher=tiny_teacher, cfg=TINY, progress=None)  # fmt: skip
    assert kept.is_file()


def test_resume_without_a_checkpoint_in_out_is_refused_before_labelling(
    tmp_path: Path, six_images: Path, tiny_teacher: Path
) -> None:
    with pytest.raises(UsageError, match=r"--resume: no checkpoint .*typo/checkpoint\.pt"):
        train.run_training(
            out_dir=tmp_path / "typo",
            image_dirs=[six_images],
            teacher=tiny_teacher,
            cache_root=tmp_path / "cache",
            cfg=TINY,
            resume=True,
            progress=None,
        )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "typo").exists()


@pytest.mark.parametrize(
    ("files", "said"),
    [
        (None, r"--parity-images: image folder .*parity not found"),
        ({"a.png": b"not a png"}, r"cannot decode .*parity/a\.png"),
    ],
)
def test_bad_parity_images_are_refused_before_labelling(
    tmp_path: Path,
    six_images: Path,
    tiny_teacher: Path,
    files: dict[str, bytes] | None,
    said: str,
) -> None:
    parity = tmp_path / "parity"
    if files is not None:
        parity.mkdir()
        for name, data in files.items():
            (parity / name).write_bytes(data)
    with pytest.raises(InputFileError, match=said):
        train.run_training(
            out_dir=tmp_path / "run",
            image_dirs=[six_images],
            teacher=tiny_teacher,
            cache_root=tmp_path / "cache",
            cfg=TINY,
            parity_images=parity,
            progress=None,
        )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()
