"""The deployment contract of every saliency model (DESIGN section 3).

```
inputs:   input         float32 [1, 3, H, W]   H, W dynamic
outputs:  saliency_map  float32 [1, 1, H, W]   values in [0, 1]
```

The static part is read from the ONNX Runtime session (no ``onnx`` import, so
this runs wherever the extractor runs); the dynamic part runs the model on
synthetic input at two sizes, one of them odd, and checks the output's shape,
finiteness and range.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency._util import read_capped
from vmafx_saliency.errors import ContractError
from vmafx_saliency.supply.providers import DEFAULT_PROVIDER, PROVIDERS, check_started, provider_id
from vmafx_saliency.supply.runs import INPUT_NAME, OUTPUT_NAME, error_words, run_options

FLOAT_TYPE = "tensor(float)"
# Two probe sizes (H, W): one even, one odd, both small so the check is quick.
PROBE_SIZES: tuple[tuple[int, int], ...] = ((64, 96), (75, 133))
# Sigmoid outputs can round to exactly 0 or 1; anything beyond is a bug.
RANGE_SLACK = 1e-6
# A probe of a real model takes milliseconds; this bounds one that never ends.
PROBE_SECONDS = 30.0


@dataclass(frozen=True)
class ContractRun:
    height: int
    width: int
    output_shape: tuple[int, ...]
    minimum: float
    maximum: float


@dataclass(frozen=True)
class ContractReport:
    source: str
    input_shape: tuple[int | str | None, ...]
    output_shape: tuple[int | str | None, ...]
    runs: tuple[ContractRun, ...]
    # The probe child's peak resident memory, where the last run was at the
    # production inference size (see supply.probe); None otherwise.
    peak_mib: float | None = None

    def render(self) -> str:
        lines = [
            f"{self.source}: contract OK",
            f"  input   {INPUT_NAME:<13} float32 {list(self.input_shape)}",
            f"  output  {OUTPUT_NAME:<13} float32 {list(self.output_shape)}",
        ]
        for run in self.runs:
            lines.append(
                f"  run {run.height}x{run.width}: output {list(run.output_shape)}, "
                f"range [{run.minimum:.4f}, {run.maximum:.4f}]"
            )
        return "\n".join(lines)


def _is_dynamic(dim: object) -> bool:
    # ONNX Runtime reports a symbolic dimension as its name and an unnamed one as None.
    return dim is None or isinstance(dim, str)


def _check_io(arg: Any, *, role: str, name: str, channels: int, source: str) -> tuple[Any, ...]:
    if arg.name != name:
        raise ContractError(
            f"{source}: the {role} is named {arg.name!r}, the contract wants {name!r}: "
            f"re-export the model with {role}_names=[{name!r}]"
        )
    if arg.type != FLOAT_TYPE:
        raise ContractError(
            f"{source}: {role} {name!r} has type {arg.type}, the contract wants float32: "
            "export the model in float32"
        )
    shape = tuple(arg.shape)
    if len(shape) != 4:
        raise ContractError(
            f"{source}: {role} {name!r} has rank {len(shape)} (shape {list(shape)}), "
            f"the contract wants rank 4 [1, {channels}, H, W]"
        )
    batch, chans, height, width = shape
    if batch not in (1, None) and not isinstance(batch, str):
        raise ContractError(f"{source}: {role} {name!r} has batch {batch}, the contract wants 1")
    if chans != channels:
        raise ContractError(
            f"{source}: {role} {name!r} has {chans} channels, the contract wants {channels}"
        )
    if not (_is_dynamic(height) and _is_dynamic(width)):
        raise ContractError(
            f"{source}: {role} {name!r} has fixed H, W ({height}, {width}); the contract wants "
            "them dynamic: export with dynamic_axes on dimensions 2 and 3"
        )
    return shape


def _probe_input(height: int, width: int, seed: int) -> np.ndarray:
    # Roughly ImageNet-normalised values, like a real pre-processed frame.
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size=(1, 3, height, width)).astype(np.float32)


def _probe(session: Any, x: np.ndarray, *, source: str) -> Any:
    """One probe run, stopped after :data:`PROBE_SECONDS`.

    The scanner allows Loop, whose trip count is data: a graph that passes it
    can still loop for ever on a 64x96 probe, and nothing else would end it.
    """

    _, _, height, width = x.shape
    options = run_options()
    timer = threading.Timer(PROBE_SECONDS, setattr, args=(options, "terminate", True))
    timer.start()
    try:
        (result,) = session.run([OUTPUT_NAME], {INPUT_NAME: x}, run_options=options)
    except Exception as exc:  # ORT raises its own untyped errors; name the size.
        if options.terminate:
            raise ContractError(
                f"{source}: a {height}x{width} probe did not finish within {PROBE_SECONDS:g} s "
                "(a saliency model takes well under a second): refused; look for a Loop "
                "with a trip count taken from data"
            ) from exc
        raise ContractError(
            f"{source}: ONNX Runtime failed on a {height}x{width} input ({error_words(exc)}); "
            "the contract wants any H, W to work"
        ) from exc
    finally:
        timer.cancel()
    return result


def check_contract_session(
    session: Any, *, source: str, sizes: Sequence[tuple[int, int]] = PROBE_SIZES
) -> ContractReport:
    """Check a built ONNX Runtime session; return a report or raise ContractError."""
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    if len(inputs) != 1:
        raise ContractError(
            f"{source}: the model has {len(inputs)} inputs "
            f"({', '.join(i.name for i in inputs)}); the contract wants exactly one, {INPUT_NAME!r}"
        )
    if len(outputs) != 1:
        raise ContractError(
            f"{source}: the model has {len(outputs)} outputs "
            f"({', '.join(o.name for o in outputs)}); the contract wants exactly one, "
            f"{OUTPUT_NAME!r}: select the fused map at export"
        )
    in_shape = _check_io(inputs[0], role="input", name=INPUT_NAME, channels=3, source=source)
    out_shape = _check_io(outputs[0], role="output", name=OUTPUT_NAME, channels=1, source=source)

    runs = []
    for index, (height, width) in enumerate(sizes):
        result = _probe(session, _probe_input(height, width, index), source=source)
        result = np.asarray(result)
        if result.dtype != np.float32:
            raise ContractError(f"{source}: output dtype is {result.dtype}, expected float32")
        if result.shape != (1, 1, height, width):
            raise ContractError(
                f"{source}: a {height}x{width} input gave an output of shape "
                f"{list(result.shape)}, the contract wants [1, 1, {height}, {width}]"
            )
        if not np.all(np.isfinite(result)):
            raise ContractError(
                f"{source}: a {height}x{width} input gave NaN or infinite values in the map"
            )
        lo, hi = float(result.min()), float(result.max())
        if lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
            raise ContractError(
                f"{source}: a {height}x{width} input gave values in [{lo:.4g}, {hi:.4g}], "
                "the contract wants [0, 1]: end the graph with a Sigmoid"
            )
        runs.append(ContractRun(height, width, tuple(result.shape), lo, hi))
    return ContractReport(
        source=source, input_shape=in_shape, output_shape=out_shape, runs=tuple(runs)
    )


# ONNX Runtime's WeightBiasQuantization quantises, per tensor and at load, the float
# weights of a node that sits between a DequantizeLinear and a QuantizeLinear: exactly
# the nodes 'quantize --keep-float' leaves in float. On the u2netp mirror that undid
# the one float convolution that kept max F within 0.002 of fp32 (0.65 with it on:
# docs/models/u2netp_mirror.history.md). ONNX Runtime ignores names it does not know.
DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)


def make_session(
    data: bytes,
    *,
    source: str,
    threads: int | None = None,
    arena: bool = True,
    provider: str = DEFAULT_PROVIDER,
) -> Any:
    """An ONNX Runtime session from bytes already read (no re-open of the file).

    ``arena=False``: memory is allocated as needed, not from ONNX Runtime's
    growing arena, so the process's peak is what the graph needs (the probe).
    ``provider``: a short name (:data:`~vmafx_saliency.supply.providers.PROVIDERS`);
    the CPU takes the nodes it cannot run, but a provider that does not start
    is an error, never a silent fallback.
    """
    import onnxruntime as ort

    chosen = provider_id(provider)
    providers = [chosen] if chosen == PROVIDERS["cpu"] else [chosen, PROVIDERS["cpu"]]
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    # Bytes that also look like ORT format ('ORTM' at offset 4) must still load as ONNX,
    # the format the scanner checked.
    options.add_session_config_entry("session.load_model_format", "ONNX")
    # Idle intra-op threads must sleep, not spin: the extractor's decode and
    # pre-processing thread needs the same cores between two inferences.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            data, options, providers=providers, disabled_optimizers=list(DISABLED_OPTIMIZERS)
        )
    except Exception as exc:  # ORT's errors are untyped; report them as ours.
        raise ContractError(
            f"{source}: ONNX Runtime cannot load the model ({error_words(exc)}); "
            "check it with 'vmafx-saliency scan' and re-export it"
        ) from exc
    check_started(session, provider, source=source)
    return session


def check_contract_bytes(
    data: bytes,
    *,
    source: str,
    sizes: Sequence[tuple[int, int]] = PROBE_SIZES,
    infer: tuple[int, int] | None = None,
) -> ContractReport:
    """The contract, probed in a child process under a budget (:mod:`.probe`).

    ``infer``: the model's production inference size (H, W), probed last; the
    memory of one frame there must stay under the budget's per-frame limit.
    """
    from vmafx_saliency.supply.probe import probe

    asked = list(sizes) + ([infer] if infer is not None and infer not in sizes else [])
    probed = probe(data, source=source, sizes=asked, production=infer is not None)
    return ContractReport(
        source=source,
        input_shape=probed.input_shape,
        output_shape=probed.output_shape,
        runs=tuple(ContractRun(h, w, shape, lo, hi) for h, w, shape, lo, hi in probed.runs),
        peak_mib=probed.peak_mib if infer is not None else None,
    )


def check_contract_file(
    path: Path, *, sizes: Sequence[tuple[int, int]] = PROBE_SIZES
) -> ContractReport:
    """Scan, then check the contract: ONNX Runtime only ever gets bytes the scanner passed."""
    from vmafx_saliency.supply import scan

    data = read_capped(
        path,
        cap=scan.DEFAULT_MAX_BYTES,
        what="model",
        missing="give the path of an .onnx file",
    )
    scan.check_bytes(data, path=str(path))
    return check_contract_bytes(data, source=str(path), sizes=sizes)
