"""The scanner's checks of (De)QuantizeLinear parameters, read from the wire.

The walker (``scan._Walker``) notes each Q/DQ node's scale and zero-point
inputs (:func:`qdq_input`) and, at the end of their graph, hands them here
(:func:`qdq_problems`). Each must be an initializer of the node's own graph,
of the type the QDQ INT8 format uses, and not a graph input (a caller's feed
would replace it). A scale's float32 values (``raw_data``, or ``float_data``
packed or not) must also be what a quantiser writes: finite, in [1e-30, 1e4]
(zero and negatives outside). ONNX Runtime runs a NaN scale without a
complaint: the next QuantizeLinear turns the NaN channel into a number, and
the output stays finite and in range, so neither the contract probe nor the
extractor's map check would see it.
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections.abc import Iterator
from typing import NamedTuple

from vmafx_saliency.supply.scan_wire import _I32, _LEN, _fields

# Scales are per tensor or per output channel; no convolution has this many.
MAX_SCALE_VALUES = 65_536
# What a quantiser writes: the shipped INT8 student's scales run from 1.0e-24 (the
# bias of a channel near zero) to 1.0. Beyond these, two DequantizeLinear outputs can
# overflow to infinities whose sum is NaN, which the next QuantizeLinear turns back
# into a number: as quiet as a NaN scale. Subnormals are below the floor too.
MIN_SCALE, MAX_SCALE = 1e-30, 1e4

# TensorProto fields: float_data (packed floats, or one per field) and raw_data.
_FLOAT_DATA, _RAW_DATA = 4, 9

# QuantizeLinear / DequantizeLinear: (input index, role, TensorProto data types
# allowed). Scales are float32, zero points int8 or uint8 (the QDQ INT8 format
# of ONNX Runtime's quantiser; a DequantizeLinear of an int32 bias has an int32
# zero point), and both must be initializers of the node's own graph, so the
# scanner sees the values the model runs with.
_FLOAT, _UINT8, _INT8, _INT32 = 1, 2, 3, 6
QDQ_PARAMETERS = {
    "QuantizeLinear": (
        (1, "scale", frozenset({_FLOAT})),
        (2, "zero point", frozenset({_UINT8, _INT8})),
    ),
    "DequantizeLinear": (
        (1, "scale", frozenset({_FLOAT})),
        (2, "zero point", frozenset({_UINT8, _INT8, _INT32})),
    ),
}
Initializer = tuple[int, int, int]  # data type, the tensor's start and end in the file
_EMPTY_NAME = hashlib.sha256(b"").digest()
_REQUANTISE = "re-quantise the model with 'vmafx-saliency quantize'"
_TYPES = {"scale": "float32", "zero point": "int8 or uint8 (int32 for a bias)"}


class QdqInput(NamedTuple):
    """A Q/DQ node's parameter input, noted while its graph is walked."""

    start: int  # the node's offset in the file
    role: str  # "scale" or "zero point"
    digest: bytes  # sha256 of the input's name
    types: frozenset[int]


def qdq_input(op: str, index: int, start: int, name: memoryview) -> QdqInput | None:
    """The parameter that input ``index`` of a Q/DQ node ``op`` is; None for its data."""
    for position, role, types in QDQ_PARAMETERS[op]:
        if index == position:
            return QdqInput(start, role, hashlib.sha256(name).digest(), types)
    return None


def qdq_problems(
    data: bytes,
    noted: list[QdqInput],
    initializers: dict[bytes, Initializer],
    inputs: frozenset[bytes],
) -> Iterator[tuple[int, str]]:
    """(node offset, what is wrong) for each parameter of one graph that fails its checks.

    ``initializers`` and ``inputs``: the graph's initializers and input names, by digest.
    """
    verdicts: dict[bytes, str | None] = {}  # a scale shared by many nodes is read once
    for start, role, digest, types in noted:
        if digest == _EMPTY_NAME and role == "zero point":
            continue  # an omitted zero point: uint8 0, as ONNX defines it
        found = initializers.get(digest)
        if found is None or found[0] not in types or digest in inputs:
            also = ", but a graph input too" if found is not None and digest in inputs else ""
            yield (
                start,
                (
                    f"the {role} of the (De)QuantizeLinear node at byte {start} is not an "
                    f"initializer of its graph of type {_TYPES[role]}{also}: {_REQUANTISE}"
                ),
            )
        elif role == "scale":
            if digest not in verdicts:
                verdicts[digest] = scale_problem(data, found[1], found[2])
            problem = verdicts[digest]
            if problem is not None:
                yield (
                    start,
                    (
                        f"the scale of the (De)QuantizeLinear node at byte {start}: {problem}; "
                        f"a quantiser writes finite scales in [1e-30, 1e4]: {_REQUANTISE}"
                    ),
                )


def scale_problem(data: bytes, start: int, end: int) -> str | None:
    """What is wrong with the float32 scale tensor at ``data[start:end]``; None if nothing.

    Its values are the last ``raw_data`` (protobuf keeps the last) or else every
    ``float_data`` chunk, gathered into one buffer that stops growing past
    :data:`MAX_SCALE_VALUES`, so no number of (empty) chunks costs memory here.
    """
    raw: tuple[int, int] | None = None
    floats = bytearray()
    for f in _fields(data, start, end):
        if f.number == _RAW_DATA and f.wire_type == _LEN:
            raw = (f.a, f.b)
        elif f.number == _FLOAT_DATA and f.wire_type in (_LEN, _I32) and f.b > f.a:
            floats += data[f.a : f.b]
            if len(floats) > 4 * MAX_SCALE_VALUES:
                return f"it holds more than the {MAX_SCALE_VALUES:,} values of any layer"
    if raw is not None:
        size = raw[1] - raw[0]
        if size > 4 * MAX_SCALE_VALUES:
            return f"it holds {size // 4:,} values, more than the {MAX_SCALE_VALUES:,} of any layer"
        floats = bytearray(data[raw[0] : raw[1]])
    if len(floats) % 4:
        return "its float data is not a whole number of float32 values"
    if not floats:
        return "it holds no values"
    values = array("f")
    values.frombytes(bytes(floats))
    if sys.byteorder == "big":
        values.byteswap()  # ONNX stores little-endian
    if not all(math.isfinite(v) for v in values):
        return "it holds NaN or infinite values"
    if not all(MIN_SCALE <= v <= MAX_SCALE for v in values):
        return f"it holds values outside [{MIN_SCALE:g}, {MAX_SCALE:g}] (zero or negative included)"
    return None
