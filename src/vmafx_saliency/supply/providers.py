"""ONNX Runtime execution providers: a short name chosen by the user, checked, never silent.

``--provider cuda`` must run on CUDA or fail: ONNX Runtime itself falls back to
the CPU when a provider is missing or does not start, with only a log line, and
users of comparable tools have measured "GPU" runs that never touched the GPU.
:func:`provider_id` maps a short name to ONNX Runtime's id and refuses one the
installed onnxruntime lacks, listing those it has; :func:`check_started`
refuses a session whose first provider is not the one asked for.
"""

from __future__ import annotations

from typing import Any

from vmafx_saliency.errors import UsageError

__all__ = ["DEFAULT_PROVIDER", "PROVIDERS", "available", "check_started", "provider_id"]

DEFAULT_PROVIDER = "cpu"
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
_GPU_HINT = (
    "for cuda or tensorrt install onnxruntime-gpu in place of onnxruntime "
    "(pip uninstall -y onnxruntime && pip install onnxruntime-gpu); openvino, coreml and "
    "dml have their own onnxruntime builds"
)


def available() -> tuple[str, ...]:
    """The short names of the providers the installed onnxruntime has."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return tuple(name for name, ort_id in PROVIDERS.items() if ort_id in have)


def provider_id(name: str) -> str:
    """ONNX Runtime's id of the provider ``name``; refused when unknown or not installed."""
    if name not in PROVIDERS:
        raise UsageError(f"provider {name!r}: give one of {', '.join(PROVIDERS)}")
    have = available()
    if name not in have:
        import onnxruntime as ort

        raise UsageError(
            f"provider {name!r}: this onnxruntime {ort.__version__} has {', '.join(have)}; "
            f"{_GPU_HINT}"
        )
    return PROVIDERS[name]


def check_started(session: Any, name: str, *, source: str) -> None:
    """Refuse a session ONNX Runtime quietly moved off the provider asked for."""
    started = session.get_providers()[0]
    if started != PROVIDERS[name]:
        raise UsageError(
            f"{source}: the {name} provider did not start (ONNX Runtime fell back to "
            f"{started}): check its libraries and drivers, or run with --provider cpu"
        )
