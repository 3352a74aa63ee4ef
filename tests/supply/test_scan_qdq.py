"""The Q/DQ parameter checks on the wire (supply/scan_qdq.py).

Whole models through the scanner are in test_scan.py; these call the wire-level
functions directly, on hand-made protobuf bytes.
"""

from __future__ import annotations

import hashlib
import struct
import tracemalloc

from vmafx_saliency.supply.scan_qdq import (
    MAX_SCALE_VALUES,
    qdq_input,
    qdq_problems,
    scale_problem,
)

_ONE = b"\x25" + struct.pack("<f", 1.0)  # TensorProto.float_data (field 4), fixed32: 1.0


def _scale_problem_and_peak(data: bytes) -> tuple[str | None, int]:
    tracemalloc.start()
    try:
        problem = scale_problem(data, 0, len(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return problem, peak


def test_a_scale_of_a_million_one_value_fields_is_refused_in_bounded_memory() -> None:
    # float_data written unpacked: five bytes a value. Counting stops past the limit,
    # instead of keeping a span for each of the million fields.
    one = _ONE
    problem, peak = _scale_problem_and_peak(one * 1_000_000)
    assert problem == f"it holds more than the {MAX_SCALE_VALUES:,} values of any layer"
    assert peak < 16 * 1024 * 1024
    # A few such fields are read as the values they are.
    assert scale_problem(one * 3, 0, 15) is None
    assert scale_problem(b"\x25" + struct.pack("<f", -1.0), 0, 5) == (
        "it holds values outside [1e-30, 10000] (zero or negative included)"
    )
    # Empty packed chunks (field 4, length 0) take no memory and count for nothing.
    problem, peak = _scale_problem_and_peak(b"\x22\x00" * 1_000_000 + one)
    assert problem is None and peak < 1024 * 1024


def test_only_the_scale_and_zero_point_inputs_are_noted() -> None:
    name = memoryview(b"s")
    assert qdq_input("QuantizeLinear", 0, 7, name) is None  # the data input
    scale = qdq_input("DequantizeLinear", 1, 7, name)
    assert scale is not None and (scale.start, scale.role) == (7, "scale")
    assert scale.digest == hashlib.sha256(b"s").digest()
    zero = qdq_input("DequantizeLinear", 2, 7, name)
    assert zero is not None and zero.role == "zero point" and 6 in zero.types  # int32 bias
    assert qdq_input("QuantizeLinear", 3, 7, name) is None


def test_a_graphs_parameters_are_checked_against_its_initializers_and_inputs() -> None:
    data = _ONE + b"\x25" + struct.pack("<f", float("nan"))
    good, nan = (
        qdq_input("QuantizeLinear", 1, n, memoryview(k)) for n, k in ((10, b"g"), (20, b"n"))
    )
    omitted = qdq_input("QuantizeLinear", 2, 30, memoryview(b""))  # zero point 0 by default
    missing = qdq_input("QuantizeLinear", 2, 40, memoryview(b"z"))
    assert good and nan and omitted and missing
    initializers = {good.digest: (1, 0, 5), nan.digest: (1, 5, 10)}
    problems = dict(qdq_problems(data, [good, nan, omitted, missing], initializers, frozenset()))
    assert set(problems) == {20, 40}
    assert "it holds NaN or infinite values" in problems[20]
    assert "of type int8 or uint8 (int32 for a bias):" in problems[40]
    fed = dict(qdq_problems(data, [good], initializers, frozenset({good.digest})))
    assert "of type float32, but a graph input too" in fed[10]
