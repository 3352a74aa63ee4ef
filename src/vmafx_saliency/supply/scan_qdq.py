"""The values of a (De)QuantizeLinear scale, read from the wire and checked.

The scanner checks a scale's type and that it is an initializer of the node's
own graph (``scan._Walker.check_qdq``); this reads its float32 values
(``raw_data``, or ``float_data`` packed or not) and refuses what no quantiser
writes: NaN, infinities, and values outside [1e-30, 1e4] (zero and negatives
among them). ONNX Runtime runs a NaN
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
# What a quantiser writes: the shipped INT8 student's scales run from 1.0e-24 (the
# bias of a channel near zero) to 1.0. Beyond these, two DequantizeLinear outputs can
# overflow to infinities whose sum is NaN, which the next QuantizeLinear turns back
# into a number: as quiet as a NaN scale. Subnormals are below the floor too.
MIN_SCALE, MAX_SCALE = 1e-30, 1e4

# TensorProto fields: float_data (packed floats, or one per field) and raw_data.
_FLOAT_DATA, _RAW_DATA = 4, 9


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
