"""Tiny ONNX models built in tests with onnx.helper (no torch needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_sigmoid_model(
    *,
    input_name: str = "input",
    output_name: str = "saliency_map",
    in_channels: int = 3,
    out_channels: int = 1,
    height: int | str = "height",
    width: int | str = "width",
    elem_type: int = TensorProto.FLOAT,
    tail_ops: Sequence[str] = ("Sigmoid",),
    weight_scale: float = 0.1,
    extra_outputs: int = 0,
    opset: int = 17,
    seed: int = 0,
    conv: bool = True,
) -> bytes:
    """input -> Conv3x3 -> tail ops -> output; the default meets the contract."""
    rng = np.random.default_rng(seed)
    np_dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    weight = (rng.normal(size=(out_channels, in_channels, 3, 3)) * weight_scale).astype(np_dtype)
    bias = np.zeros(out_channels, dtype=np_dtype)
    nodes = [
        helper.make_node("Conv", [input_name, "w", "b"], ["t0"], pads=[1, 1, 1, 1])
        if conv
        else helper.make_node("Identity", [input_name], ["t0"])
    ]
    current = "t0"
    for i, op in enumerate(tail_ops):
        nodes.append(helper.make_node(op, [current], [f"t{i + 1}"]))
        current = f"t{i + 1}"
    nodes.append(helper.make_node("Identity", [current], [output_name]))
    outputs = [
        helper.make_tensor_value_info(output_name, elem_type, [1, out_channels, height, width])
    ]
    for k in range(extra_outputs):
        nodes.append(helper.make_node("Identity", [current], [f"extra{k}"]))
        outputs.append(
            helper.make_tensor_value_info(f"extra{k}", elem_type, [1, out_channels, height, width])
        )
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, elem_type, [1, in_channels, height, width])],
        outputs,
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
        if conv
        else [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
