"""Reading checkpoints: hostile, foreign, cut short or unreadable files are refused unrun."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import TINY, _arrays, _assert_init_from_refused  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    InputFileError,
    UsageError,
)
from vmafx_saliency.science import train  # noqa: E402


class _TouchOnLoad:
    """Unpickling this creates ``marker``: what a hostile checkpoint.pt could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


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


def test_an_unreadable_checkpoint_is_not_called_unparseable(tmp_path: Path) -> None:
    # A folder stands for any file that cannot be read: the checkpoint may be fine.
    with pytest.raises(InputFileError, match=r"--resume from .*: cannot be read \(.*\): check"):
        train.load_checkpoint(tmp_path, flag="--resume from")


def test_resume_from_a_checkpoint_whose_tensors_do_not_fit_says_to_start_afresh(
    tmp_path: Path,
) -> None:
    # Its config is this run's, a tensor is sliced: torch's load_state_dict would raise.
    cfg = dataclasses.replace(TINY, crop=32, epochs=2)
    checkpoint = tmp_path / "checkpoint.pt"
    train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=checkpoint, stop_after=1)
    state = torch.load(checkpoint, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = state["model"][name][:1]
    torch.save(state, checkpoint)
    with pytest.raises(
        InputFileError,
        match=r"--resume from .*checkpoint\.pt: its weights or records do not fit this run's "
        rf"net \(.*size mismatch for {re.escape(name)}.*\): start afresh without --resume",
    ):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=checkpoint, resume=True)


def test_resume_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    # A mistyped --out would otherwise start a long run afresh without a word.
    with pytest.raises(UsageError, match=r"--resume: no checkpoint .*nothing\.pt to resume from"):
        train.train_student(
            dataclasses.replace(TINY, crop=32),
            _arrays(4, 0),
            _arrays(2, 1),
            checkpoint=tmp_path / "nothing.pt",
            resume=True,
        )
    assert not (tmp_path / "nothing.pt").exists()
