"""The contract probe in a child process under a budget: hostile models cost at most that."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests._onnx_models import conv_sigmoid_model, endless_loop_model
from tests._trust import custom_domain_model
from tests.supply.test_scan import IR8, _node, enc_len
from vmafx_saliency.errors import ContentRefused, ContractError, ContractRefused, UsageError
from vmafx_saliency.supply import contract, loader, probe, scan
from vmafx_saliency.supply.registry import Sidecar

FLOAT = TensorProto.FLOAT


def _upsample_then_pool_model(levels: int = 5) -> bytes:
    """The review's model: Resize x2 ``levels`` times, then MaxPool back down.

    It meets the contract at every size, but one frame needs (2^levels)^2 times
    the frame's pixels in memory: 25 MB a tensor for the 64x96 probe, 420 MB for
    a 320x320 frame.
    """
    weight = numpy_helper.from_array(np.full((1, 3, 1, 1), 0.1, np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Conv", ["input", "w"], ["t0"])]
    for i in range(levels):
        nodes.append(helper.make_node("Resize", [f"t{i}", "", "scales"], [f"t{i + 1}"]))
    kernel = 2**levels
    nodes += [
        helper.make_node(
            "MaxPool",
            [f"t{levels}"],
            ["p"],
            kernel_shape=[kernel, kernel],
            strides=[kernel, kernel],
        ),
        helper.make_node("Sigmoid", ["p"], ["saliency_map"]),
    ]
    graph = helper.make_graph(
        nodes,
        "upsample_pool",
        [helper.make_tensor_value_info("input", FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("saliency_map", FLOAT, [1, 1, "h", "w"])],
        initializer=[weight, scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _sidecar(tmp_path: Path, size: list[int]) -> Sidecar:
    from tests._trust import MIRROR_SIDECAR

    doc = json.loads(MIRROR_SIDECAR.read_text())
    doc["model_id"] = "probe_test"
    doc["preprocessing"]["inference_size"] = size
    path = tmp_path / "probe_test.sidecar.json"
    path.write_text(json.dumps(doc))
    return Sidecar.load(path)


@pytest.fixture(autouse=True)
def _fresh_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "_VERDICTS", {})
    monkeypatch.setattr(probe, "_SCANS", {})


def _no_session_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process must never build a session of the refused bytes: only the child does."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parent built a session of a model the probe refused")

    monkeypatch.setattr(contract, "make_session", refuse)


def test_a_model_too_big_for_one_frame_is_refused_at_its_inference_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pool.onnx"
    path.write_bytes(_upsample_then_pool_model())
    monkeypatch.setenv(probe.ENV["frame_mib"], "400")  # one of its tensors is 420 MB
    # At the probe sizes only (no sidecar), it passes: the contract is met.
    assert [r.height for r in contract.check_contract_bytes(path.read_bytes(), source="x").runs]
    _no_session_here(monkeypatch)
    started = time.monotonic()
    with pytest.raises(
        ContractRefused,
        match=r"pool\.onnx: one 320x320 frame takes [\d,]+ MiB, over the limit of 400 MiB: "
        r"refused; an operator who trusts the model can raise \$VMAFX_SALIENCY_FRAME_MEMORY_MIB",
    ):
        loader.load_ad_hoc(path, sidecar=_sidecar(tmp_path, [320, 320]))
    assert time.monotonic() - started < 60


def test_a_child_over_its_address_space_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pool.onnx"
    path.write_bytes(_upsample_then_pool_model())
    monkeypatch.setenv(probe.ENV["memory_mib"], "700")
    _no_session_here(monkeypatch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(
        ContractRefused,
        match=r"pool\.onnx at the contract check: .*pool\.onnx: the probe ran out of its 700 MiB "
        r"of address space: refused; an operator who trusts the model can raise "
        r"\$VMAFX_SALIENCY_PROBE_MEMORY_MIB",
    ):
        loader.load_ad_hoc(path, sidecar=_sidecar(tmp_path, [320, 320]))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200  # the gigabytes were the child's, within its budget


def test_a_probe_past_its_wall_clock_budget_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(probe.ENV["wall_seconds"], "3")  # the child's own stop is at 30 s
    started = time.monotonic()
    with pytest.raises(
        ContractError,
        match=r"^endless: probing the model did not end within 3 s .*: refused; an operator "
        r"who trusts it can raise \$VMAFX_SALIENCY_PROBE_SECONDS$",
    ):
        contract.check_contract_bytes(endless_loop_model(), source="endless")
    assert time.monotonic() - started < 20


def test_budget_variables_are_checked() -> None:
    assert probe.Budget.from_env() == probe.Budget()
    with pytest.MonkeyPatch.context() as m:
        m.setenv(probe.ENV["cpu_seconds"], "lots")
        with pytest.raises(Exception, match=r"\$VMAFX_SALIENCY_PROBE_CPU_SECONDS='lots': give"):
            probe.Budget.from_env()


def test_a_verdict_is_kept_for_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = conv_sigmoid_model()
    first = probe.probe(data, source="a", sizes=[(64, 96)])
    calls: list[object] = []
    monkeypatch.setattr(probe, "_run_child", lambda *a, **k: calls.append(a))
    assert probe.probe(data, source="a", sizes=[(64, 96)]) == first
    assert calls == []  # no second child for the same model, sizes and budget


# --- the scan in a child ---------------------------------------------------------------


def _slow_to_scan_model(nodes: int = 2000) -> bytes:
    """Within every count limit, yet millions of fields: seconds of the scanner's CPU."""
    return IR8 + enc_len(7, enc_len(1, _node("Relu", 1000)) * nodes)


