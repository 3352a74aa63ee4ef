"""The student as a file: ONNX export with its checks, sidecar and manifest, and back.

Export uses the mirror's export-plus-check: ONNX opset 17, parity against
PyTorch on real images at 320x320 and an odd size, the op-allowlist scan, the
deployment contract, no BatchNormalization left. :func:`folded_convs` reads an
exported student's convolutions back, for ``--init-from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency import __version__
from vmafx_saliency._util import read_capped, require, sha256_bytes
from vmafx_saliency.errors import ExportError, InputFileError
from vmafx_saliency.science.train.config import MODEL_ID, PARITY_IMAGES, TrainConfig
from vmafx_saliency.science.train.data import (
    STUDENT_PREPROCESSING,
    bt601_luma,
    list_images,
    load_rgb,
    require_torch,
)
from vmafx_saliency.supply.export.mirror import MANIFEST_SCHEMA  # one schema, both exports
from vmafx_saliency.supply.registry import Preprocessing, Sidecar

LICENSE_SPDX = "LicenseRef-BSD-3-Clause-Plus-Patent"
OPSET = 17
# Student vs ONNX Runtime, max abs difference of the [0, 1] map (issue 7).
PARITY_TOLERANCE = 1e-4
PARITY_SIZES: tuple[tuple[int, int], ...] = ((320, 320), (333, 517))
SIDECAR_NOTES = (
    "saliency_student_v2: tiny U-Net distilled from u2netp_mirror_v1 on luma tiled to RGB; "
    "same pre-processing as the mirror (320x320, divide by the image max, ImageNet mean/std)."
)
DESCRIPTION = (
    "Tiny U-Net saliency model trained by vmafx-saliency by distillation from the "
    "u2netp mirror (u2netp_mirror_v1) on luma tiled to RGB."
)


@dataclass(frozen=True)
class StudentExport:
    onnx_bytes: bytes
    sha256: str
    params: int
    macs_320: int
    op_counts: dict[str, int]
    parity: tuple[Any, ...]


def parity_inputs(images: Path | None = None) -> list[Any]:
    """Real images pre-processed the deployment way at :data:`PARITY_SIZES`.

    ``images``: a folder the user named (``--parity-images``), which must hold
    images that decode; without one, the shared images, else generated ones.
    ``train`` calls this before labelling too, so a bad folder costs no epochs.
    """
    from vmafx_saliency.supply.export import ParityInput, synthetic_image
    from vmafx_saliency.video.extract import preprocess

    torch_free = []
    if images is not None:
        try:
            files = list_images(images)
        except InputFileError as exc:
            raise InputFileError(f"--parity-images: {exc}") from exc
    elif PARITY_IMAGES is not None and PARITY_IMAGES.is_dir():
        files = list_images(PARITY_IMAGES)
    else:
        files = []  # installed, or no ../shared: generated images
    for index, size in enumerate(PARITY_SIZES):
        if files:
            path = files[index % len(files)]
            rgb, name = load_rgb(path), path.name
        else:
            rgb, name = np.asarray(synthetic_image(size, seed=index)), f"synthetic(seed={index})"
        x = preprocess(
            bt601_luma(rgb), bit_depth=8, color_range="full", pre=STUDENT_PREPROCESSING, size=size
        )
        torch_free.append(ParityInput(name, x))
    return torch_free


def flush_subnormal_weights(model: Any) -> int:
    """Set the float32 initialisers' subnormal values to zero in place; return how many.

    Folding a BatchNorm whose gamma is tiny leaves weights below 1.2e-38, and
    arithmetic on subnormals is slow on x86: on the Intel Xeon of 2026-12-04
    the shipped student ran at 29.91 ms a frame in ONNX Runtime with its 3,056
    of them and 12.55 ms without, with the same map
    (benchmarks/subnormal_weights.py). Zero is within 1.2e-38 of each.
    """
    onnx = require("onnx", purpose="export", extra="train")
    flushed = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = onnx.numpy_helper.to_array(tensor)
        subnormal = (values != 0) & (np.abs(values) < np.finfo(np.float32).tiny)
        if subnormal.any():
            flushed += int(subnormal.sum())
            cleaned = np.where(subnormal, np.float32(0.0), values).astype(np.float32)
            tensor.CopyFrom(onnx.numpy_helper.from_array(cleaned, tensor.name))
    return flushed


def _finalise(raw: bytes, *, teacher_sha256: str, training_sha256: str) -> bytes:
    onnx = require("onnx", purpose="export", extra="train")
    model = onnx.load_from_string(raw)
    flush_subnormal_weights(model)
    model.producer_name = "vmafx-saliency"
    model.producer_version = __version__
    model.doc_string = f"{MODEL_ID}: {DESCRIPTION} {LICENSE_SPDX}"
    metadata = {
        "model_id": MODEL_ID,
        "source": "fork-trained",
        "license": LICENSE_SPDX,
        "teacher_sha256": teacher_sha256,
        "training_data_sha256": training_sha256,
        "description": DESCRIPTION,
    }
    # The exporter cannot infer the channel count through the final dynamic
    # Resize; the contract wants it spelled out: [1, 1, height, width].
    dims = model.graph.output[0].type.tensor_type.shape.dim
    for index, value in enumerate((1, 1, "height", "width")):
        dims[index].Clear()
        if isinstance(value, int):
            dims[index].dim_value = value
        else:
            dims[index].dim_param = value
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejects the exported graph: {exc}") from exc
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def student_onnx_bytes(net: Any, *, teacher_sha256: str = "", training_sha256: str = "") -> bytes:
    """The student's ONNX bytes (eval mode: BatchNorm folded), metadata set, checker run."""
    from vmafx_saliency.supply.export import export_onnx_bytes

    raw = export_onnx_bytes(net.eval(), opset=OPSET)
    return _finalise(raw, teacher_sha256=teacher_sha256, training_sha256=training_sha256)


