"""evaluate.models: the cost of a model (parameters and MACs) counted on its ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests._onnx_models import conv_sigmoid_model
from vmafx_saliency.science import evaluate as ev

# --- costs ------------------------------------------------------------------------------------


def test_count_cost_conv() -> None:
    cost = ev.count_cost(conv_sigmoid_model(), (8, 10))
    # 1 output channel x 8 x 10 outputs, each 3 (C_in) x 3 x 3 multiplies
    assert cost.macs == 8 * 10 * 27
    assert cost.params == 28 and cost.note is None


def test_count_cost_grouped_conv() -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["y"], group=3, pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cost = ev.count_cost(model.SerializeToString(), (5, 7))
    assert cost.macs == 3 * 5 * 7 * 9  # C_in / groups = 1
    assert cost.params == 27


def test_the_files_ad_hoc_models_are_read_from(tmp_path: Path) -> None:
    (tmp_path / "a.sidecar.json").write_text("{}")  # found beside a.onnx
    specs = ev.parse_models(f"u2netp_mirror_v1,{tmp_path / 'a.onnx'},{tmp_path / 'b.onnx'}")
    assert ev.spec_inputs(specs) == [
        ("--models", tmp_path / "a.onnx"),
        ("the sidecar", tmp_path / "a.sidecar.json"),
        ("--models", tmp_path / "b.onnx"),
        ("the sidecar", None),
    ]


def test_count_cost_a_model_shape_inference_refuses_loses_only_its_macs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnx

    def refuses(model: object, data_prop: bool = False) -> object:
        raise onnx.shape_inference.InferenceError("[ShapeInferenceError] dims differ")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", refuses)
    cost = ev.count_cost(conv_sigmoid_model(), (8, 10))
    assert cost.params == 28  # 27 weights and a bias, read without inference
    assert cost.macs is None
    assert cost.note == "MACs not counted: [ShapeInferenceError] dims differ"