@pytest.mark.parametrize(
    "data",
    [
        conv_sigmoid_model(),
        custom_domain_model(),
        conv_sigmoid_model()[:-7],  # truncated
        b"",
        _slow_to_scan_model(nodes=3),
    ],
    ids=["clean", "custom-domain", "truncated", "empty", "many-fields"],
)
def test_the_childs_report_is_the_in_process_scanners(data: bytes) -> None:
    assert probe.scan_in_child(data, path="m.onnx") == scan.scan_bytes(data, path="m.onnx")


def test_a_custom_allowlist_reaches_the_child() -> None:
    data = conv_sigmoid_model()
    narrow = frozenset({"Conv"})
    report = probe.scan_in_child(data, path="m.onnx", allowlist=narrow)
    assert report == scan.scan_bytes(data, path="m.onnx", allowlist=narrow)
    assert {v.kind for v in report.violations} == {"disallowed-op"}


def test_a_scan_past_its_budget_is_stopped_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _slow_to_scan_model()
    monkeypatch.setenv(probe.ENV["scan_seconds"], "1")
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = scan.scan_bounded(data, path="slow.onnx")
    assert time.monotonic() - started < 15
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100
    assert [v.kind for v in report.violations] == ["over-budget"]
    assert report.violations[0].detail.startswith(
        "scanning went over its budget (8,192 MiB of address space, 1 s of CPU) and was stopped"
    )
    assert "raise $VMAFX_SALIENCY_SCAN_SECONDS" in report.violations[0].detail
    # Through the loader it is refused at the content layer; no session is built.
    path = tmp_path / "slow.onnx"
    path.write_bytes(data)
    _no_session_here(monkeypatch)
    with pytest.raises(ContentRefused, match=r"slow\.onnx at the content check: .*over its budget"):
        loader.load_ad_hoc(path)


def test_a_scan_out_of_memory_is_refused() -> None:
    report = probe.scan_in_child(
        conv_sigmoid_model(), path="m.onnx", budget=probe.Budget(memory_mib=16)
    )
    assert [v.kind for v in report.violations] == ["over-budget"]
    assert "16 MiB of address space" in report.violations[0].detail


@pytest.mark.parametrize("value", ["²", "2147479", "1e3", "-1"])
def test_odd_budget_values_are_one_line_errors(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(probe.ENV["scan_seconds"], value)
    with pytest.raises(UsageError, match=r"give a whole number from 1 to 1,000,000, or unset it"):
        probe.Budget.from_env()


def test_a_child_answer_without_its_fields_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = subprocess.CompletedProcess([], 0, stdout=b'{"ok": true}\n', stderr=b"")
    monkeypatch.setattr(probe, "_spawn", lambda *a, **k: fake)
    report = probe.scan_in_child(conv_sigmoid_model(), path="m.onnx")
    assert [v.kind for v in report.violations] == ["over-budget"]
    with pytest.raises(ContractError, match=r"the probe's child gave no usable verdict"):
        probe.probe(conv_sigmoid_model(), source="m.onnx", sizes=[(64, 96)])
