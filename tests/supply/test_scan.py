"""The wire-format op-allowlist scanner: hostile models, fuzzing, agreement with onnx."""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import itertools
import json
import os
import random
import re
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import InputFileError, ScanError
from vmafx_saliency.supply import scan as onnxscan
from vmafx_saliency.supply.scan import (
    ScanReport,
    check_bytes,
    load_allowlist,
    scan_bytes,
    scan_file,
)

# protobuf ships no type stubs here; this is what onnx.load raises on bad bytes.
DecodeError: type[Exception] = importlib.import_module("google.protobuf.message").DecodeError

# --- builders ---------------------------------------------------------------

FLOAT = TensorProto.FLOAT
BOOL = TensorProto.BOOL
INT64 = TensorProto.INT64


@contextlib.contextmanager
def raises_kind(kind: str, match: str | None = None) -> Iterator[pytest.ExceptionInfo[ScanError]]:
    """pytest.raises(ScanError, match=...) that also checks the violation's kind."""
    with pytest.raises(ScanError, match=match) as ei:
        yield ei
    assert ei.value.kind == kind


def _vi(name: str, elem: int = FLOAT, shape: Sequence[int | str] | None = None) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(graph: Any, *, opsets: Sequence[tuple[str, int]] = (("", 17),)) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _chain(ops: Sequence[str], *, name: str, first: str = "x", last: str = "y") -> Any:
    """first -> ops... -> last, every op unary."""
    nodes = []
    current = first
    for i, op in enumerate(ops):
        out = last if i == len(ops) - 1 else f"{name}_t{i}"
        nodes.append(helper.make_node(op, [current], [out], name=f"{name}_{i}"))
        current = out
    return helper.make_graph(nodes, name, [_vi(first)], [_vi(last)])


def _branch(ops: Sequence[str], name: str, source: str = "x") -> Any:
    """A subgraph (no inputs) reading ``source`` from the outer scope."""
    g = _chain(ops, name=name, first=source, last=f"{name}_out")
    del g.input[:]
    return g


