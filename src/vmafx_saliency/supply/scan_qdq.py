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

# Scales are per tensor or per output channel; no convolution has this many.
MAX_SCALE_VALUES = 65_536

Span = tuple[int, int]  # [start, end) of float32 bytes in the file


def scale_problem(data: bytes, spans: tuple[Span, ...]) -> str | None:
    """What is wrong with the scale whose float32 values lie at ``spans``; None if nothing."""
    size = sum(end - start for start, end in spans)
    if size % 4:
        return "its float data is not a whole number of float32 values"
    count = size // 4
    if count == 0:
        return "it holds no values"
    if count > MAX_SCALE_VALUES:
        return f"it holds {count:,} values, more than the {MAX_SCALE_VALUES:,} of any layer"
    values = array("f")
    for start, end in spans:
        values.frombytes(data[start:end])
    if sys.byteorder == "big":
        values.byteswap()  # ONNX stores little-endian
    if not all(math.isfinite(v) for v in values):
        return "it holds NaN or infinite values"
    if not all(v > 0.0 for v in values):
        return "it holds zero or negative values"
    return None
