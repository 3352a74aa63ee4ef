"""The student as a file: its convolutions read back, subnormal weights flushed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import COMMITTED_STUDENT, _conv_graph  # noqa: E402
from vmafx_saliency.errors import (  # noqa: E402
    InputFileError,
)
from vmafx_saliency.nets.student import StudentUNet  # noqa: E402
from vmafx_saliency.science import train  # noqa: E402


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
