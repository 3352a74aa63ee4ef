"""Upstream u2netp checkpoint -> ``u2netp_mirror_v1`` ONNX model + manifest.

The export is an export plus a check: the graph is written only after
``onnx.checker`` accepts it and ONNX Runtime reproduces PyTorch's fused map
``d0`` on real images at three sizes (one of them odd) within
:data:`PARITY_TOLERANCE`. Both outputs are written atomically at the end, so a
failed run leaves nothing behind, and they are byte-identical across runs with
the same inputs (no timestamps, no absolute paths).

torch, onnx and Pillow are imported lazily (the ``export`` extra), so this module
imports without them. The helpers :func:`export_onnx_bytes`,
:func:`parity_check`, :func:`load_state_dict_file`, :func:`count_ops` and
:func:`preprocess_upstream` are meant for reuse (the student export).
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import io
import json
import logging
import re
import sys
import types
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vmafx_saliency import __version__
from vmafx_saliency._util import (
    PROJECT_ROOT,
    SHARED_DIR,
    atomic_write_bytes,
    check_can_write,
    require,
    sha256_bytes,
    sha256_file,
)
from vmafx_saliency.errors import (
    CheckpointError,
    ExportError,
    InputFileError,
    MissingDependencyError,
    ParityError,
    UpstreamCheckoutError,
    UsageError,
)

log = logging.getLogger(__name__)

MODEL_ID = "u2netp_mirror_v1"
UPSTREAM_REPO = "https://github.com/xuebinqin/U-2-Net"
DEFAULT_COMMIT = "ac7e1c81"
LICENSE_SPDX = "Apache-2.0"
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "saliency_map"
SELECTED_OUTPUT = "d0"
EXPORTER = "torch.onnx (TorchScript, dynamo=False)"
MANIFEST_SCHEMA = "vmafx-saliency/export-manifest/v1"
PRODUCER_NAME = "vmafx-saliency"

# ONNX Runtime vs PyTorch, max abs difference of the [0, 1] map. Both run fp32
# on CPU, so real disagreements are ~1e-6; this leaves room for kernel order.
PARITY_TOLERANCE = 5e-4
# (H, W): the upstream test size, a non-square one, and an odd one.
PARITY_SIZES: tuple[tuple[int, int], ...] = ((320, 320), (288, 352), (333, 517))
# Upstream test-time normalisation (data_loader.ToTensorLab, flag 0).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

UPSTREAM_MODEL_FILE = "model/u2net.py"
UPSTREAM_CHECKPOINT = "saved_models/u2netp/u2netp.pth"
_LICENSE_BESIDE_CHECKPOINT = ("LICENSE-U-2-Net.txt", "LICENSE", "LICENSE.txt")
_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

# src/vmafx_saliency/supply/export.py -> the project root (a source checkout).
_PROJECT_LICENSE = PROJECT_ROOT / "LICENSES" / "Apache-2.0-u2netp.txt"
_DEFAULT_IMAGES = SHARED_DIR / "data" / "images"

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


class ParityInput(NamedTuple):
    """A pre-processed input (float32 [1, 3, H, W]) and the name of its source."""

    image: str
    array: np.ndarray[Any, np.dtype[np.float32]]


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
class UpstreamCheckout:
    """An audited local checkout of github.com/xuebinqin/U-2-Net."""

    root: Path
    model_file: Path
    license_file: Path
    notice_present: bool


# --- lazy imports -----------------------------------------------------------


def _torch() -> Any:
    return require("torch", purpose="export")


def _onnx() -> Any:
    return require("onnx", purpose="export")


def _ort() -> Any:
    return require("onnxruntime", purpose="the export's parity check")


def _pil_image() -> Any:
    return require("PIL.Image", purpose="export")


# --- checkpoints ------------------------------------------------------------


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """Read a checkpoint as a flat ``state_dict``.

    Accepts a plain state_dict, ``{"state_dict": ...}`` and DataParallel
    ``module.`` prefixes. Only ``torch.load(..., weights_only=True)`` is used, so
    a checkpoint cannot run code.
    """
    torch = _torch()
    if not path.is_file():
        raise InputFileError(
            f"checkpoint {path} not found or not a file: pass --checkpoint with the path "
            f"of u2netp.pth (or --upstream-dir with a checkout holding {UPSTREAM_CHECKPOINT})"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint with weights_only=True "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            "pass a state_dict saved with torch.save(model.state_dict(), ...)"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a non-empty state_dict: "
            "pass a state_dict (or {'state_dict': ...}) saved with torch.save"
        )
    state: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor: "
                "pass a plain state_dict of tensors"
            )
        state[key] = value
    # DataParallel / DistributedDataParallel save every key under "module.".
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def load_state_dict_into(
    module: Any, state: Mapping[str, Any], *, strict: bool = True, source: str = "checkpoint"
) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``module``; return the (missing, unexpected) keys.

    With ``strict`` any mismatch raises :class:`CheckpointError` naming the
    first missing and the first unexpected key; without it the common keys are
    loaded and the mismatch is logged.
    """
    expected = list(module.state_dict())
    expected_set = set(expected)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected_set]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first {unexpected[0]!r}")
        summary = "; ".join(parts)
        if strict:
            raise CheckpointError(
                f"{source} does not match the U2NETP(3, 1) layout: {summary}: pass the "
                "upstream u2netp.pth (not u2net.pth), or --non-strict to load the common keys"
            )
        log.warning("%s: loading non-strictly: %s", source, summary)
    try:
        module.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:
        # Shape mismatches raise even with strict=False.
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{source} has tensors of the wrong shape for U2NETP(3, 1) ({first}): "
            "pass the upstream u2netp.pth"
        ) from exc
    return missing, unexpected


