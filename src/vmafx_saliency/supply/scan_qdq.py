"""The values of a (De)QuantizeLinear scale, read from the wire and checked.

The scanner checks a scale's type and that it is an initializer of the node's
own graph (``scan._Walker.check_qdq``); this reads its float32 values
(``raw_data``, or ``float_data`` packed or not) and refuses what no quantiser
writes: NaN, infinities, zero or negative values. ONNX Runtime runs a NaN
scale without a complaint: the next QuantizeLinear turns the NaN channel into
a number, and the output stays finite and in range, so neither the contract
probe nor the extractor's map check would see it.
"""

from __future__ import annotations

import math
import sys
from array import array

from vmafx_saliency.supply.scan_wire import _I32, _LEN, _fields

# Scales are per tensor or per output channel; no convolution has this many.
MAX_SCALE_VALUES = 65_536

# TensorProto fields: float_data (packed floats, or one per field) and raw_data.
_FLOAT_DATA, _RAW_DATA = 4, 9


def scale_problem(data: bytes, start: int, end: int) -> str | None:
    """What is wrong with the float32 scale tensor at ``data[start:end]``; None if nothing.

    Its values are the last ``raw_data`` (protobuf keeps the last) or else every
    ``float_data`` chunk; counting stops past :data:`MAX_SCALE_VALUES`, so a
    tensor of millions of one-value fields costs no memory here.
    """
    raw: tuple[int, int] | None = None
    chunks: list[tuple[int, int]] = []
    size = 0
    for f in _fields(data, start, end):
        if f.number == _RAW_DATA and f.wire_type == _LEN:
            raw = (f.a, f.b)
        elif f.number == _FLOAT_DATA and f.wire_type in (_LEN, _I32):
            size += f.b - f.a
            if size > 4 * MAX_SCALE_VALUES:
                return f"it holds more than the {MAX_SCALE_VALUES:,} values of any layer"
            chunks.append((f.a, f.b))
    spans = [raw] if raw is not None else chunks
    size = sum(b - a for a, b in spans)
    if size % 4:
        return "its float data is not a whole number of float32 values"
    if size == 0:
        return "it holds no values"
    if size > 4 * MAX_SCALE_VALUES:
        return f"it holds {size // 4:,} values, more than the {MAX_SCALE_VALUES:,} of any layer"
    values = array("f")
    for a, b in spans:
        values.frombytes(data[a:b])
    if sys.byteorder == "big":
        values.byteswap()  # ONNX stores little-endian
    if not all(math.isfinite(v) for v in values):
        return "it holds NaN or infinite values"
    if not all(v > 0.0 for v in values):
        return "it holds zero or negative values"
    return None