def conv_model(*, extra_ops: Sequence[str] = ()) -> bytes:
    """A small real model: Conv with initializers -> Relu -> MaxPool -> Sigmoid (+extra)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sigmoid", ["p"], ["s"], name="sigmoid"),
    ]
    current = "s"
    for i, op in enumerate(extra_ops):
        nodes.append(helper.make_node(op, [current], [f"e{i}"], name=f"extra{i}"))
        current = f"e{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="out"))
    graph = helper.make_graph(
        nodes, "conv", [_vi("x", FLOAT, [1, 3, 8, 8])], [_vi("y")], initializer=[w, b]
    )
    return _model(graph)


def if_model(then_ops: Sequence[str], else_ops: Sequence[str] = ("Relu",)) -> bytes:
    cond = helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("c", BOOL, [], [1]))
    node = helper.make_node(
        "If",
        ["cond"],
        ["y"],
        then_branch=_branch(then_ops, "then"),
        else_branch=_branch(else_ops, "else"),
        name="if",
    )
    graph = helper.make_graph([cond, node], "main", [_vi("x")], [_vi("y")])
    return _model(graph)


def _loop_body(ops: Sequence[str], name: str) -> Any:
    inner = _chain(ops, name=name, first="v_in", last="v_out")
    keep = helper.make_node("Identity", ["cond_in"], ["cond_out"], name=f"{name}_cond")
    return helper.make_graph(
        [keep, *inner.node],
        name,
        [_vi("iter", INT64, []), _vi("cond_in", BOOL, []), _vi("v_in")],
        [_vi("cond_out", BOOL, []), _vi("v_out")],
    )


def loop_model(body_ops: Sequence[str], *, loops: int = 1) -> bytes:
    trip = helper.make_node(
        "Constant", [], ["trip"], value=helper.make_tensor("t", INT64, [], [2]), name="trip"
    )
    cond = helper.make_node(
        "Constant", [], ["cond"], value=helper.make_tensor("c", BOOL, [], [1]), name="cond"
    )
    nodes = [trip, cond]
    current = "x"
    for i in range(loops):
        out = "y" if i == loops - 1 else f"l{i}"
        nodes.append(
            helper.make_node(
                "Loop",
                ["trip", "cond", current],
                [out],
                body=_loop_body(body_ops, f"body{i}"),
                name=f"loop{i}",
            )
        )
        current = out
    return _model(helper.make_graph(nodes, "main", [_vi("x")], [_vi("y")]))


def nested_if_model(depth: int) -> tuple[bytes, list[Any]]:
    """If inside If ``depth`` levels deep; returns the bytes and the subgraph per level."""
    innermost = _branch(["Identity"], f"level{depth}")
    graphs = [innermost]
    inner = innermost
    for level in range(depth - 1, -1, -1):
        cond = helper.make_node(
            "Constant", [], [f"cond{level}"], value=helper.make_tensor("c", BOOL, [], [1])
        )
        node = helper.make_node(
            "If",
            [f"cond{level}"],
            [f"level{level}_out"],
            then_branch=inner,
            else_branch=_branch(["Relu"], f"else{level + 1}"),
            name=f"if{level}",
        )
        inner = helper.make_graph([cond, node], f"level{level}", [], [_vi(f"level{level}_out")])
        graphs.insert(0, inner)
    main_graph = graphs[0]
    main_graph.input.append(_vi("x"))
    return _model(main_graph), graphs


def onnx_op_counts(data: bytes) -> dict[str, int]:
    """Independent count via onnx: every node of every graph, subgraphs included."""
    model = onnx.load_from_string(data)
    counts: Counter[str] = Counter()

    def walk_nodes(nodes: Iterable[Any]) -> None:
        for node in nodes:
            if node.domain in ("", "ai.onnx"):
                counts[node.op_type] += 1
            else:
                counts[f"{node.domain}:{node.op_type}"] += 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk_nodes(attr.g.node)
                for g in attr.graphs:
                    walk_nodes(g.node)

    walk_nodes(model.graph.node)
    for function in model.functions:
        walk_nodes(function.node)
    for info in model.training_info:
        walk_nodes(info.initialization.node)
        walk_nodes(info.algorithm.node)
    return dict(counts)


def find_unique(data: bytes, part: bytes) -> int:
    offset = data.find(part)
    assert offset >= 0
    assert data.find(part, offset + 1) == -1, "ambiguous offset in test data"
    return offset


# Raw protobuf encoding, written independently of the scanner.
def enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def enc_key(field: int, wire_type: int) -> bytes:
    return enc_varint(field << 3 | wire_type)


def enc_len(field: int, payload: bytes) -> bytes:
    return enc_key(field, 2) + enc_varint(len(payload)) + payload


IR8 = enc_key(1, 0) + enc_varint(8)  # ModelProto.ir_version = 8


# --- clean models -----------------------------------------------------------


def test_allowlist_is_small_and_covers_the_student_ops() -> None:
    allow = load_allowlist()
    assert {"Conv", "Relu", "MaxPool", "Resize", "Concat", "Sigmoid", "If", "Loop"} <= allow
    assert not {"Scan", "Abs", "StringNormalizer", "Sqrt"} & allow
    assert len(allow) < 25


def test_load_allowlist_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "allow.txt"
    path.write_text("# comment\n\nConv  # trailing comment\nRelu\n", encoding="utf-8")
    assert load_allowlist(path) == frozenset({"Conv", "Relu"})
    path.write_text("Conv Relu\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"allow.txt:1: 'Conv Relu' is not an op name"):
        load_allowlist(path)
    with pytest.raises(InputFileError, match=r"missing\.txt"):
        load_allowlist(tmp_path / "missing.txt")


def test_clean_model_is_allowed_and_counts_match_onnx() -> None:
    data = conv_model()
    report = check_bytes(data, path="conv.onnx")
    assert report.allowed
    assert report.violations == ()
    assert report.size == len(data)
    assert report.ops == onnx_op_counts(data)
    assert list(report.ops) == sorted(report.ops)
    assert report.ops == {"Conv": 1, "Identity": 1, "MaxPool": 1, "Relu": 1, "Sigmoid": 1}
    text = report.render()
    assert text.splitlines()[0].startswith("conv.onnx")
    assert text.splitlines()[-1] == "ALLOWED"
    assert json.loads(json.dumps(report.to_json()))["allowed"] is True


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(if_model(["Relu", "Sigmoid"]), id="if"),
        pytest.param(loop_model(["Relu"], loops=3), id="loops"),
        pytest.param(nested_if_model(5)[0], id="nested-if"),
    ],
)
def test_subgraph_op_counts_match_onnx(data: bytes) -> None:
    report = check_bytes(data)
    assert report.ops == onnx_op_counts(data)
    assert sum(report.ops.values()) > len(onnx.load_from_string(data).graph.node)


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
def test_torch_export_counts_match_onnx() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    functional = torch.nn.functional

    class Tiny(nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.side = nn.Conv2d(8, 1, 1)

        def forward(self, x: Any) -> Any:
            a = functional.relu(self.conv(x))
            up = functional.interpolate(self.pool(a), size=a.shape[2:], mode="bilinear")
            return torch.sigmoid(self.side(torch.cat((up, a), 1)) + 0.5)

    buf = io.BytesIO()
    torch.onnx.export(
        Tiny().eval(),
        (torch.randn(1, 3, 17, 23),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["saliency_map"],
        dynamic_axes={"input": {2: "H", 3: "W"}, "saliency_map": {2: "H", 3: "W"}},
    )
    data = buf.getvalue()
    report = check_bytes(data)
    assert report.ops == onnx_op_counts(data)
    assert {"Conv", "Resize", "MaxPool", "Shape"} <= set(report.ops)


def test_mirror_scans_clean_and_counts_match_onnx(mirror_onnx: Path) -> None:
    report = scan_file(mirror_onnx)
    assert report.allowed, report.render()
    assert report.ops == onnx_op_counts(mirror_onnx.read_bytes())
    assert {"Conv", "Relu", "MaxPool", "Resize", "Concat", "Sigmoid"} <= set(report.ops)


# --- policy violations ------------------------------------------------------


def test_disallowed_op_is_rejected_with_its_offset() -> None:
    data = conv_model(extra_ops=["Abs"])
    node = next(n for n in onnx.load_from_string(data).graph.node if n.op_type == "Abs")
    with raises_kind("disallowed-op", match=r"op 'Abs' at byte \d+ is not on the allowlist") as ei:
        check_bytes(data)
    assert ei.value.offset == find_unique(data, node.SerializeToString())
    assert ei.value.kind == "disallowed-op"


def test_op_hidden_in_if_branch_is_rejected() -> None:
    data = if_model(["Relu", "Abs"])
    report = scan_bytes(data)
    assert [v.kind for v in report.violations] == ["disallowed-op"]
    assert report.ops == onnx_op_counts(data)
    if_node = onnx.load_from_string(data).graph.node[1]
    then_branch = next(a.g for a in if_node.attribute if a.name == "then_branch")
    abs_node = next(n for n in then_branch.node if n.op_type == "Abs")
    assert report.violations[0].offset == find_unique(data, abs_node.SerializeToString())
    with raises_kind("disallowed-op", match="'Abs'"):
        report.raise_for_violations()


def test_op_hidden_in_loop_body_is_rejected() -> None:
    data = loop_model(["Relu", "Neg"])
    with raises_kind("disallowed-op", match=r"op 'Neg' at byte \d+"):
        check_bytes(data)
    assert scan_bytes(data).ops == onnx_op_counts(data)


def test_op_hidden_in_model_function_is_rejected() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], domain="")], "main", [_vi("x")], [_vi("y")]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.functions.append(
        helper.make_function(
            "",
            "Relu2",
            ["a"],
            ["b"],
            [helper.make_node("Abs", ["a"], ["b"])],
            [helper.make_opsetid("", 17)],
        )
    )
    data = model.SerializeToString()
    with raises_kind("disallowed-op", match="'Abs'"):
        check_bytes(data)


def test_custom_domain_node_and_opset_are_rejected() -> None:
    node = helper.make_node("Conv", ["x"], ["y"], domain="com.evil", name="evil")
    data = _model(
        helper.make_graph([node], "main", [_vi("x")], [_vi("y")]),
        opsets=[("", 17), ("com.evil", 1)],
    )
    report = scan_bytes(data)
    assert [v.kind for v in report.violations] == ["custom-domain", "custom-domain"]
    assert report.violations[0].offset == find_unique(data, node.SerializeToString())
    opset = helper.make_opsetid("com.evil", 1).SerializeToString()
    assert report.violations[1].offset == find_unique(data, opset)
    assert report.ops == {"com.evil:Conv": 1} == onnx_op_counts(data)
    with raises_kind("custom-domain", match=r"custom op domain 'com.evil'.*\(and 1 more"):
        report.raise_for_violations()


def test_ai_onnx_domain_is_the_default_domain() -> None:
    node = helper.make_node("Relu", ["x"], ["y"], domain="ai.onnx")
    data = _model(helper.make_graph([node], "main", [_vi("x")], [_vi("y")]))
    assert check_bytes(data).ops == {"Relu": 1}


def _external(tensor: Any) -> Any:
    onnx.external_data_helper.set_external_data(tensor, location="weights.bin", offset=0)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return tensor


def test_external_data_initializer_is_rejected() -> None:
    model = onnx.load_from_string(conv_model())
    _external(model.graph.initializer[0])
    data = model.SerializeToString()
    with raises_kind("external-data", match=r"tensor 'w' at byte \d+ keeps its data in an ex"):
        check_bytes(data)
    report = scan_bytes(data)
    offset = find_unique(data, model.graph.initializer[0].SerializeToString())
    assert report.violations[0].offset == offset


@pytest.mark.parametrize("where", ["constant", "location-only", "entries-only", "sparse"])
def test_external_data_is_found_everywhere(where: str) -> None:
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "k")
    if where == "location-only":
        tensor.data_location = TensorProto.EXTERNAL
    elif where == "entries-only":
        onnx.external_data_helper.set_external_data(tensor, location="weights.bin")
    else:
        _external(tensor)
    if where == "sparse":
        indices = numpy_helper.from_array(np.arange(4, dtype=np.int64), "k_idx")
        sparse = helper.make_sparse_tensor(tensor, indices, [8])
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], "main", [_vi("x")], [_vi("y")]
        )
        graph.sparse_initializer.append(sparse)
    else:
        node = helper.make_node("Constant", [], ["y"], value=tensor)
        graph = helper.make_graph([node], "main", [], [_vi("y")])
    data = _model(graph)
    if where == "sparse":
        # A sparse tensor is refused as such, and its external data is still named.
        report = scan_bytes(data)
        assert [v.kind for v in report.violations] == ["sparse-tensor", "external-data"]
        assert "'k'" in report.violations[1].detail
        return
    with raises_kind("external-data", match="'k'"):
        check_bytes(data)


@pytest.mark.parametrize("where", ["initializer", "constant"])
def test_sparse_tensors_are_refused(where: str) -> None:
    """218 bytes can declare a 16384 x 16384 tensor that ONNX Runtime fills in at load."""
    values = numpy_helper.from_array(np.ones(1, np.float32), "w")
    indices = numpy_helper.from_array(np.zeros(1, np.int64), "w_idx")
    sparse = helper.make_sparse_tensor(values, indices, [16384, 16384])
    if where == "initializer":
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], "main", [_vi("x")], [_vi("y")]
        )
        graph.sparse_initializer.append(sparse)
    else:
        node = helper.make_node("Constant", [], ["y"], sparse_value=sparse)
        graph = helper.make_graph([node], "main", [], [_vi("y")])
    data = _model(graph)
    assert len(data) < 300
    with raises_kind("sparse-tensor", match=r"sparse tensor at byte \d+: ONNX Runtime expands"):
        check_bytes(data)


def test_two_initializers_of_one_name_are_refused() -> None:
    first = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    second = numpy_helper.from_array(np.full(4, 9.0, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "main",
        [_vi("x")],
        [_vi("y")],
        initializer=[first, second],
    )
    data = _model(graph)
    with raises_kind(
        "duplicate-initializer", match=r"initializer 'w' at byte \d+ is the second of that name"
    ):
        check_bytes(data)
    one = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "main", [_vi("x")], [_vi("y")], [first]
    )
    assert check_bytes(_model(one)).allowed


def test_nesting_of_eight_is_allowed_and_nine_is_rejected() -> None:
    data, _ = nested_if_model(8)
    report = check_bytes(data)
    assert report.ops == onnx_op_counts(data)
    assert report.ops["If"] == 8

    data, graphs = nested_if_model(9)
    with raises_kind("nesting-too-deep", match=r"nested 9 levels deep, over the limit of 8"):
        check_bytes(data)
    report = scan_bytes(data)
    # Both branches of the 8th-level If are 9th-level subgraphs; each is
    # reported at the offset of its GraphProto and neither is descended into.
    assert [v.kind for v in report.violations] == ["nesting-too-deep"] * 2
    offsets = {v.offset for v in report.violations}
    assert find_unique(data, graphs[9].SerializeToString()) in offsets
    assert "Identity" not in report.ops


def test_sixteen_loops_are_allowed_and_seventeen_are_rejected() -> None:
    assert check_bytes(loop_model(["Relu"], loops=16)).ops["Loop"] == 16
    data = loop_model(["Relu"], loops=17)
    with raises_kind("too-many-loops", match=r"Loop number 17, over the limit of 16"):
        check_bytes(data)
    node17 = onnx.load_from_string(data).graph.node[-1]
    assert scan_bytes(data).violations[0].offset == find_unique(data, node17.SerializeToString())


def test_loops_in_subgraphs_count_too() -> None:
    # 9 Loops in the main graph, each with 1 Loop in its body: 18 in all.
    inner = loop_model(["Relu"], loops=1)
    inner_loop = onnx.load_from_string(inner).graph
    body = _loop_body(["Relu"], "outer_body")
    body.node.extend(inner_loop.node)
    body.node[-1].input[2] = "v_out"
    body.node[-1].output[0] = "v_out2"
    body.output[1].name = "v_out2"
    model = onnx.load_from_string(loop_model(["Relu"], loops=9))
    for node in model.graph.node:
        if node.op_type == "Loop":
            node.attribute[0].g.CopyFrom(body)
    data = model.SerializeToString()
    report = scan_bytes(data)
    assert report.ops["Loop"] == 18 == onnx_op_counts(data)["Loop"]
    assert [v.kind for v in report.violations] == ["too-many-loops"]


def test_all_policy_violations_are_collected() -> None:
    model = onnx.load_from_string(conv_model(extra_ops=["Abs", "Neg"]))
    _external(model.graph.initializer[1])
    model.graph.node.append(helper.make_node("Foo", ["y"], ["z"], domain="com.evil"))
    data = model.SerializeToString()
    report = scan_bytes(data)
    kinds = [v.kind for v in report.violations]
    assert kinds == ["disallowed-op", "disallowed-op", "custom-domain", "external-data"]
    offsets = [v.offset for v in report.violations]
    assert all(isinstance(o, int) and 0 <= o < len(data) for o in offsets)
    text = report.render()
    assert "REJECTED: [disallowed-op] op 'Abs'" in text
    assert sum(line.startswith("  - [") for line in text.splitlines()) == 4


def test_last_op_type_wins_like_protobuf() -> None:
    # A node that says "Relu" and then "Abs": protobuf keeps the last value.
    node = enc_len(1, b"x") + enc_len(2, b"y") + enc_len(4, b"Relu") + enc_len(4, b"Abs")
    data = IR8 + enc_len(7, enc_len(1, node))
    assert onnx.load_from_string(data).graph.node[0].op_type == "Abs"
    with raises_kind("disallowed-op", match="'Abs'"):
        check_bytes(data)


def test_non_utf8_and_huge_op_names_are_rejected_not_crashing() -> None:
    for name in (b"\xff\xfeRelu", b"R" * 100_000):
        data = IR8 + enc_len(7, enc_len(1, enc_len(4, name)))
        report = scan_bytes(data)
        assert [v.kind for v in report.violations] == ["disallowed-op"]
        assert len(report.violations[0].detail) < 500


def test_op_names_cannot_forge_report_lines() -> None:
    data = IR8 + enc_len(7, enc_len(1, enc_len(4, b"Abs\nALLOWED\x1b[2K")))
    report = scan_bytes(data)
    lines = report.render().splitlines()
    assert "ALLOWED" not in lines
    assert lines[-1].startswith("REJECTED: [disallowed-op]")  # one violation: no list after
    assert all(op.isprintable() for op in report.ops)


def test_ort_runtime_reads_the_polyglot_as_ort_format() -> None:
    # Why the ORTM check exists: the same bytes that onnx parses as a clean
    # ModelProto go to ONNX Runtime's ORT-format (flatbuffers) loader.
    ort = pytest.importorskip("onnxruntime")
    clean = conv_model()
    ort.InferenceSession(clean, providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="ORT"):  # ORT raises its own classes
        ort.InferenceSession(
            enc_len(2, b"\x00\x00ORTM") + clean, providers=["CPUExecutionProvider"]
        )


def test_ort_format_polyglot_is_rejected() -> None:
    # producer_name = b"\0\0ORTM" puts the ORT-format identifier at bytes 4-7
    # of an otherwise clean ModelProto: ONNX Runtime would read it as ORT format.
    data = enc_len(2, b"\x00\x00ORTM") + conv_model()
    assert onnx.load_from_string(data).producer_name == "\x00\x00ORTM"
    with raises_kind("ort-format", match="ORT-format") as ei:
        check_bytes(data)
    assert ei.value.offset == 4


def test_many_violations_are_capped() -> None:
    node = enc_len(4, b"Abs")
    data = IR8 + enc_len(7, enc_len(1, node) * 3000)
    report = scan_bytes(data)
    assert len(report.violations) == onnxscan.MAX_VIOLATIONS
    assert report.omitted_violations == 3000 - onnxscan.MAX_VIOLATIONS
    assert report.ops == {"Abs": 3000}


# --- not ONNX ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "no ModelProto"),
        (b"hello, this is a text file and not a model\n", "no ModelProto"),
        (b'{"graph": {"node": []}}', "no ModelProto"),
        (IR8, "no ModelProto graph"),
        (enc_len(7, b""), "no ModelProto ir_version"),
        (enc_len(2, b"torch") + enc_key(3, 0), "no ModelProto"),
        (b"\x08", "no ModelProto"),
    ],
    ids=["empty", "png", "text", "json", "no-graph", "no-ir-version", "garbage", "one-byte"],
)
def test_non_onnx_bytes_are_rejected(data: bytes, message: str) -> None:
    with raises_kind("not-onnx", match=f"not an ONNX model: {message}") as ei:
        check_bytes(data, path="x.onnx")
    assert ei.value.kind == "not-onnx"
    assert ei.value.offset is None
    assert str(ei.value).startswith("x.onnx: ")


# --- wire-format errors -----------------------------------------------------


def test_truncated_varint_at_end_of_file() -> None:
    data = IR8 + enc_key(5, 0) + b"\x80\x80"  # model_version, continuation bits to EOF
    with raises_kind("truncated-varint", match=r"at byte 3: the file is truncated") as ei:
        check_bytes(data)
    assert ei.value.offset == len(IR8) + 1


def test_truncated_varint_at_end_of_enclosing_message() -> None:
    # The node ends inside a varint although the file goes on after it.
    node = enc_len(4, b"Relu") + enc_key(9, 0) + b"\xff"
    graph = enc_len(1, node)
    data = IR8 + enc_len(7, graph) + enc_len(2, b"padding after the graph")
    report = scan_bytes(data)
    expected = len(IR8) + 2 + 2 + len(enc_len(4, b"Relu")) + 1
    assert data[expected] == 0xFF
    assert report.violations[-1] == onnxscan.Violation(
        "truncated-varint", report.violations[-1].detail, expected
    )
    with raises_kind("truncated-varint"):
        report.raise_for_violations()


@pytest.mark.parametrize(
    "varint",
    [b"\xff" * 9 + b"\x02", b"\xff" * 10 + b"\x01", b"\x80" * 11 + b"\x00"],
    ids=["10th-byte-too-big", "11-bytes", "padded-zero"],
)
def test_overlong_varint(varint: bytes) -> None:
    data = IR8 + enc_key(5, 0) + varint + enc_len(7, b"")
    with raises_kind("overlong-varint", match="longer than 64 bits") as ei:
        check_bytes(data)
    assert ei.value.offset == len(IR8) + 1


def test_longest_valid_varint_is_accepted() -> None:
    data = IR8 + enc_key(5, 0) + b"\xff" * 9 + b"\x01" + enc_len(7, enc_len(1, enc_len(4, b"Relu")))
    assert check_bytes(data).ops == {"Relu": 1}
    assert onnx.load_from_string(data).model_version == -1


def test_length_past_end_of_file() -> None:
    data = IR8 + enc_key(7, 2) + enc_varint(1000) + b"abc"
    with raises_kind("length-past-end", match=r"length 1000 runs past the end") as ei:
        check_bytes(data)
    assert ei.value.offset == len(IR8) + 1  # where the length varint sits


def test_length_past_end_of_enclosing_message() -> None:
    # The node claims 50 bytes; the graph holds fewer, the file holds more.
    prefix = IR8 + enc_key(7, 2)
    bad_node = enc_key(1, 2) + enc_varint(50) + enc_len(4, b"Relu")
    graph = enc_len(4, b"ok") + bad_node
    data = prefix + enc_varint(len(graph)) + graph + enc_len(2, b"x" * 100)
    length_offset = len(prefix) + len(enc_varint(len(graph))) + len(enc_len(4, b"ok")) + 1
    assert data[length_offset] == 50
    report = scan_bytes(data)
    assert report.violations[-1].kind == "length-past-end"
    assert report.violations[-1].offset == length_offset
    with raises_kind("length-past-end", match=f"at byte {length_offset}:"):
        report.raise_for_violations()


def test_fixed_width_field_past_end() -> None:
    data = IR8 + enc_len(7, enc_key(2, 1) + b"\x00" * 7) + b"\x00" * 4
    with raises_kind("length-past-end", match="8-byte fixed field"):
        check_bytes(data)


@pytest.mark.parametrize("wire_type", [3, 4])
def test_group_wire_types_are_rejected(wire_type: int) -> None:
    data = IR8 + enc_len(7, enc_len(1, enc_len(4, b"Relu") + enc_key(12, wire_type)))
    with raises_kind("group-wire-type", match=f"deprecated group wire type {wire_type}") as ei:
        check_bytes(data)
    assert ei.value.offset == len(data) - 1


@pytest.mark.parametrize("wire_type", [6, 7])
def test_invalid_wire_types_are_rejected(wire_type: int) -> None:
    data = IR8 + enc_key(3, wire_type) + enc_len(7, b"")
    with raises_kind("bad-wire-type", match=f"invalid wire type {wire_type}") as ei:
        check_bytes(data)
    assert ei.value.offset == len(IR8)


def test_wrong_wire_type_on_a_field_that_matters() -> None:
    # op_type as a varint: protobuf would drop it silently; the scanner refuses.
    data = IR8 + enc_len(7, enc_len(1, enc_key(4, 0) + enc_varint(7)))
    with raises_kind("wrong-wire-type", match=r"NodeProto.op_type \(field 4\) has wire type 0"):
        check_bytes(data)


def test_field_number_zero_is_rejected() -> None:
    data = IR8 + enc_len(7, b"\x02\x00")
    with raises_kind("bad-field-number", match="invalid field number 0"):
        check_bytes(data)


def test_structural_error_comes_after_policy_violations() -> None:
    data = conv_model(extra_ops=["Abs"]) + enc_key(5, 0)
    report = scan_bytes(data)
    assert [v.kind for v in report.violations] == ["disallowed-op", "truncated-varint"]
    assert report.violations[-1].offset == len(data)
    with raises_kind("disallowed-op"):
        report.raise_for_violations()


def test_every_kind_the_scanner_reports_is_documented() -> None:
    # The kinds named in the scanner's code (scan.py after KINDS, and its wire-format
    # reader), read from their source, are KINDS' keys.
    source = Path(onnxscan.__file__).read_text(encoding="utf-8")
    body = source.split("KINDS: dict[str, str] = {", 1)[1].split("\n}\n", 1)[1]
    body += Path(onnxscan.__file__).with_name("scan_wire.py").read_text(encoding="utf-8")
    reported = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)",?\s', body))
    assert reported == set(onnxscan.KINDS)
    assert len(reported) >= 15
    error = ScanError("x.onnx: refused", kind="too-many-loops", offset=3)
    assert (error.kind, error.offset, str(error)) == ("too-many-loops", 3, "x.onnx: refused")


# --- files ------------------------------------------------------------------


def test_scan_file_reads_a_clean_model(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(conv_model())
    report = scan_file(path)
    assert report.allowed
    assert report.path == str(path)
    assert scan_file(path, max_bytes=path.stat().st_size).allowed  # the cap is inclusive


def test_file_over_the_cap_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.onnx"
    path.write_bytes(conv_model())
    size = path.stat().st_size

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("the scanner opened a file over the cap")

    with monkeypatch.context() as m:
        m.setattr(Path, "open", refuse)
        m.setattr(Path, "read_bytes", refuse)
        m.setattr(builtins, "open", refuse)
        m.setattr(io, "open", refuse)
        report = scan_file(path, max_bytes=size - 1)
    assert report.size == size
    assert report.ops == {}
    assert [v.kind for v in report.violations] == ["file-too-large"]
    with raises_kind("file-too-large", match=f"{size:,} bytes, over the cap of {size - 1:,}"):
        report.raise_for_violations()
    assert onnxscan.DEFAULT_MAX_BYTES == 50 * 1024 * 1024


def test_missing_file_and_directory_raise_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.onnx: no such file"):
        scan_file(tmp_path / "nope.onnx")
    with pytest.raises(InputFileError, match="not a regular file"):
        scan_file(tmp_path)


# --- fuzz -------------------------------------------------------------------


def _fuzz_base() -> bytes:
    """A real model with initializers, an If and a Loop, so mutations reach every walker."""
    model = onnx.load_from_string(conv_model())
    sub_if = onnx.load_from_string(if_model(["Relu", "Sigmoid"]))
    sub_loop = onnx.load_from_string(loop_model(["Relu"]))
    graph = model.graph
    for node in [*sub_if.graph.node, *sub_loop.graph.node]:
        node.name = f"sub_{node.name}"
    graph.node.extend(sub_if.graph.node)
    graph.node.extend(sub_loop.graph.node)
    return bytes(model.SerializeToString())


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and pos < len(buf):
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and pos < len(buf):
            buf[pos] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        elif op == 3:
            del buf[pos : pos + rng.randint(1, 3)]
        else:
            del buf[pos:]
    return bytes(buf)


def _check_invariants(data: bytes, report: ScanReport) -> None:
    assert report.size == len(data)
    for violation in report.violations:
        assert violation.offset is None or 0 <= violation.offset <= len(data)
        assert violation.detail
    try:
        report.raise_for_violations()
    except ScanError as exc:
        assert exc.kind == report.violations[0].kind
    else:
        assert report.allowed


def _protobuf_counts(data: bytes) -> dict[str, int] | None:
    try:
        return onnx_op_counts(data)
    except DecodeError:  # protobuf refusing a mutant is fine: ORT would too
        return None


def test_fuzz_mutations_and_truncations_only_raise_scan_errors() -> None:
    """Bounded here (10,000 mutants); a longer run is ``make fuzz MUTANTS=1000000 SEED=7``."""
    base = _fuzz_base()
    assert check_bytes(base).ops == onnx_op_counts(base)
    rng = random.Random(int(os.environ.get("VMAFX_SALIENCY_FUZZ_SEED", "20240607")))
    allowed_and_parsed = 0
    count = int(os.environ.get("VMAFX_SALIENCY_FUZZ_MUTANTS", "10000"))
    mutants = itertools.chain(
        (base[:n] for n in range(len(base))),  # every truncation
        (_mutate(rng, base) for _ in range(count)),  # generated one at a time: flat memory
    )
    for data in mutants:
        report = scan_bytes(data)  # any exception here fails the test
        _check_invariants(data, report)
        if report.allowed:
            # Differential check: whatever the scanner lets through, protobuf
            # must not see other ops in it.
            counts = _protobuf_counts(data)
            if counts is not None:
                allowed_and_parsed += 1
                assert report.ops == counts
    assert allowed_and_parsed > 50


def test_truncation_inside_the_graph_is_always_rejected() -> None:
    base = _fuzz_base()
    model = onnx.load_from_string(base)
    graph_bytes = model.graph.SerializeToString()
    start = find_unique(base, graph_bytes)
    for cut in range(start, start + len(graph_bytes)):
        assert not scan_bytes(base[:cut]).allowed


# --- CLI --------------------------------------------------------------------


def test_cli_scan_clean_and_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.onnx"
    good.write_bytes(conv_model())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(if_model(["Abs"]))

    assert main(["scan", str(good)]) == 0
    out = capsys.readouterr().out
    assert str(good) in out
    assert out.strip().splitlines()[-1] == "ALLOWED"

    assert main(["scan", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED: [disallowed-op] op 'Abs'" in out


def test_cli_scan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.onnx"
    good.write_bytes(conv_model())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(loop_model(["Neg"]))

    assert main(["scan", "--json", str(good), str(bad)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["allowed"] is False
    first, second = doc["files"]
    assert first["path"] == str(good)
    assert first["allowed"] is True
    assert first["ops"]["Conv"] == 1
    assert first["violations"] == []
    assert second["allowed"] is False
    (violation,) = second["violations"]
    assert violation["kind"] == "disallowed-op"
    assert "'Neg'" in violation["detail"]
    assert violation["offset"] == scan_file(bad).violations[0].offset

    assert main(["scan", "--json", "--max-bytes", "10", str(good)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][0]["violations"][0]["kind"] == "file-too-large"
    assert doc["files"][0]["violations"][0]["offset"] is None


def test_cli_scan_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.onnx"
    assert main(["scan", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert str(missing) in lines[0]


def test_an_empty_loop_body_is_refused() -> None:
    """ONNX Runtime stops a run between nodes only: a Loop over no nodes never stops."""
    body = helper.make_graph(
        [],
        "empty",
        [
            helper.make_tensor_value_info("i", INT64, []),
            helper.make_tensor_value_info("cond", BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond", BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
        ],
    )
    trip = helper.make_node("Constant", [], ["trip"], value=helper.make_tensor("t", INT64, [], [2]))
    cond = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c0", BOOL, [], [1]))
    loop = helper.make_node("Loop", ["trip", "c", "x"], ["y"], body=body)
    data = _model(helper.make_graph([trip, cond, loop], "main", [_vi("x")], [_vi("y")]))
    with raises_kind("empty-subgraph", match=r"subgraph at byte \d+ has no nodes"):
        check_bytes(data)


def test_long_initializer_names_that_share_a_prefix_are_not_duplicates() -> None:
    prefix = "m." * 70  # past the 128 bytes of a name the scanner keeps for messages
    tensors = [
        numpy_helper.from_array(np.zeros(4, np.float32), f"{prefix}{k}.weight") for k in "ab"
    ]
    nodes = [
        helper.make_node("Add", ["x", tensors[0].name], ["h"]),
        helper.make_node("Add", ["h", tensors[1].name], ["y"]),
    ]
    graph = helper.make_graph(nodes, "main", [_vi("x")], [_vi("y")], initializer=tensors)
    assert check_bytes(_model(graph)).allowed


# --- what protobuf merges, and counts with limits ----------------------------------


def _hidden_initializer_model() -> bytes:
    """A clean model, then a second ModelProto.graph holding only an initializer of an
    existing name: protobuf merges the two graphs, and the hidden weights are run."""
    data = conv_model()
    rng = np.random.default_rng(1)
    w2 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    hidden = helper.make_graph([], "hidden", [], [], initializer=[w2])
    return data + enc_len(7, hidden.SerializeToString())


def test_a_second_graph_that_protobuf_merges_in_is_refused() -> None:
    data = _hidden_initializer_model()
    # protobuf sees one graph holding both initializers: the attack is real.
    merged = onnx.load_from_string(data)
    assert [t.name for t in merged.graph.initializer] == ["w", "b", "w"]
    report = scan_bytes(data)
    assert [v.kind for v in report.violations] == ["repeated-field"]
    with raises_kind("repeated-field", match=r"ModelProto\.graph at byte \d+ appears a second"):
        report.raise_for_violations()


def test_a_repeated_subgraph_attribute_is_refused() -> None:
    # An If whose then_branch attribute carries AttributeProto.g twice.
    body = enc_len(1, enc_len(4, b"Relu"))  # GraphProto.node: one Relu
    other = enc_len(1, enc_len(4, b"Abs"))
    graph_type = enc_key(20, 0) + enc_varint(5)  # AttributeProto.type = GRAPH
    attribute = enc_len(1, b"then_branch") + graph_type + enc_len(6, body) + enc_len(6, other)
    data = IR8 + enc_len(7, enc_len(1, enc_len(4, b"If") + enc_len(5, attribute)))
    # protobuf merges the two into one graph of both nodes.
    merged = onnx.load_from_string(data).graph.node[0].attribute[0].g
    assert [n.op_type for n in merged.node] == ["Relu", "Abs"]
    kinds = [v.kind for v in scan_bytes(data).violations]
    assert "repeated-field" in kinds and "disallowed-op" in kinds


def _node(op: str, attributes: int = 0) -> bytes:
    empty_attribute = enc_len(5, b"")  # NodeProto.attribute, an empty AttributeProto
    return enc_len(4, op.encode()) + empty_attribute * attributes


def _graph_of(nodes: bytes) -> bytes:
    return IR8 + enc_len(7, nodes)


def test_counts_past_their_limits_stop_the_walk_with_flat_memory() -> None:
    cases = [
        (_graph_of(enc_len(1, _node("Relu", onnxscan.MAX_ATTRIBUTES + 1))), "too-many-attributes"),
        (_graph_of(enc_len(1, _node("Relu")) * (onnxscan.MAX_NODES + 1)), "too-many-nodes"),
        (
            _graph_of(
                b"".join(
                    enc_len(5, enc_len(8, f"w{i}".encode()))
                    for i in range(onnxscan.MAX_INITIALIZERS + 1)
                )
            ),
            "too-many-initializers",
        ),
        (
            _graph_of(
                b"".join(enc_len(1, _node(f"Op{i}")) for i in range(onnxscan.MAX_OP_TYPES + 1))
            ),
            "too-many-op-types",
        ),
        (
            IR8 + enc_len(8, enc_len(1, b"")) * (onnxscan.MAX_OPSET_IMPORTS + 1) + enc_len(7, b""),
            "too-many-opset-imports",
        ),
    ]
    for data, kind in cases:
        report = scan_bytes(data)
        assert report.violations[-1].kind == kind, report.render()[-300:]
        assert "is over the limit of" in report.violations[-1].detail


def test_millions_of_empty_attributes_cost_no_memory() -> None:
    # The review's file: one node with millions of empty attributes took 3.6 GB.
    data = _graph_of(enc_len(1, _node("Relu", 3_000_000)))
    assert len(data) > 6_000_000
    tracemalloc.start()
    try:
        report = scan_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [v.kind for v in report.violations] == ["too-many-attributes"]
    assert peak < 4 * len(data)  # the copy of the bytes and little else


def test_distinct_op_names_are_counted_up_to_a_limit() -> None:
    ops = b"".join(enc_len(1, _node(f"Op{i}")) for i in range(5_000))
    report = scan_bytes(_graph_of(ops))
    assert len(report.ops) == onnxscan.MAX_OP_TYPES
    assert len(report.violations) <= onnxscan.MAX_VIOLATIONS + 1


# --- QuantizeLinear / DequantizeLinear (issue 38) ------------------------------------


def _qdq_model() -> onnx.ModelProto:
    from vmafx_saliency.supply.quantize import QuantRecipe, quantize_qdq

    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(1, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    data = quantize_qdq(conv_model(), inputs, recipe=QuantRecipe(), input_name="x")
    return onnx.load_from_string(data)


def test_a_qdq_model_with_typed_initializer_parameters_is_allowed() -> None:
    model = _qdq_model()
    kinds = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds
    assert scan_bytes(model.SerializeToString()).allowed


def test_a_float_zero_point_is_refused() -> None:
    model = _qdq_model()
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zero = next(t for t in model.graph.initializer if t.name == node.input[2])
    zero.CopyFrom(numpy_helper.from_array(np.zeros((), np.float32), zero.name))
    report = scan_bytes(model.SerializeToString())
    # The Quantize and Dequantize of one activation share it: both are flagged.
    assert {v.kind for v in report.violations} == {"quantization-parameters"}
    assert "the zero point of the (De)QuantizeLinear node at byte" in report.violations[0].detail
    assert "int8 or uint8" in report.violations[0].detail


def test_a_scale_computed_at_run_time_is_refused() -> None:
    model = _qdq_model()
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    scale = node.input[1]
    # The scale now comes from a node: the scanner cannot see the value the model runs with.
    model.graph.node.insert(0, helper.make_node("Identity", [scale], ["computed_scale"]))
    node.input[1] = "computed_scale"
    report = scan_bytes(model.SerializeToString())
    assert {v.kind for v in report.violations} == {"quantization-parameters"}
    assert "the scale of the (De)QuantizeLinear node" in report.violations[0].detail


def test_a_constant_node_that_shadows_a_scale_is_refused() -> None:
    # The review's model: ONNX Runtime runs the Constant's 100, not the checked 1.0.
    model = _qdq_model()
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    shadow = helper.make_node(
        "Constant",
        [],
        [node.input[1]],
        value=numpy_helper.from_array(np.array(100.0, np.float32)),
    )
    model.graph.node.insert(0, shadow)
    report = scan_bytes(model.SerializeToString())
    kinds = [v.kind for v in report.violations]
    assert "duplicate-initializer" in kinds
    detail = next(v.detail for v in report.violations if v.kind == "duplicate-initializer")
    assert "the name of an initializer of its graph: ONNX Runtime runs the node's value" in detail


def _first_scale(model: onnx.ModelProto) -> onnx.TensorProto:
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    scale: onnx.TensorProto = next(t for t in model.graph.initializer if t.name == node.input[1])
    return scale


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (np.nan, "it holds NaN or infinite values"),
        (np.inf, "it holds NaN or infinite values"),
        (0.0, "it holds values outside [1e-30, 10000] (zero or negative included)"),
        (-0.5, "it holds values outside [1e-30, 10000] (zero or negative included)"),
        (3e38, "it holds values outside [1e-30, 10000] (zero or negative included)"),
        (1e-45, "it holds values outside [1e-30, 10000] (zero or negative included)"),
    ],
)
@pytest.mark.parametrize("storage", ["raw_data", "float_data"])
def test_a_scale_no_quantiser_writes_is_refused(value: float, problem: str, storage: str) -> None:
    # ONNX Runtime runs a NaN scale quietly: the next QuantizeLinear makes the channel a number.
    model = _qdq_model()
    scale = _first_scale(model)
    values = numpy_helper.to_array(scale).astype(np.float32).reshape(-1)
    values[0] = value
    if storage == "raw_data":
        scale.CopyFrom(numpy_helper.from_array(values.reshape(scale.dims), scale.name))
    else:
        scale.CopyFrom(
            helper.make_tensor(scale.name, onnx.TensorProto.FLOAT, scale.dims, values.tolist())
        )
        assert not scale.raw_data and len(scale.float_data) == values.size
    report = scan_bytes(model.SerializeToString())
    assert {v.kind for v in report.violations} == {"quantization-parameters"}
    assert "the scale of the (De)QuantizeLinear node at byte" in report.violations[0].detail
    assert f"{problem}; a quantiser writes finite scales in [1e-30, 1e4]" in (
        report.violations[0].detail
    )


def test_a_scale_of_more_values_than_any_layer_is_refused_without_reading_them() -> None:
    from vmafx_saliency.supply.scan_qdq import MAX_SCALE_VALUES

    model = _qdq_model()
    scale = _first_scale(model)
    big = np.ones(MAX_SCALE_VALUES + 1, np.float32)
    scale.CopyFrom(numpy_helper.from_array(big, scale.name))
    report = scan_bytes(model.SerializeToString())
    assert {v.kind for v in report.violations} == {"quantization-parameters"}
    assert f"it holds {MAX_SCALE_VALUES + 1:,} values, more than" in report.violations[0].detail


def test_a_scale_a_caller_could_feed_is_refused() -> None:
    # An initializer listed as a graph input is a default that a feed replaces.
    model = _qdq_model()
    scale = _first_scale(model)
    model.graph.input.append(
        helper.make_tensor_value_info(scale.name, onnx.TensorProto.FLOAT, list(scale.dims))
    )
    report = scan_bytes(model.SerializeToString())
    assert {v.kind for v in report.violations} == {"quantization-parameters"}
    assert "of type float32, but a graph input too" in report.violations[0].detail


def test_the_shipped_int8_student_scans_clean_with_its_scales_read() -> None:
    from vmafx_saliency.supply.registry import packaged_models

    data = (packaged_models() / "saliency_student_v2_int8.onnx").read_bytes()
    assert scan_bytes(data).allowed