def export_student(
    net: Any,
    *,
    teacher_sha256: str = "",
    training_sha256: str = "",
    images: Path | None = None,
) -> StudentExport:
    """Export + check: ONNX opset 17, parity, scan, contract, BatchNorm folded."""
    from vmafx_saliency.nets.student import count_macs, count_params
    from vmafx_saliency.supply import contract, scan
    from vmafx_saliency.supply.export import count_ops, parity_check

    net = net.eval()
    data = student_onnx_bytes(net, teacher_sha256=teacher_sha256, training_sha256=training_sha256)
    figures = parity_check(net, data, parity_inputs(images), PARITY_TOLERANCE)
    ops = count_ops(data)
    if "BatchNormalization" in ops:
        raise ExportError("BatchNormalization survived the export: export the net in eval mode")
    report = scan.scan_bytes(data, path=MODEL_ID)
    if report.violations:
        raise ExportError(f"the op-allowlist scanner refuses the export: {report.violations[0]}")
    contract.check_contract_bytes(data, source=MODEL_ID)
    return StudentExport(
        data, sha256_bytes(data), count_params(net), count_macs(net), ops, tuple(figures)
    )


def student_sidecar(pre: Preprocessing = STUDENT_PREPROCESSING) -> Sidecar:
    return Sidecar(
        model_id=MODEL_ID,
        preprocessing=pre,
        output_range=(0.0, 1.0),
        opset=OPSET,
        notes=SIDECAR_NOTES,
    )


def student_manifest(
    export: StudentExport,
    cfg: TrainConfig,
    *,
    teacher_sha256: str,
    onnx_file: str,
    record_file: str,
    versions: dict[str, str],
) -> dict[str, Any]:
    """The manifest beside the exported student: where it came from and what it holds."""
    return {
        "schema": MANIFEST_SCHEMA,
        "model_id": MODEL_ID,
        "source": {
            "type": "fork-trained",
            "teacher": {"model": "u2netp_mirror_v1", "sha256": teacher_sha256},
            "training_record": record_file,
            "licence": {"spdx": LICENSE_SPDX, "file": "LICENSE"},
            "architecture": {
                "source": "vmafx_saliency.nets.student.StudentUNet",
                "widths": list(cfg.widths),
                "stem_convs": cfg.stem_convs,
                "separable": cfg.separable,
            },
        },
        "export": {
            "opset": OPSET,
            "input_names": ["input"],
            "output_names": ["saliency_map"],
            "dynamic_axes": {"height": 2, "width": 3},
            "exporter": "torch.onnx (TorchScript, dynamo=False)",
            "versions": {
                k: versions[k]
                for k in ("vmafx_saliency", "torch", "onnx", "onnxruntime")
                if k in versions
            },
        },
        "output": {
            "file": onnx_file,
            "sha256": export.sha256,
            "bytes": len(export.onnx_bytes),
        },
        "op_types": export.op_counts,
        "params": export.params,
        "macs_320x320": export.macs_320,
        "parity": [fig.to_json() for fig in export.parity],
    }


