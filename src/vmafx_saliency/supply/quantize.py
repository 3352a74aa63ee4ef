"""Static INT8 quantisation of a model (QDQ format) through ``onnxruntime.quantization``.

:func:`quantize_qdq` takes a float model's bytes and calibration inputs (model
input tensors, pre-processed exactly as the extractor feeds the model: the
caller makes them, see ``science.quantize``) and returns the QDQ model's
bytes with the recipe that made it. ONNX Runtime inserts ``QuantizeLinear`` /
``DequantizeLinear`` pairs around the quantised ops; the scanner allows those
two ops only with scales and zero points that are initializers of the right
types. The opset imports ONNX Runtime's tools add for domains the graph does
not use are stripped, so the result scans clean.

The ``onnx`` package is needed (``pip install 'vmafx-saliency[quantize]'``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vmafx_saliency._util import require, sweep_stale_temporaries
from vmafx_saliency.errors import UsageError

__all__ = ["METHODS", "QuantRecipe", "quantize_qdq", "strip_unused_opsets"]

_TEMP_PREFIX = "vmafx-quantize-"  # the working folder's, in the system's temporary folder
Method = Literal["minmax", "entropy", "percentile"]
METHODS: tuple[Method, ...] = ("minmax", "entropy", "percentile")


@dataclass(frozen=True, kw_only=True)
class QuantRecipe:
    """How a model is quantised: the calibration method and what stays in float.

    ``keep_float`` names nodes ONNX Runtime must leave in float (the first and
    last convolutions, say); ``percentile`` is used by that method only.
    """

    method: Method = "minmax"
    per_channel: bool = True
    percentile: float = 99.999
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(
                f"calibration method {self.method!r}: give one of {', '.join(METHODS)}"
            )
        if not 90.0 <= self.percentile < 100.0:
            raise UsageError(f"percentile {self.percentile}: give a value in [90, 100)")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8",
            "method": self.method,
            "per_channel": self.per_channel,
            "percentile": self.percentile if self.method == "percentile" else None,
            "keep_float": list(self.keep_float),
        }


def quantize_qdq(
    data: bytes, inputs: Iterable[np.ndarray], *, recipe: QuantRecipe, input_name: str = "input"
) -> bytes:
    """The QDQ INT8 model of ``data`` calibrated on ``inputs``; its bytes (opsets stripped)."""
    onnx = require("onnx", purpose="quantisation", extra="quantize")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }

    _check_keep_float(onnx.load_from_string(data), recipe.keep_float)
    tensors = iter(inputs)
    first = next(tensors, None)
    if first is None:
        raise UsageError("no calibration input: give a folder with images or clips")
    reader = _Feeds({input_name: tensor} for tensor in itertools.chain([first], tensors))
    # Named with our pid: a later run sweeps what a killed one left (SIGKILL, power cut).
    sweep_stale_temporaries(Path(tempfile.gettempdir()), _TEMP_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{_TEMP_PREFIX}{os.getpid()}.") as tmp:
        source, prepared, out = (Path(tmp) / n for n in ("in.onnx", "pre.onnx", "int8.onnx"))
        source.write_bytes(data)
        # Shape inference and graph clean-up first, as ONNX Runtime recommends.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        # ONNX Runtime's calibrators print their progress: keep it off our stdout.
        with contextlib.redirect_stdout(sys.stderr), _calibration_in_chunks():
            quantize_static(
                str(prepared),
                str(out),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=recipe.per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[recipe.method],
                nodes_to_exclude=list(recipe.keep_float),
                extra_options={"CalibPercentile": recipe.percentile},
            )
        model = onnx.load_from_string(out.read_bytes())
    strip_unused_opsets(model)
    return bytes(model.SerializeToString())


# What ONNX Runtime's calibrators may hold at once: they keep every input's
# intermediate outputs until all are read (tens of MB each for the student), so a
# large calibration set would exhaust memory.
CALIBRATION_MEMORY_FRACTION = 0.5  # of the memory this process may use
_PATCH_LOCK = threading.Lock()  # one quantisation patches the calibrators at a time


def _memory_limit() -> int:
    """Physical memory, or the cgroup's limit where it is lower (in a container)."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):  # no cgroup v2 file, or "max"
        limit = min(limit, int(Path("/sys/fs/cgroup/memory.max").read_text().strip()))
    return limit


@contextlib.contextmanager
def _calibration_in_chunks() -> Iterator[None]:
    """While open, the calibrators' ``collect_data`` takes its inputs in chunks that fit
    :data:`CALIBRATION_MEMORY_FRACTION` of memory. Ranges (MinMax) and histograms
    (entropy, percentile) merge from chunk to chunk in ONNX Runtime's own code; a set
    that fits is one chunk, as before.

    ``quantize_static`` builds its calibrator itself, so the method is wrapped here,
    for the one call, and put back.
    """
    from onnxruntime.quantization.calibrate import HistogramCalibrater, MinMaxCalibrater

    budget = int(_memory_limit() * CALIBRATION_MEMORY_FRACTION)
    with _PATCH_LOCK:
        originals = {cls: cls.collect_data for cls in (MinMaxCalibrater, HistogramCalibrater)}
        try:
            for cls, original in originals.items():
                cls.collect_data = _chunked(original, budget)
            yield
        finally:
            for cls, original in originals.items():
                cls.collect_data = original


def _chunked(original: Any, budget: int) -> Any:
    def collect_data(self: Any, reader: Any) -> None:
        first = reader.get_next()
        if first is None:
            original(self, reader)  # ONNX Runtime's own "no data" error
            return
        held = sum(np.asarray(o).nbytes for o in self.infer_session.run(None, first))
        size = max(1, budget // max(held, 1))
        pending = [first]
        while pending:
            while len(pending) < size and (more := reader.get_next()) is not None:
                pending.append(more)
            original(self, _Feeds(pending))
            more = reader.get_next()
            pending = [] if more is None else [more]

    return collect_data


class _Feeds:
    """A calibration data reader (``get_next``, all ONNX Runtime's calibrators call) over
    input feeds, one dict of name to tensor each."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _check_keep_float(model: Any, names: tuple[str, ...]) -> None:
    """A node to keep in float must exist: a typo would quietly quantise it."""
    known = {node.name for node in model.graph.node}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(
            f"--keep-float {', '.join(map(repr, unknown[:3]))}: no node of that name in the "
            "model (node names, as in 'python -c \"import onnx; print([n.name for n in "
            "onnx.load(MODEL).graph.node])\"')"
        )


def strip_unused_opsets(model: Any) -> None:
    """Drop the opset imports of domains no node (of any subgraph) uses, in place."""
    used = {""}
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            used.add(node.domain)
            stack.extend(attr.g for attr in node.attribute if attr.HasField("g"))
            for attr in node.attribute:
                stack.extend(attr.graphs)
    kept = [op for op in model.opset_import if op.domain in used or op.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(kept)
