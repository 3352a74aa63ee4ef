"""ONNX: a torch module exported to ONNX bytes, its ops counted, its parity with PyTorch checked.

An export is an export plus a check: :func:`export_onnx_bytes` writes the graph
with the TorchScript exporter (dynamic height and width), and
:func:`parity_check` runs it in ONNX Runtime against PyTorch on each input,
raising :class:`~vmafx_saliency.errors.ParityError` beyond the tolerance.
These are shared by the mirror and the student export; torch, onnx and ONNX
Runtime are imported lazily.
"""

from __future__ import annotations

import collections
import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vmafx_saliency.errors import ExportError, ParityError
from vmafx_saliency.supply.export import lazy
from vmafx_saliency.supply.export.images import ParityInput

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "saliency_map"


@dataclass(frozen=True)
class ParityFigure:
    """One ONNX Runtime vs PyTorch comparison."""

    height: int
    width: int
    image: str
    max_abs_diff: float
    tolerance: float

    def to_json(self) -> dict[str, Any]:
        return {
            "size": [self.height, self.width],
            "image": self.image,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
        }


@contextlib.contextmanager
def seeded_torch(torch: Any, seed: int = 0) -> Iterator[None]:
    """Seed torch inside the block and restore the caller's RNG state after.

    The seed fixes the initial weights of a fresh net, which is what a
    non-strict load leaves in place for missing keys. ``use_deterministic_
    algorithms`` is not needed: the forward ops used here (conv, pool, bilinear
    resize) are deterministic on CPU, and it would cost a second of imports.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def export_onnx_bytes(
    module: Any,
    *,
    opset: int = OPSET,
    sample_size: tuple[int, int] = (320, 320),
    input_name: str = INPUT_NAME,
    output_name: str = OUTPUT_NAME,
) -> bytes:
    """Export a single-output image model to ONNX bytes (TorchScript exporter).

    ``module`` maps float32 [1, 3, H, W] to [1, C, H, W]; it is put in eval mode.
    Height and width are dynamic axes; constant folding is on.
    """
    torch = lazy.torch()
    module.eval()
    sample = torch.zeros(1, 3, *sample_size, dtype=torch.float32)
    buffer = io.BytesIO()
    dims = {2: "height", 3: "width"}
    with warnings.catch_warnings(), seeded_torch(torch), torch.no_grad():
        # The TorchScript exporter is chosen on purpose (stable, opset 17 graph).
        warnings.filterwarnings(
            "ignore",
            message=".*legacy TorchScript-based ONNX export.*",
            category=DeprecationWarning,
        )
        try:
            torch.onnx.export(
                module,
                (sample,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: dims, output_name: dims},
                do_constant_folding=True,
            )
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    return buffer.getvalue()


def _walk_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk_nodes(attr.g)
            for sub in attr.graphs:
                yield from _walk_nodes(sub)


def count_ops(onnx_bytes: bytes) -> dict[str, int]:
    """Op types and their counts, subgraphs included; ``domain::Op`` outside ai.onnx."""
    onnx = lazy.onnx()
    model = onnx.load_from_string(onnx_bytes)
    counts: collections.Counter[str] = collections.Counter()
    for node in _walk_nodes(model.graph):
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        counts[f"{domain}::{node.op_type}" if domain else node.op_type] += 1
    return dict(sorted(counts.items()))


def parity_check(
    module: Any,
    onnx_bytes: bytes,
    inputs: Sequence[ParityInput],
    tolerance: float,
) -> list[ParityFigure]:
    """Compare ONNX Runtime (from the bytes) with PyTorch on each input.

    ``module`` is the exported torch module; if it returns a tuple, its first
    element is compared. Raises :class:`ParityError` naming the size and the
    difference at the first input beyond ``tolerance``.
    """
    torch = lazy.torch()
    ort = lazy.onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {exc}") from exc
    input_name = session.get_inputs()[0].name
    module.eval()
    figures = []
    for item in inputs:
        _, _, height, width = item.array.shape
        try:
            with torch.no_grad():
                expected = module(torch.from_numpy(item.array))
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # E.g. an older upstream u2net.py, which upsamples by a fixed factor of 2 and
            # so only takes sizes divisible by 32: the deployment contract needs any size.
            hint = (
                ": the model code does not take any input size; with --upstream-dir, use a "
                "current U-2-Net checkout"
                if "size" in first.lower()
                else ": check the checkpoint and the model code"
            )
            raise ParityError(
                f"parity check at {height}x{width} ({item.image}): PyTorch cannot run the model "
                f"at this size ({first}){hint}"
            ) from exc
        if isinstance(expected, tuple | list):
            expected = expected[0]
        reference = expected.detach().cpu().numpy().astype(np.float32)
        actual = np.asarray(session.run(None, {input_name: item.array})[0], dtype=np.float32)
        if actual.shape != reference.shape:
            raise ParityError(
                f"parity check at {height}x{width} ({item.image}): ONNX Runtime gives shape "
                f"{list(actual.shape)}, PyTorch {list(reference.shape)}: the export is broken"
            )
        diff = float(np.max(np.abs(actual.astype(np.float64) - reference)))
        if not diff <= tolerance:  # also catches NaN
            raise ParityError(
                f"parity check at {height}x{width} ({item.image}): max |ONNX Runtime - "
                f"PyTorch| = {diff:.3e} exceeds the tolerance {tolerance:.1e}: "
                "the export is not faithful; nothing was written"
            )
        # Three significant digits keep the manifest byte-stable across runs.
        figures.append(ParityFigure(height, width, item.image, float(f"{diff:.3g}"), tolerance))
    return figures
