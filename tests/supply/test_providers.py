"""Execution providers: chosen by name, refused when missing, never a silent CPU fallback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnxruntime as ort
import pytest

from tests._onnx_models import conv_sigmoid_model
from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency.errors import UsageError
from vmafx_saliency.supply import contract, providers


def test_the_cpu_runs_by_default_and_says_so() -> None:
    session = contract.make_session(conv_sigmoid_model(), source="m.onnx")
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "cpu" in providers.available()


def test_an_unknown_provider_is_refused_with_the_names() -> None:
    with pytest.raises(UsageError, match=r"provider 'gpu': give one of cpu, cuda, tensorrt"):
        providers.provider_id("gpu")


def test_a_provider_this_onnxruntime_lacks_lists_those_it_has() -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(
        UsageError,
        match=rf"provider 'cuda': this onnxruntime {ort.__version__} has cpu; for cuda or "
        r"tensorrt install onnxruntime-gpu in place of onnxruntime",
    ):
        contract.make_session(conv_sigmoid_model(), source="m.onnx", provider="cuda")


def test_a_provider_that_does_not_start_is_an_error_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime really has CUDA")
    # As an onnxruntime-gpu whose CUDA libraries are missing: listed, then not started.
    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ONNX Runtime's own warning about the fallback
        with pytest.raises(
            UsageError,
            match=r"m\.onnx: the cuda provider did not start \(ONNX Runtime fell back to "
            r"CPUExecutionProvider\): check its libraries and drivers, or run with --provider cpu",
        ):
            contract.make_session(conv_sigmoid_model(), source="m.onnx", provider="cuda")


def test_extract_records_the_provider_and_refuses_a_missing_one(
    tmp_path: Path, capsys: Capture, videos_dir: Path
) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    clip = videos_dir / "foreman_cif.mp4"
    out = tmp_path / "out.json"
    code, _, err = run(capsys, "extract", clip, "--frames", "0:2", "--provider", "cuda", "-o", out)
    assert code == 2 and "provider 'cuda': this onnxruntime" in one_line_error(err, "extract")
    assert not out.exists()
    code, _, _ = run(capsys, "extract", clip, "--frames", "0:2", "-o", out)
    assert code == 0
    assert json.loads(out.read_text())["model"]["provider"] == "cpu"


def test_the_api_takes_a_provider(videos_dir: Path) -> None:
    from vmafx_saliency import extract_features

    clip = videos_dir / "foreman_cif.mp4"
    with pytest.raises(UsageError, match=r"provider='gpu': give one of 'cpu', 'cuda'"):
        extract_features(clip, frames=(0, 2), provider="gpu")
    assert extract_features(clip, frames=(0, 2), provider="cpu").run.provider == "cpu"