# --- upstream checkout ------------------------------------------------------


def _is_apache_2(text: str) -> bool:
    flat = " ".join(text.split())
    return "Apache License" in flat and "Version 2.0, January 2004" in flat


def audit_upstream_checkout(root: Path) -> UpstreamCheckout:
    """Check that ``root`` looks like U-2-Net under Apache-2.0; record its NOTICE."""
    if not root.is_dir():
        raise UpstreamCheckoutError(
            f"upstream checkout {root} is not a directory: pass --upstream-dir with a "
            f"clone of {UPSTREAM_REPO}"
        )
    model_file = root / UPSTREAM_MODEL_FILE
    if not model_file.is_file():
        raise UpstreamCheckoutError(
            f"upstream checkout {root} has no {UPSTREAM_MODEL_FILE}: pass --upstream-dir "
            f"with the root of a clone of {UPSTREAM_REPO}"
        )
    license_file = root / "LICENSE"
    if not license_file.is_file():
        raise UpstreamCheckoutError(
            f"upstream checkout {root} has no LICENSE file: use a full clone of "
            f"{UPSTREAM_REPO}, whose LICENSE is Apache-2.0"
        )
    try:
        text = license_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UpstreamCheckoutError(f"cannot read {license_file}: {exc}") from exc
    if not _is_apache_2(text):
        raise UpstreamCheckoutError(
            f"{license_file} is not the Apache License 2.0 text: the mirror is only "
            f"exported from an Apache-2.0 checkout of {UPSTREAM_REPO}; check the clone"
        )
    notice = any((root / name).is_file() for name in ("NOTICE", "NOTICE.txt", "NOTICE.md"))
    return UpstreamCheckout(root, model_file, license_file, notice)


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """Let upstream's unused ``from torchvision import models`` succeed.

    model/u2net.py imports torchvision but never uses it, and PyPI's torchvision
    does not import beside the pinned CPU torch. When torchvision is missing, an
    empty stand-in is registered for the duration of the import only.
    """
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    stub = types.ModuleType("torchvision")
    stub.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
    sys.modules["torchvision"] = stub
    try:
        yield
    finally:
        del sys.modules["torchvision"]