# --- back from the file (--init-from) ---------------------------------------


def _conv_tensor(torch: Any, numpy_helper: Any, path: Path, tensor: Any) -> Any:
    """A Conv initialiser as a torch tensor; one that does not decode is refused."""
    if len(tensor.external_data) or tensor.data_location == 1:  # TensorProto.EXTERNAL
        # onnx would open the file the tensor names: the product reads no file so named.
        raise InputFileError(
            f"--init-from {path}: Conv weight {tensor.name!r} is kept in an external file: "
            "give a student exported by `train` (its weights inside the .onnx)"
        )
    try:
        return torch.from_numpy(numpy_helper.to_array(tensor).copy())
    except Exception as exc:
        # Any way the tensor's bytes fail to be its shape and type (numpy's reshape,
        # onnx's checks of external data, a dtype torch lacks) is one answer: broken.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(
            f"--init-from {path}: Conv weight {tensor.name!r} does not decode ({first}): "
            "give a student exported by `train`"
        ) from exc


def read_student_onnx(path: Path) -> bytes:
    """The bytes of the student ONNX that ``--init-from`` names, under the model-file cap."""
    from vmafx_saliency.supply.scan import DEFAULT_MAX_BYTES

    return read_capped(
        path,
        cap=DEFAULT_MAX_BYTES,
        what="--init-from",
        missing="give a run's checkpoint.pt or a student ONNX",
    )


def folded_convs(path: Path, data: bytes | None = None) -> list[tuple[Any, Any]]:
    """An exported student's Conv weights and biases, in graph order, as torch tensors.

    ``data``: the file's bytes, if the caller has read them already (the callers
    in :mod:`.init_from` pass bytes the scanner has passed: a hostile file meets
    our walk before onnx's parser). Only the Conv initialisers are read here;
    :func:`init_from_onnx` runs the graph to check the net loaded from them.
    """
    torch = require_torch()
    onnx = require("onnx", purpose="training", extra="train")
    numpy_helper = require("onnx.numpy_helper", purpose="training", extra="train")
    decode_error = require("google.protobuf.message", purpose="training", extra="train").DecodeError
    try:
        model = onnx.load_from_string(data if data is not None else read_student_onnx(path))
    except decode_error as exc:
        raise InputFileError(f"--init-from {path}: cannot read it as ONNX: {exc}") from exc
    weights = {i.name: i for i in model.graph.initializer}
    # The exporter shares equal initialisers (e.g. the zero biases of an untrained net)
    # through Identity nodes: follow those to the stored tensor.
    aliases = {
        node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"
    }

    def stored(name: str) -> str:
        seen = set()
        while name not in weights and name in aliases and name not in seen:
            seen.add(name)
            name = aliases[name]
        return name

    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        names = [stored(n) for n in node.input[1:] if n]
        if not names or any(n not in weights for n in names):
            raise InputFileError(
                f"--init-from {path}: Conv {node.name or '?'} takes its weights from another "
                "node, not from the file's initialisers: give a student exported by `train`"
            )
        tensors = [_conv_tensor(torch, numpy_helper, path, weights[n]) for n in names]
        convs.append((tensors[0], tensors[1] if len(tensors) > 1 else None))
    if not convs:
        raise InputFileError(
            f"--init-from {path}: holds no Conv node: give a student exported by `train` "
            "(e.g. src/vmafx_saliency/models/saliency_student_v2.onnx)"
        )
    return convs


__all__ = [
    "DESCRIPTION",
    "LICENSE_SPDX",
    "MANIFEST_SCHEMA",
    "OPSET",
    "PARITY_SIZES",
    "PARITY_TOLERANCE",
    "SIDECAR_NOTES",
    "StudentExport",
    "export_student",
    "flush_subnormal_weights",
    "folded_convs",
    "parity_inputs",
    "read_student_onnx",
    "student_manifest",
    "student_onnx_bytes",
    "student_sidecar",
]
