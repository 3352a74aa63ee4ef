"""The mirror: the upstream u2netp checkpoint exported as ``u2netp_mirror_v1`` ONNX + manifest.

The export is an export plus a check: the graph is written only after
``onnx.checker`` accepts it and ONNX Runtime reproduces PyTorch's fused map
``d0`` on real images at three sizes (one of them odd) within
:data:`PARITY_TOLERANCE`. Both outputs are written atomically at the end, so a
failed run leaves nothing behind, and they are byte-identical across runs with
the same inputs (no timestamps, no absolute paths).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmafx_saliency import __version__
from vmafx_saliency._util import (
    atomic_write_bytes,
    check_can_write,
    check_inputs_spared,
    sha256_bytes,
    sha256_file,
)
from vmafx_saliency.errors import ExportError, UsageError
from vmafx_saliency.supply.export import lazy
from vmafx_saliency.supply.export.checkpoints import load_state_dict_file, load_state_dict_into
from vmafx_saliency.supply.export.images import DEFAULT_IMAGES, ParityInput, parity_inputs
from vmafx_saliency.supply.export.onnx import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    ParityFigure,
    count_ops,
    export_onnx_bytes,
    parity_check,
    seeded_torch,
)
from vmafx_saliency.supply.export.upstream import (
    DEFAULT_COMMIT,
    LICENSE_NAMES,
    UPSTREAM_CHECKPOINT,
    UPSTREAM_MODEL_FILE,
    UPSTREAM_REPO,
    UpstreamCheckout,
    audit_upstream_checkout,
    load_upstream_class,
    resolve_license,
)

MODEL_ID = "u2netp_mirror_v1"
LICENSE_SPDX = "Apache-2.0"
SELECTED_OUTPUT = "d0"
EXPORTER = "torch.onnx (TorchScript, dynamo=False)"
MANIFEST_SCHEMA = "vmafx-saliency/export-manifest/v1"
PRODUCER_NAME = "vmafx-saliency"

# ONNX Runtime vs PyTorch, max abs difference of the [0, 1] map. Both run fp32
# on CPU, so real disagreements are ~1e-6; this leaves room for kernel order.
PARITY_TOLERANCE = 5e-4

CHANGES_STATEMENT = (
    "Converted by vmafx-saliency from the upstream U^2-Net PyTorch checkpoint of "
    "U2NETP(3, 1): format conversion PyTorch -> ONNX opset 17; of the seven "
    "outputs d0..d6 only the fused map d0 is kept and renamed 'saliency_map'; "
    "the input is named 'input'; height and width are dynamic. The weights are "
    "unchanged (not retrained); eval-mode BatchNorm is folded into the "
    "convolutions by the exporter, which does not change the function."
)
ATTRIBUTION = (
    "U^2-Net small (u2netp) by Xuebin Qin, Zichen Zhang, Chenyang Huang, "
    "Masood Dehghan, Osmar R. Zaiane and Martin Jagersand; 'U^2-Net: Going Deeper "
    "with Nested U-Structure for Salient Object Detection', Pattern Recognition "
    "106 (2020) 107404; licensed under the Apache License, Version 2.0."
)
# Keys of the ONNX metadata_props every mirror carries.
METADATA_KEYS: tuple[str, ...] = (
    "model_id",
    "upstream_repo",
    "upstream_commit",
    "upstream_checkpoint_sha256",
    "license",
    "attribution",
    "changes",
    "exporter",
)


# --- results ----------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    output: Path
    manifest: Path
    sha256: str
    bytes: int
    parity: tuple[ParityFigure, ...]
    params: int
    op_counts: dict[str, int] = field(default_factory=dict)
    checkpoint_sha256: str = ""

    def render(self) -> str:
        nodes = sum(self.op_counts.values())
        lines = [
            f"wrote {self.output} ({self.bytes:,} bytes, sha256 {self.sha256})",
            f"wrote {self.manifest}",
            f"  {MODEL_ID}: {self.params:,} parameters, opset {OPSET}, "
            f"{nodes} nodes of {len(self.op_counts)} op types",
        ]
        for fig in self.parity:
            lines.append(
                f"  parity {fig.height}x{fig.width}: max |ORT - torch| = "
                f"{fig.max_abs_diff:.2e} <= {fig.tolerance:.0e} ({fig.image})"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class _Source:
    """Where the weights and the net's code come from: a checkpoint, perhaps a checkout."""

    checkpoint: Path
    label: str  # the checkpoint as the manifest names it: no absolute path
    checkout: UpstreamCheckout | None
    upstream_cls: Any | None  # the checkout's U2NETP class; None: the project's own


@dataclass(frozen=True)
class _Provenance:
    """What the manifest and the metadata say of the upstream weights and their licence."""

    commit: str
    checkpoint_sha256: str
    license_file: Path
    notice_present: bool


