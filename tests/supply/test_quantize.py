"""The QDQ transform: a tiny model quantised on real-looking inputs, opsets stripped."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from tests._onnx_models import conv_sigmoid_model
from vmafx_saliency.errors import UsageError
from vmafx_saliency.supply import scan
from vmafx_saliency.supply.quantize import QuantRecipe, quantize_qdq, strip_unused_opsets


def _inputs(count: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(1, 3, 24, 32)).astype(np.float32) for _ in range(count)]


def _run(data: bytes, tensor: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(["saliency_map"], {"input": tensor})
    return np.asarray(out)


def test_a_quantised_model_scans_clean_and_stays_close_to_its_parent() -> None:
    parent = conv_sigmoid_model()
    data = quantize_qdq(parent, _inputs(), recipe=QuantRecipe())
    model = onnx.load_from_string(data)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Sigmoid"} <= ops
    assert [o.domain for o in model.opset_import] == [""]  # ORT's extra domains stripped
    assert scan.scan_bytes(data).allowed, scan.scan_bytes(data).render()
    tensor = _inputs(1, seed=7)[0]
    # Sigmoid of an int8 convolution: within 0.02 of the float model on new inputs.
    assert np.abs(_run(data, tensor) - _run(parent, tensor)).max() < 0.02


def test_nodes_kept_in_float_are_not_quantised() -> None:
    parent = onnx.load_from_string(conv_sigmoid_model())
    conv = next(n for n in parent.graph.node if n.op_type == "Conv")
    conv.name = "first_conv"
    data = quantize_qdq(
        parent.SerializeToString(), _inputs(), recipe=QuantRecipe(keep_float=("first_conv",))
    )
    model = onnx.load_from_string(data)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    weights = {t.name: t.data_type for t in model.graph.initializer}
    # Its weight is the float initializer itself, not the output of a DequantizeLinear.
    assert weights[conv.input[1]] == onnx.TensorProto.FLOAT
    producers = {out for n in model.graph.node for out in n.output}
    assert conv.input[0] in producers or conv.input[0] == "input"
    assert conv.input[1] not in producers


def test_strip_unused_opsets_keeps_the_used_domains() -> None:
    model = onnx.load_from_string(conv_sigmoid_model())
    model.opset_import.extend(
        [helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    strip_unused_opsets(model)
    assert [o.domain for o in model.opset_import] == [""]


def test_no_calibration_input_is_refused() -> None:
    with pytest.raises(UsageError, match=r"no calibration input"):
        quantize_qdq(conv_sigmoid_model(), [], recipe=QuantRecipe())


@pytest.mark.parametrize(
    ("recipe", "why"),
    [
        ({"method": "median"}, r"calibration method 'median': give one of minmax, entropy"),
        ({"percentile": 50.0}, r"percentile 50\.0: give a value in \[90, 100\)"),
    ],
)
def test_a_bad_recipe_is_refused(recipe: dict[str, object], why: str) -> None:
    with pytest.raises(UsageError, match=why):
        QuantRecipe(**recipe)  # type: ignore[arg-type]


def test_an_unknown_node_to_keep_in_float_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--keep-float 'no_such_node': no node of that name"):
        quantize_qdq(
            conv_sigmoid_model(), _inputs(), recipe=QuantRecipe(keep_float=("no_such_node",))
        )


def _three_convs() -> bytes:
    """x -> Conv a -> Relu -> Conv b -> Relu -> Conv c -> y. Conv b's output channels
    differ 1000-fold in weight scale, which one int8 scale for the tensor cannot hold."""
    from onnx import TensorProto, numpy_helper

    rng = np.random.default_rng(3)
    wa = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    wb = rng.normal(size=(4, 4, 3, 3)).astype(np.float32)
    wb[1:] *= 1e-3
    wb[1:] += 1e-3  # positive: the small channels survive the Relu
    wc = np.ones((1, 4, 1, 1), np.float32)
    wc[0, 0] = 0.0  # y sums the small channels only
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1], name="conv_a"),
        helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
        helper.make_node("Conv", ["ra", "wb"], ["b"], pads=[1, 1, 1, 1], name="conv_b"),
        helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
        helper.make_node("Conv", ["rb", "wc"], ["y"], name="conv_c"),
    ]
    graph = helper.make_graph(
        nodes,
        "three",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[
            numpy_helper.from_array(w, n) for w, n in ((wa, "wa"), (wb, "wb"), (wc, "wc"))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_a_node_kept_in_float_runs_in_float_in_the_products_sessions() -> None:
    from vmafx_saliency.supply.contract import make_session

    rng = np.random.default_rng(4)
    inputs = [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(8)]
    data = quantize_qdq(
        _three_convs(), inputs, recipe=QuantRecipe(keep_float=("conv_b", "relu_b")), input_name="x"
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # The reference: the graph as written, conv_b in float between its DQ and Q.
    written = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    ours = make_session(data, source="test")
    stock = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = {"x": inputs[0]}
    want = written.run(None, x)[0]
    ours_error = np.abs(ours.run(None, x)[0] - want).max()
    stock_error = np.abs(stock.run(None, x)[0] - want).max()
    # ONNX Runtime's defaults quantise conv_b's weights per tensor at load: the small
    # channels' weights round to zero and y loses them.
    assert stock_error > 10 * max(ours_error, 1e-6), (stock_error, ours_error)


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calibration_in_chunks_holds_few_inputs_at_once(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.quantization.calibrate import HistogramCalibrater, MinMaxCalibrater

    from vmafx_saliency.supply import quantize as q

    parent, recipe = conv_sigmoid_model(), QuantRecipe(method=method)  # type: ignore[arg-type]
    whole = quantize_qdq(parent, _inputs(), recipe=recipe)  # all 16 fit: one chunk
    held: list[int] = []
    cls = MinMaxCalibrater if method == "minmax" else HistogramCalibrater
    real = cls.clear_collected_data

    def clear(self: HistogramCalibrater) -> None:
        held.append(len(self.intermediate_outputs))
        real(self)

    monkeypatch.setattr(cls, "clear_collected_data", clear)
    monkeypatch.setattr(q, "CALIBRATION_MEMORY_FRACTION", 1e-12)  # room for one input
    chunked = quantize_qdq(parent, _inputs(), recipe=recipe)
    assert held and max(held) == 1 and sum(held) == 16  # every input, one at a time
    if method == "minmax":  # ranges merge exactly: the same model
        assert chunked == whole
    tensor = _inputs(1, seed=7)[0]
    # Histograms grown input by input give a model as close to the parent as one pass.
    for data in (whole, chunked):
        assert np.abs(_run(data, tensor) - _run(parent, tensor)).max() < 0.05
    assert cls.collect_data.__module__ == "onnxruntime.quantization.calibrate"  # put back
