"""Tiny ONNX models built in tests with onnx.helper (no torch needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def nan_on_bright_model(*, threshold: float = 1.5, kernel: int = 15) -> bytes:
    """A model that meets the contract on the loader's probe inputs (random
    N(0, 1), whose local averages stay near 0) but puts NaN into the map where
    the pre-processed input averages above ``threshold`` over a ``kernel``-wide
    window: a white frame (about 2.4 after ImageNet mean/std) does.

    Allowlisted ops only: Conv(average) -> Relu(avg - threshold) -> two Conv
    x1e30 (overflow to inf where positive) -> Conv x0 (0 * inf = NaN, 0 * finite = 0)
    -> Add to a plain Conv -> Sigmoid.
    """
    rng = np.random.default_rng(0)
    average = np.full((1, 3, kernel, kernel), 1.0 / (3 * kernel * kernel), np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w", "zero"], ["plain"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["input", "average", "shift"], ["local"], pads=[kernel // 2] * 4),
        helper.make_node("Relu", ["local"], ["excess"]),
        helper.make_node("Conv", ["excess", "huge", "zero"], ["big"]),
        helper.make_node("Conv", ["big", "huge", "zero"], ["inf"]),
        helper.make_node("Conv", ["inf", "nil", "zero"], ["nan"]),
        helper.make_node("Add", ["plain", "nan"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["saliency_map"]),
    ]
    initializer = [
        numpy_helper.from_array((rng.normal(size=(1, 3, 3, 3)) * 0.1).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        numpy_helper.from_array(average, "average"),
        numpy_helper.from_array(np.array([-threshold], np.float32), "shift"),
        numpy_helper.from_array(np.full((1, 1, 1, 1), 1e30, np.float32), "huge"),
        numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "nil"),
    ]
    return _saliency_graph(nodes, initializer, name="nan_on_bright")


def refused_on_bright_model(*, threshold: float = 1.5, kernel: int = 15) -> bytes:
    """A model that meets the contract on the loader's probe inputs but that ONNX
    Runtime refuses to run (an error, not a map) where the pre-processed input
    averages above ``threshold`` over a ``kernel``-wide window, as a white frame does.

    Allowlisted ops only: Conv(average) -> Relu(avg - threshold) -> Conv x1000
    -> Cast to int64 -> Gather from a one-value table (index 0 in bounds; 1 or
    more, an excess above 0.001, out of bounds, which ONNX Runtime raises) ->
    Conv x0 -> Sigmoid.
    """
    average = np.full((1, 3, kernel, kernel), 1.0 / (3 * kernel * kernel), np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "average", "shift"], ["local"], pads=[kernel // 2] * 4),
        helper.make_node("Relu", ["local"], ["excess"]),
        helper.make_node("Conv", ["excess", "gain", "zero"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["looked_up"]),
        helper.make_node("Conv", ["looked_up", "nil", "zero"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["saliency_map"]),
    ]
    initializer = [
        numpy_helper.from_array(average, "average"),
        numpy_helper.from_array(np.array([-threshold], np.float32), "shift"),
        numpy_helper.from_array(np.full((1, 1, 1, 1), 1e3, np.float32), "gain"),
        numpy_helper.from_array(np.zeros(1, np.float32), "table"),
        numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "nil"),
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
    ]
    return _saliency_graph(nodes, initializer, name="refused_on_bright")


def endless_loop_model() -> bytes:
    """A conforming graph but for a Loop of 2^62 trips (a count a scanner cannot bound)."""
    trip = helper.make_node(
        "Constant", [], ["trip"], value=helper.make_tensor("t", TensorProto.INT64, [], [2**62])
    )
    cond = helper.make_node(
        "Constant", [], ["cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [1])
    )
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Relu", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
    )
    loop = helper.make_node("Loop", ["trip", "cond", "input"], ["looped"], body=body)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [0.1, 0.1, 0.1])
    conv = helper.make_node("Conv", ["looped", "w"], ["logits"])
    sigmoid = helper.make_node("Sigmoid", ["logits"], ["saliency_map"])
    dims: list[int | str] = [1, 3, "height", "width"]
    graph = helper.make_graph(
        [trip, cond, loop, conv, sigmoid],
        "endless",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info(
                "saliency_map", TensorProto.FLOAT, [1, 1, "height", "width"]
            )
        ],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def _saliency_graph(nodes: list[Any], initializer: list[Any], *, name: str) -> bytes:
    """``input`` [1, 3, H, W] to ``saliency_map`` [1, 1, H, W], opset 17, checked."""
    dims: list[int | str] = [1, 3, "height", "width"]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("saliency_map", TensorProto.FLOAT, [1, 1, *dims[2:]])],
        initializer=initializer,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