@dataclass(frozen=True)
class _Exported:
    """The finalised ONNX bytes and what the check found."""

    onnx_bytes: bytes
    sha256: str
    figures: tuple[ParityFigure, ...]
    op_counts: dict[str, int]
    params: int


# --- the mirror -------------------------------------------------------------


def export_mirror(
    *,
    checkpoint: Path | None = None,
    upstream_dir: Path | None = None,
    output: Path = Path("models/u2netp_mirror_v1.onnx"),
    manifest_out: Path | None = None,
    commit: str = DEFAULT_COMMIT,
    images_dir: Path | None = None,
    strict: bool = True,
    force: bool = False,
) -> ExportResult:
    """Export the u2netp checkpoint to ``u2netp_mirror_v1`` (ONNX + manifest).

    Without ``upstream_dir`` the project's own U2NETP is used; with it, the
    checkout's ``model/u2net.py`` (after a licence audit) and, unless
    ``checkpoint`` is given, its ``saved_models/u2netp/u2netp.pth``.
    """
    reads: list[tuple[str, Path | None]] = [
        ("--checkpoint", checkpoint),
        ("--upstream-dir", upstream_dir),
        ("--images-dir", images_dir) if images_dir else ("the parity images", DEFAULT_IMAGES),
    ]
    if checkpoint is not None:  # the licence text it may take from beside the checkpoint
        reads += [("a licence beside --checkpoint", checkpoint.parent / n) for n in LICENSE_NAMES]
    manifest_path = _check_request(output, manifest_out, reads=reads, commit=commit, force=force)
    # A missing export extra is named before any work too.
    lazy.torch()
    lazy.onnx()
    lazy.onnxruntime()

    source = _resolve_source(checkpoint, upstream_dir)
    state = load_state_dict_file(source.checkpoint)
    # Read the images before the export, so a bad --images-dir fails fast.
    inputs = parity_inputs(images_dir)
    provenance = _provenance(source, commit)
    model, params = _load_model(source, state, strict=strict)
    exported = _export_checked(model, inputs, provenance, params=params)
    manifest = _manifest(source, provenance, exported, output=output, strict=strict)
    _write_pair(output, exported.onnx_bytes, manifest_path, manifest, force=force)
    return ExportResult(
        output=output,
        manifest=manifest_path,
        sha256=exported.sha256,
        bytes=len(exported.onnx_bytes),
        parity=exported.figures,
        params=exported.params,
        op_counts=exported.op_counts,
        checkpoint_sha256=provenance.checkpoint_sha256,
    )


def _check_request(
    output: Path,
    manifest_out: Path | None,
    *,
    reads: list[tuple[str, Path | None]],
    commit: str,
    force: bool,
) -> Path:
    """The manifest's path, once both outputs may be written and the commit is a hash.

    ``reads``: the export's inputs, which neither output may write over, --force or not.
    """
    manifest_path = manifest_out or output.with_name(output.name + ".manifest.json")
    if manifest_path.resolve() == output.resolve():
        raise UsageError(f"the manifest path {manifest_path} equals the output path: change one")
    check_inputs_spared(reads, files=[("--output", output), ("the manifest", manifest_path)])
    # Refuse before any work, so a slow export never ends in a refusal.
    check_can_write(output, force=force)
    check_can_write(manifest_path, force=force)
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit):
        raise UsageError(f"--commit {commit!r} is not a git commit hash: pass e.g. ac7e1c81")
    return manifest_path


def _resolve_source(checkpoint: Path | None, upstream_dir: Path | None) -> _Source:
    """The checkpoint to load and the net's code: an audited checkout's, or the project's."""
    if upstream_dir is None:
        if checkpoint is None:
            raise UsageError(
                "no checkpoint: pass --checkpoint PATH/u2netp.pth or --upstream-dir with a "
                f"checkout of {UPSTREAM_REPO} holding {UPSTREAM_CHECKPOINT}"
            )
        return _Source(checkpoint, checkpoint.name, None, None)
    checkout = audit_upstream_checkout(upstream_dir)
    upstream_cls = load_upstream_class(checkout)
    if checkpoint is None:
        return _Source(
            upstream_dir / UPSTREAM_CHECKPOINT, UPSTREAM_CHECKPOINT, checkout, upstream_cls
        )
    return _Source(checkpoint, checkpoint.name, checkout, upstream_cls)


def _provenance(source: _Source, commit: str) -> _Provenance:
    """The checkpoint's digest, the licence text shipped with it, and whether a NOTICE is."""
    checkpoint_sha256 = sha256_file(source.checkpoint)
    license_file = resolve_license(source.checkout, source.checkpoint)
    notice_present = (
        source.checkout.notice_present
        if source.checkout is not None
        else (source.checkpoint.parent / "NOTICE").is_file()
    )
    return _Provenance(commit, checkpoint_sha256, license_file, notice_present)


def _build_net(upstream_cls: Any | None) -> Any:
    if upstream_cls is not None:
        return upstream_cls(3, 1)
    from vmafx_saliency.nets.u2netp import U2NETP

    return U2NETP(3, 1)


