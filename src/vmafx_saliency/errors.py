"""One exception hierarchy for the whole package, in one place.

Every message names the input at fault and says what to do next, so the CLI can
print it as one line. The CLI catches only :class:`VmafxSaliencyError`; anything
else is a bug and keeps its traceback. Each layer of the product has its own
branch (scan, contract, registry, signature, loader, release, video, ...), so a
caller can catch as narrowly as it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmafx_saliency.supply.registry import Finding


class VmafxSaliencyError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(VmafxSaliencyError):
    """The command line or a call's arguments do not make sense together."""


class MissingDependencyError(VmafxSaliencyError):
    """An optional dependency is not installed; the message names the extra."""


class InputFileError(VmafxSaliencyError):
    """An input file is missing, unreadable or of the wrong kind."""


class OutputExistsError(VmafxSaliencyError):
    """An output would overwrite an existing file without ``--force``."""


class CheckpointError(VmafxSaliencyError):
    """A PyTorch checkpoint cannot be loaded into the architecture."""


class UpstreamCheckoutError(VmafxSaliencyError):
    """A local upstream checkout is missing a file or has the wrong licence."""


class ExportError(VmafxSaliencyError):
    """The ONNX export or its post-export check failed."""


class ParityError(ExportError):
    """ONNX Runtime and PyTorch disagree beyond the stated tolerance."""


class ScanError(VmafxSaliencyError):
    """The op-allowlist scanner refused a file.

    ``kind`` is a short stable identifier of the cause (the keys of
    :data:`vmafx_saliency.supply.scan.KINDS`: ``disallowed-op``,
    ``truncated-varint``, ...) and ``offset`` the byte offset in the file where
    it applies (``None`` when it applies to the whole file).
    """

    def __init__(self, message: str, *, kind: str = "scan", offset: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.offset = offset


class ContractError(VmafxSaliencyError):
    """An ONNX graph does not meet the deployment contract."""


class RegistryError(VmafxSaliencyError):
    """The model registry, an overlay or a sidecar is invalid or lacks an entry."""


class InvalidRegistryError(RegistryError):
    """A registry file breaks its schema or a registry rule; ``findings`` lists all."""

    def __init__(self, message: str, *, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.findings = tuple(findings)


class SidecarError(RegistryError):
    """A sidecar JSON is missing, unreadable or breaks its schema."""


class UnknownModelError(RegistryError):
    """No registry entry has the requested id."""


class NoDefaultModelError(RegistryError):
    """No model is the default for the requested extractor."""


class ComparisonReportError(RegistryError):
    """A comparison report is unreadable or lacks a model or metric."""


class PromotionRefusedError(RegistryError):
    """A promotion was refused: the report does not show a benefit, or the target is wrong."""


class SignatureError(VmafxSaliencyError):
    """Signing failed, or a Sigstore bundle does not verify the model."""


class BundleMissingError(SignatureError):
    """There is no Sigstore bundle where one was expected."""


class BundleInvalidError(SignatureError):
    """The bundle is not a Sigstore bundle of a model_signing statement for one file."""


class SignatureMismatchError(SignatureError):
    """The signature does not verify: wrong key, bad signature, untrusted
    certificate chain, or an identity that does not match."""


class ModelTamperedError(SignatureError):
    """The model's bytes differ from the digest the bundle signs."""


class SigningKeyError(SignatureError):
    """A key or certificate file is missing, unreadable or of the wrong kind."""


class TrustRootError(SignatureError):
    """The Sigstore trust root for keyless verification could not be loaded."""


class LoaderError(VmafxSaliencyError):
    """The loader gate refused a model; the message names the layer and the fix.

    ``layer`` names the gate's layer (DESIGN section 4) that refused it.
    """

    layer = "loader"


class PathRefused(LoaderError):
    layer = "path"


class IdentityRefused(LoaderError):
    layer = "identity"


class SignatureRefused(LoaderError):
    layer = "signature"


class ContentRefused(LoaderError):
    layer = "content"


class ContractRefused(LoaderError):
    layer = "contract"


class ReleaseError(VmafxSaliencyError):
    """A release folder cannot be staged or does not verify."""


class StaleCardError(VmafxSaliencyError):
    """The card's figures differ from what the manifest or report says."""


class VideoError(InputFileError):
    """A video cannot be opened or decoded, or its geometry is wrong."""


class ExtractionError(VmafxSaliencyError):
    """Feature extraction failed on a frame (NaN map, out-of-range values, ...)."""


class ModelRunError(ExtractionError):
    """ONNX Runtime refused to run the model on a frame.

    ``detail`` names the frame, the model, the size and ONNX Runtime's reason;
    ``advice`` says what to try, which depends on the command (a caller with
    other options words its own from ``detail``).
    """

    def __init__(self, *, detail: str, advice: str) -> None:
        super().__init__(f"{detail}: {advice}")
        self.detail = detail
        self.advice = advice


class NoFramesSelectedError(ExtractionError):
    """--frames and --subsample left no frame of the video to compute."""


class OutputError(VmafxSaliencyError):
    """An output cannot be written, or a file to merge into does not fit."""


class TrainingDivergedError(VmafxSaliencyError):
    """The training loss left the real numbers (lower the learning rate)."""


class QuantizeError(VmafxSaliencyError):
    """A quantised model beyond its accuracy budget, or a calibration set that cannot be used.

    ``figures``: the measured figures, one line each, where the budget was measured.
    """

    def __init__(self, message: str, *, figures: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.figures = tuple(figures)


class RoiError(VmafxSaliencyError):
    """ROI maps or ROI encodes failed."""


class EncodeError(RoiError):
    """ffmpeg failed, or what it wrote does not match the source."""


class MaterializeError(VmafxSaliencyError):
    """The table, the options or a worker make the run impossible; nothing was written."""
