from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests._onnx_models import conv_sigmoid_model, endless_loop_model
from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import ContractError, InputFileError, ScanError
from vmafx_saliency.supply.contract import check_contract_bytes, check_contract_file


def test_conforming_model_passes_at_two_sizes() -> None:
    report = check_contract_bytes(conv_sigmoid_model(), source="tiny")
    assert [(r.height, r.width) for r in report.runs] == [(64, 96), (75, 133)]
    for run in report.runs:
        assert run.output_shape == (1, 1, run.height, run.width)
        assert 0.0 <= run.minimum <= run.maximum <= 1.0
    assert report.input_shape[2:] == ("height", "width")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_name": "image"}, r"input is named 'image', the contract wants 'input'"),
        ({"output_name": "d0"}, r"output is named 'd0', the contract wants 'saliency_map'"),
        ({"extra_outputs": 1}, r"2 outputs .*exactly one"),
        ({"height": 320, "width": 320}, r"fixed H, W \(320, 320\).*dynamic"),
        ({"elem_type": TensorProto.DOUBLE, "conv": False}, r"type tensor\(double\).*float32"),
        ({"in_channels": 1}, r"input 'input' has 1 channels, the contract wants 3"),
        ({"out_channels": 2}, r"output 'saliency_map' has 2 channels, the contract wants 1"),
        ({"tail_ops": (), "weight_scale": 5.0}, r"values in \[.*\], the contract wants \[0, 1\]"),
        ({"tail_ops": ("Sqrt",), "weight_scale": 1.0}, r"NaN or infinite"),
    ],
)
def test_contract_violations_are_named(kwargs: dict[str, object], message: str) -> None:
    data = conv_sigmoid_model(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ContractError, match=message):
        check_contract_bytes(data, source="bad.onnx")


def test_wrong_output_size_is_refused() -> None:
    # A stride-2 pool halves the map while the declared output stays symbolic:
    # only running the model catches it.
    model = onnx.load_from_string(conv_sigmoid_model())
    pool = helper.make_node("MaxPool", ["t1"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2])
    model.graph.node.insert(2, pool)
    model.graph.node[3].input[0] = "pooled"
    with pytest.raises(
        ContractError, match=r"64x96 input gave an output of shape \[1, 1, 32, 48\]"
    ):
        check_contract_bytes(model.SerializeToString(), source="bad.onnx")


def test_unloadable_bytes_are_refused() -> None:
    with pytest.raises(ContractError, match=r"junk.onnx: ONNX Runtime cannot load the model"):
        check_contract_bytes(b"not an onnx model", source="junk.onnx")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"model .*absent\.onnx: no such file"):
        check_contract_file(tmp_path / "absent.onnx")


def test_the_contract_of_a_file_is_checked_only_after_the_scan(tmp_path: Path) -> None:
    """ONNX Runtime gets only bytes the scanner passed, from the contract command too."""
    from tests._trust import custom_domain_model

    bad = tmp_path / "custom.onnx"
    bad.write_bytes(custom_domain_model())
    with pytest.raises(ScanError, match=r"custom op domain"):
        check_contract_file(bad)


def test_cli_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.onnx"
    good.write_bytes(conv_sigmoid_model())
    assert main(["contract", str(good)]) == 0
    assert "contract OK" in capsys.readouterr().out

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(conv_sigmoid_model(input_name="image"))
    assert main(["contract", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "input is named 'image'" in err
    assert "Traceback" not in err


def test_cli_verbose_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(conv_sigmoid_model(output_name="d0"))
    assert main(["-v", "contract", str(bad)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_contract_mirror(mirror_onnx: Path) -> None:
    report = check_contract_file(mirror_onnx)
    assert len(report.runs) == 2


def test_a_probe_that_never_ends_is_stopped_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.supply import contract

    monkeypatch.setattr(contract, "PROBE_SECONDS", 0.5)
    path = tmp_path / "endless.onnx"
    path.write_bytes(endless_loop_model())
    with pytest.raises(
        ContractError, match=r"endless\.onnx: a 64x96 probe did not finish within 0\.5 s"
    ):
        check_contract_file(path)  # it passes the scan: Loop is on the allowlist


def test_a_file_over_the_size_cap_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmafx_saliency.supply import scan as onnxscan

    path = tmp_path / "big.onnx"
    path.write_bytes(conv_sigmoid_model())
    monkeypatch.setattr(onnxscan, "DEFAULT_MAX_BYTES", 100)
    with pytest.raises(
        InputFileError, match=r"big\.onnx: \d+ bytes, over the cap of 100, and was not"
    ):
        check_contract_file(path)