def load_upstream_class(checkout: UpstreamCheckout) -> Any:
    """Import ``U2NETP`` from the checkout's ``model/u2net.py``.

    The file is loaded under a private module name and not registered in
    ``sys.modules`` (no path edits), so it cannot shadow anything.
    """
    torch = _torch()
    digest = sha256_file(checkout.model_file)[:16]
    spec = importlib.util.spec_from_file_location(
        f"_vmafx_upstream_u2net_{digest}", checkout.model_file
    )
    if spec is None or spec.loader is None:
        raise UpstreamCheckoutError(f"cannot load {checkout.model_file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        with _torchvision_stand_in():
            spec.loader.exec_module(module)
    except ImportError as exc:
        # Upstream's u2net.py imports torchvision, which the export extra lacks.
        raise MissingDependencyError(
            f"{checkout.model_file} imports {exc.name or 'a module'}, which is not "
            f"installed: install it for torch {torch.__version__} (e.g. pip install "
            "torchvision), or export without --upstream-dir"
        ) from exc
    except Exception as exc:
        raise UpstreamCheckoutError(
            f"{checkout.model_file} failed to import ({type(exc).__name__}: {exc}): "
            "check the checkout"
        ) from exc
    cls = getattr(module, "U2NETP", None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise UpstreamCheckoutError(
            f"{checkout.model_file} defines no torch.nn.Module class U2NETP: "
            f"check the checkout against {UPSTREAM_REPO}"
        )
    return cls


def _resolve_license(checkout: UpstreamCheckout | None, checkpoint: Path) -> Path:
    """The licence text shipped with the weights used (section 4(a) receipt)."""
    if checkout is not None:
        return checkout.license_file
    for name in _LICENSE_BESIDE_CHECKPOINT:
        candidate = checkpoint.parent / name
        if candidate.is_file():
            if _is_apache_2(candidate.read_text(encoding="utf-8", errors="replace")):
                return candidate
            log.warning("%s is not the Apache-2.0 text; not recording it", candidate)
    if _PROJECT_LICENSE.is_file():
        return _PROJECT_LICENSE
    raise InputFileError(
        f"no Apache-2.0 licence text found beside {checkpoint} nor at {_PROJECT_LICENSE}: "
        "put the upstream LICENSE beside the checkpoint or pass --upstream-dir"
    )


# --- images -----------------------------------------------------------------


def preprocess_upstream(image: Any, size: tuple[int, int]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Upstream test-time pre-processing: float32 [1, 3, H, W] for ``size=(H, W)``.

    RGB (grey is replicated, alpha dropped), bilinear resize, division by the
    image maximum, then ImageNet mean/std, as upstream's RescaleT + ToTensorLab.
    """
    pil_image = _pil_image()
    height, width = size
    rgb = image.convert("RGB").resize((width, height), pil_image.Resampling.BILINEAR)
    arr = np.asarray(rgb, dtype=np.float64)
    peak = float(arr.max())
    # Upstream divides unconditionally; an all-black image would give NaN.
    if peak > 0:
        arr = arr / peak
    arr = (arr - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None], dtype=np.float32)


def synthetic_image(size: tuple[int, int], *, seed: int = 0) -> Any:
    """A seeded natural-looking RGB image: smooth colour noise plus a few shapes."""
    pil_image = _pil_image()
    image_draw = require("PIL.ImageDraw", purpose="export")
    height, width = size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 24), max(2, width // 24), 3))
    canvas = pil_image.fromarray(coarse.astype(np.uint8), "RGB").resize(
        (width, height), pil_image.Resampling.BICUBIC
    )
    draw = image_draw.Draw(canvas)
    for _ in range(4):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, size=2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return canvas


def _parity_inputs(images_dir: Path | None) -> list[ParityInput]:
    """One input per :data:`PARITY_SIZES` entry: real images when there are any."""
    pil_image = _pil_image()
    explicit = images_dir is not None
    directory = images_dir if images_dir is not None else _DEFAULT_IMAGES
    files: list[Path] = []
    if directory.is_dir():
        files = sorted(
            p for p in directory.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()
        )
    if explicit and not files:
        raise InputFileError(
            f"--images-dir {directory} holds no .jpg/.png images: point it at the upstream "
            "demo images or leave it out to use generated ones"
        )
    inputs = []
    for index, size in enumerate(PARITY_SIZES):
        if files:
            path = files[index % len(files)]
            try:
                with pil_image.open(path) as img:
                    img.load()
                    array = preprocess_upstream(img, size)
            except OSError as exc:
                raise InputFileError(f"cannot read image {path}: {exc}") from exc
            inputs.append(ParityInput(path.name, array))
        else:
            image = synthetic_image(size, seed=index)
            inputs.append(ParityInput(f"synthetic(seed={index})", preprocess_upstream(image, size)))
    return inputs


# --- ONNX -------------------------------------------------------------------


@contextlib.contextmanager
def _seeded_torch(torch: Any, seed: int = 0) -> Iterator[None]:
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
    torch = _torch()
    module.eval()
    sample = torch.zeros(1, 3, *sample_size, dtype=torch.float32)
    buffer = io.BytesIO()
    dims = {2: "height", 3: "width"}
    with warnings.catch_warnings(), _seeded_torch(torch), torch.no_grad():
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
    onnx = _onnx()
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
    torch = _torch()
    ort = _ort()
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


def _finalise_model(raw: bytes, *, commit: str, checkpoint_sha256: str, exporter: str) -> bytes:
    """Add metadata_props and fixed producer fields; run the ONNX checker."""
    onnx = _onnx()
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


# --- the mirror -------------------------------------------------------------


def _build_net(upstream_cls: Any | None) -> Any:
    if upstream_cls is not None:
        return upstream_cls(3, 1)
    from vmafx_saliency.nets.u2netp import U2NETP

    return U2NETP(3, 1)


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
    manifest_path = manifest_out or output.with_name(output.name + ".manifest.json")
    if manifest_path.resolve() == output.resolve():
        raise UsageError(f"the manifest path {manifest_path} equals the output path: change one")
    # Refuse before any work, so a slow export never ends in a refusal.
    check_can_write(output, force=force)
    check_can_write(manifest_path, force=force)
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit):
        raise UsageError(f"--commit {commit!r} is not a git commit hash: pass e.g. ac7e1c81")

    torch = _torch()
    onnx = _onnx()
    ort = _ort()

    checkout: UpstreamCheckout | None = None
    upstream_cls: Any | None = None
    checkpoint_label: str
    if upstream_dir is not None:
        checkout = audit_upstream_checkout(upstream_dir)
        upstream_cls = load_upstream_class(checkout)
        if checkpoint is None:
            checkpoint = upstream_dir / UPSTREAM_CHECKPOINT
            checkpoint_label = UPSTREAM_CHECKPOINT
        else:
            checkpoint_label = checkpoint.name
    elif checkpoint is None:
        raise UsageError(
            "no checkpoint: pass --checkpoint PATH/u2netp.pth or --upstream-dir with a "
            f"checkout of {UPSTREAM_REPO} holding {UPSTREAM_CHECKPOINT}"
        )
    else:
        checkpoint_label = checkpoint.name

    state = load_state_dict_file(checkpoint)
    # Read the images before the export, so a bad --images-dir fails fast.
    parity_inputs = _parity_inputs(images_dir)
    checkpoint_sha256 = sha256_file(checkpoint)
    license_file = _resolve_license(checkout, checkpoint)
    notice_present = (
        checkout.notice_present
        if checkout is not None
        else (checkpoint.parent / "NOTICE").is_file()
    )

    with _seeded_torch(torch):
        net = _build_net(upstream_cls)
    load_state_dict_into(net, state, strict=strict, source=f"checkpoint {checkpoint}")
    from vmafx_saliency.nets.u2netp import FusedOutput

    model = FusedOutput(net).eval()
    params = int(sum(p.numel() for p in net.parameters()))

    exporter = f"{EXPORTER}, torch {torch.__version__}"
    raw = export_onnx_bytes(model, opset=OPSET)
    onnx_bytes = _finalise_model(
        raw, commit=commit, checkpoint_sha256=checkpoint_sha256, exporter=exporter
    )
    figures = parity_check(model, onnx_bytes, parity_inputs, PARITY_TOLERANCE)
    op_counts = count_ops(onnx_bytes)
    sha = sha256_bytes(onnx_bytes)

    architecture: dict[str, str] = (
        {
            "source": "upstream checkout",
            "file": UPSTREAM_MODEL_FILE,
            "sha256": sha256_file(checkout.model_file),
        }
        if checkout is not None
        else {"source": "vmafx_saliency.nets.u2netp.U2NETP"}
    )
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model_id": MODEL_ID,
        "upstream": {
            "repo": UPSTREAM_REPO,
            "commit": commit,
            "checkpoint": {"path": checkpoint_label, "sha256": checkpoint_sha256},
            "licence": {
                "spdx": LICENSE_SPDX,
                "file": license_file.name,
                "sha256": sha256_file(license_file),
            },
            "notice_present": notice_present,
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
                "torch": str(torch.__version__),
                "onnx": str(onnx.__version__),
                "onnxruntime": str(ort.__version__),
            },
        },
        "output": {"file": output.name, "sha256": sha, "bytes": len(onnx_bytes)},
        "op_types": op_counts,
        "params": params,
        "parity": [fig.to_json() for fig in figures],
        "metadata_props": list(METADATA_KEYS),
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")

    atomic_write_bytes(output, onnx_bytes, force=force)
    try:
        atomic_write_bytes(manifest_path, manifest_bytes, force=force)
    except BaseException:
        # An ONNX without its manifest is not a release asset: take it back.
        with contextlib.suppress(FileNotFoundError):
            output.unlink()
        raise
    return ExportResult(
        output=output,
        manifest=manifest_path,
        sha256=sha,
        bytes=len(onnx_bytes),
        parity=tuple(figures),
        params=params,
        op_counts=op_counts,
        checkpoint_sha256=checkpoint_sha256,
    )
