"""The models under evaluation: ``--models`` parsed, loaded through the loader gate, costed.

A ``--models`` entry is a registry id or an ONNX file loaded ad hoc with its
sidecar; ids key the report, so each model appears once. The cost of a model is
its parameter count and its multiply-accumulates at the inference size, counted
on the ONNX graph (:data:`CONVENTIONS` ``["costs"]`` says what is counted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vmafx_saliency._util import require
from vmafx_saliency.errors import MissingDependencyError, UsageError

if TYPE_CHECKING:
    from vmafx_saliency.supply.loader import LoadedModel
    from vmafx_saliency.supply.registry import Preprocessing


@dataclass(frozen=True)
class ModelSpec:
    """A ``--models`` entry: a registry id, or an ONNX file loaded ad hoc with its sidecar."""

    text: str
    model_id: str | None = None
    path: Path | None = None
    sidecar: Path | None = None


def spec_inputs(specs: Sequence[ModelSpec]) -> list[tuple[str, Path | None]]:
    """The files ad-hoc models are read from (:func:`_util.check_inputs_spared`)."""
    from vmafx_saliency.supply.registry import sidecar_beside

    found: list[tuple[str, Path | None]] = []
    for spec in specs:
        if spec.path is not None:
            sidecar = spec.sidecar or sidecar_beside(spec.path)
            found += [("--models", spec.path), ("the sidecar", sidecar)]
    return found


def _is_path(token: str) -> bool:
    return token.lower().endswith(".onnx") or "/" in token or os.sep in token


def parse_models(text: str, *, sidecars: Sequence[Path] = ()) -> tuple[ModelSpec, ...]:
    """``ID[,ID...]``: registry ids and .onnx paths; ``--sidecar`` files pair with the paths."""
    tokens = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in tokens):
        raise UsageError(
            f"--models {text!r}: give comma-separated registry ids or .onnx paths, e.g. "
            "u2netp_mirror_v1,models/student.onnx"
        )
    paths = [t for t in tokens if _is_path(t)]
    if sidecars and len(sidecars) != len(paths):
        raise UsageError(
            f"{len(sidecars)} --sidecar file(s) for {len(paths)} model path(s): give one "
            "--sidecar per .onnx path, in order, or none to use <stem>.sidecar.json beside each"
        )
    queue = list(sidecars)
    specs = []
    for token in tokens:
        if _is_path(token):
            specs.append(
                ModelSpec(token, path=Path(token), sidecar=queue.pop(0) if queue else None)
            )
        else:
            specs.append(ModelSpec(token, model_id=token))
    return tuple(specs)


@dataclass(frozen=True)
class EvalModel:
    id: str
    loaded: LoadedModel
    pre: Preprocessing
    source: Literal["registry", "ad-hoc"]


def load_models(
    specs: Sequence[ModelSpec], *, threads: int | None, signed: bool = False, provider: str = "cpu"
) -> list[EvalModel]:
    """Every model through the loader gate, on ``provider``; ids must be unique (they key
    the report)."""
    from vmafx_saliency.supply import loader
    from vmafx_saliency.supply.registry import Registry, Sidecar, sidecar_beside

    models: list[EvalModel] = []
    registry: Registry | None = None
    for spec in specs:
        if spec.path is not None:
            if signed:
                raise UsageError(
                    f"--signed needs registered models: {spec.path} is an ad-hoc file with no "
                    "pin or bundle"
                )
            sidecar_path = spec.sidecar or sidecar_beside(spec.path)
            if sidecar_path is None:
                raise UsageError(
                    f"{spec.path}: no sidecar JSON declares its pre-processing: pass --sidecar "
                    f"FILE or put {spec.path.stem}.sidecar.json beside it"
                )
            sidecar = Sidecar.load(sidecar_path)
            loaded = loader.load_ad_hoc(
                spec.path, sidecar=sidecar, threads=threads, provider=provider
            )
            models.append(EvalModel(spec.path.stem, loaded, sidecar.preprocessing, "ad-hoc"))
        else:
            assert spec.model_id is not None
            registry = registry or Registry.load()
            entry = registry.get(spec.model_id)
            policy = loader.Policy.SIGNED if signed else loader.Policy.PINNED
            loaded = loader.load_entry(entry, policy=policy, threads=threads, provider=provider)
            side = loaded.sidecar or entry.load_sidecar()
            models.append(EvalModel(entry.id, loaded, side.preprocessing, "registry"))
    ids = [m.id for m in models]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise UsageError(
            f"--models names {', '.join(dupes)} more than once (ad-hoc files are named by their "
            "stem): each model appears once in a report"
        )
    return models


def _threads(requested: int | None) -> int:
    """``--threads``, or the extractor's default (every core) when it is not given."""
    from vmafx_saliency.video.extract import check_threads, default_threads

    if requested is not None:
        check_threads(requested)
        return requested
    return default_threads()


# --- costs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCost:
    params: int | None  # None: the onnx package is not installed (the note says so)
    macs: int | None
    note: str | None = None


def count_cost(data: bytes, size: tuple[int, int]) -> ModelCost:
    """Parameters and MACs of an ONNX model at ``size`` = (H, W); see CONVENTIONS['costs']."""
    try:
        onnx = require("onnx", purpose="counting MACs", extra="eval")
    except MissingDependencyError as exc:
        return ModelCost(params=None, macs=None, note=str(exc))
    model = onnx.load_from_string(data)
    params = sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)
    # The input by its contract name: an initializer may be listed as an input too.
    graph_input = next((i for i in model.graph.input if i.name == "input"), model.graph.input[0])
    dims = graph_input.type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, size[0], size[1]), strict=False):
        dim.ClearField("dim_param")
        dim.dim_value = value
    # data_prop: the decoder's Resize sizes come from Shape/Gather/Concat arithmetic,
    # which plain shape inference leaves unknown.
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 -- onnx's InferenceError and its C++ errors
        # The model passed the loader's gate; only the cost count is lost, and said.
        return ModelCost(params=params, macs=None, note=f"MACs not counted: {exc}"[:300])
    shapes: dict[str, list[int | None]] = {}
    for info in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        shapes[info.name] = [
            d.dim_value if d.HasField("dim_value") else None
            for d in info.type.tensor_type.shape.dim
        ]
    weights = {t.name: list(t.dims) for t in inferred.graph.initializer}
    macs = 0
    unknown: list[str] = []
    for node in inferred.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        out = shapes.get(node.output[0])
        if out is None or any(d is None for d in out):
            unknown.append(node.name or node.output[0])
            continue
        out_elems = int(np.prod([d for d in out if d is not None], dtype=np.int64))
        if node.op_type == "Conv":
            w = weights.get(node.input[1]) or shapes.get(node.input[1])
            if w is None or any(d is None for d in w) or len(w) < 3:
                unknown.append(node.name or node.output[0])
                continue
            # The weight is [C_out, C_in / groups, kH, kW]: its dims after the first are
            # exactly the per-output-element multiply count.
            macs += out_elems * int(np.prod([d for d in w[1:] if d is not None], dtype=np.int64))
        else:
            a = shapes.get(node.input[0])
            if not a or a[-1] is None:
                unknown.append(node.name or node.output[0])
                continue
            transposed = any(x.name == "transA" and x.i for x in node.attribute)
            k = a[0] if node.op_type == "Gemm" and transposed else a[-1]
            macs += out_elems * int(k or 0)
    if unknown:
        return ModelCost(
            params=params,
            macs=None,
            note=f"shape inference left {len(unknown)} Conv/MatMul output(s) unknown",
        )
    return ModelCost(params=params, macs=macs)