def _load_model(source: _Source, state: dict[str, Any], *, strict: bool) -> tuple[Any, int]:
    """The net with the checkpoint loaded, its fused map ``d0`` selected; and its parameters."""
    with seeded_torch(lazy.torch()):
        net = _build_net(source.upstream_cls)
    load_state_dict_into(net, state, strict=strict, source=f"checkpoint {source.checkpoint}")
    from vmafx_saliency.nets.u2netp import FusedOutput

    model = FusedOutput(net).eval()
    return model, int(sum(p.numel() for p in net.parameters()))


def _export_checked(
    model: Any, inputs: list[ParityInput], provenance: _Provenance, *, params: int
) -> _Exported:
    """Export, stamp the metadata, run the checker, then check parity and count the ops."""
    exporter = f"{EXPORTER}, torch {lazy.torch().__version__}"
    raw = export_onnx_bytes(model, opset=OPSET)
    onnx_bytes = _finalise_model(
        raw,
        commit=provenance.commit,
        checkpoint_sha256=provenance.checkpoint_sha256,
        exporter=exporter,
    )
    figures = parity_check(model, onnx_bytes, inputs, PARITY_TOLERANCE)
    op_counts = count_ops(onnx_bytes)
    return _Exported(onnx_bytes, sha256_bytes(onnx_bytes), tuple(figures), op_counts, params)


def _finalise_model(raw: bytes, *, commit: str, checkpoint_sha256: str, exporter: str) -> bytes:
    """Add metadata_props and fixed producer fields; run the ONNX checker."""
    onnx = lazy.onnx()
    model = onnx.load_from_string(raw)
    model.producer_name = PRODUCER_NAME
    model.producer_version = __version__
    model.doc_string = f"{MODEL_ID}: U^2-Net small (u2netp) saliency map, {LICENSE_SPDX}"
    metadata = {
        "model_id": MODEL_ID,
        "upstream_repo": UPSTREAM_REPO,
        "upstream_commit": commit,
        "upstream_checkpoint_sha256": checkpoint_sha256,
        "license": LICENSE_SPDX,
        "attribution": ATTRIBUTION,
        "changes": CHANGES_STATEMENT,
        "exporter": exporter,
    }
    del model.metadata_props[:]
    for key in METADATA_KEYS:
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = metadata[key]
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejects the exported graph: {exc}") from exc
    serialized: bytes = model.SerializeToString(deterministic=True)
    return serialized


def _manifest(
    source: _Source, provenance: _Provenance, exported: _Exported, *, output: Path, strict: bool
) -> bytes:
    """The export manifest: upstream, licence, export, output, ops, parity; stable bytes."""
    architecture: dict[str, str] = (
        {
            "source": "upstream checkout",
            "file": UPSTREAM_MODEL_FILE,
            "sha256": sha256_file(source.checkout.model_file),
        }
        if source.checkout is not None
        else {"source": "vmafx_saliency.nets.u2netp.U2NETP"}
    )
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model_id": MODEL_ID,
        "upstream": {
            "repo": UPSTREAM_REPO,
            "commit": provenance.commit,
            "checkpoint": {"path": source.label, "sha256": provenance.checkpoint_sha256},
            "licence": {
                "spdx": LICENSE_SPDX,
                "file": provenance.license_file.name,
                "sha256": sha256_file(provenance.license_file),
            },
            "notice_present": provenance.notice_present,
            "architecture": architecture,
        },
        "export": {
            "opset": OPSET,
            "input_names": [INPUT_NAME],
            "output_names": [OUTPUT_NAME],
            "dynamic_axes": {"height": 2, "width": 3},
            "selected_output": SELECTED_OUTPUT,
            "exporter": EXPORTER,
            "strict_load": strict,
            "versions": {
                "vmafx_saliency": __version__,
                "torch": str(lazy.torch().__version__),
                "onnx": str(lazy.onnx().__version__),
                "onnxruntime": str(lazy.onnxruntime().__version__),
            },
        },
        "output": {
            "file": output.name,
            "sha256": exported.sha256,
            "bytes": len(exported.onnx_bytes),
        },
        "op_types": exported.op_counts,
        "params": exported.params,
        "parity": [fig.to_json() for fig in exported.figures],
        "metadata_props": list(METADATA_KEYS),
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_pair(
    output: Path, onnx_bytes: bytes, manifest_path: Path, manifest: bytes, *, force: bool
) -> None:
    """Write the ONNX, then its manifest; the ONNX is taken back if the manifest fails."""
    atomic_write_bytes(output, onnx_bytes, force=force)
    try:
        atomic_write_bytes(manifest_path, manifest, force=force)
    except BaseException:
        # An ONNX without its manifest is not a release asset: take it back.
        with contextlib.suppress(FileNotFoundError):
            output.unlink()
        raise
