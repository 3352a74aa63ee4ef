"""One exception hierarchy for the whole package.

Every message names the input at fault and says what to do next, so the CLI can
print it as one line. The CLI catches only :class:`VmafxSaliencyError`; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


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

    ``kind`` is a short stable identifier of the cause and ``offset`` the byte
    offset in the file where it applies (``None`` when it applies to the whole
    file).
    """

    kind = "scan"

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ContractError(VmafxSaliencyError):
    """An ONNX graph does not meet the deployment contract."""


class RegistryError(VmafxSaliencyError):
    """The model registry, an overlay or a sidecar is invalid or lacks an entry."""


class SignatureError(VmafxSaliencyError):
    """Signing failed, or a Sigstore bundle does not verify the model."""


class LoaderError(VmafxSaliencyError):
    """The loader gate refused a model; the message names the layer and the fix."""


class ReleaseError(VmafxSaliencyError):
    """A release folder cannot be staged or does not verify."""


class VideoError(InputFileError):
    """A video cannot be opened or decoded, or its geometry is wrong."""


class ExtractionError(VmafxSaliencyError):
    """Feature extraction failed on a frame (NaN map, out-of-range values, ...)."""


class OutputError(VmafxSaliencyError):
    """An output cannot be written, or a file to merge into does not fit."""


class TrainingDivergedError(VmafxSaliencyError):
    """The training loss left the real numbers (lower the learning rate)."""
