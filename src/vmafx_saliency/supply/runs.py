"""Running a model on one input, as every command does: quietly, bounded, stoppable.

ONNX Runtime's errors become the product's (:class:`ModelRunError`), its own
log of a failed run is silenced, a map of the wrong shape is refused, and no
run lasts for ever: the scanner allows ``Loop``, and a model can keep its
contract on the loader's noise probe and loop on a real frame. A watchdog
thread ends a run after :data:`RUN_SECONDS`, and :func:`stop_runs` ends every
run in flight (the command line's Ctrl-C and SIGTERM handler calls it).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from vmafx_saliency.errors import ModelRunError

INPUT_NAME = "input"
OUTPUT_NAME = "saliency_map"
# Far beyond any real frame (the mirror at 4096x4096 on two cores takes under a minute).
RUN_SECONDS = 600.0


def run_options() -> Any:
    """Options for one ``session.run`` whose failure the caller reports as its own error.

    ONNX Runtime logs a failed run to stderr before it raises; the product's
    one-line message says it, so that log is silenced for the run (the
    session's own warnings, such as nodes left to the CPU, still show).
    """
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4  # fatal only
    return options


def run_map(session: Any, tensor: np.ndarray, *, what: str, advice: str) -> np.ndarray:
    """``session.run`` of one input to its ``saliency_map``, quietly (see :func:`run_options`).

    A run ONNX Runtime refuses is a :class:`ModelRunError` whose detail reads
    "``what`` failed at WxH (ONNX Runtime's reason)", followed by ``advice``; so is
    a map of another shape than ``[1, 1, H, W]`` of the input.
    """
    options = run_options()
    _WATCHDOG.watch(options, RUN_SECONDS)
    try:
        (saliency,) = session.run([OUTPUT_NAME], {INPUT_NAME: tensor}, run_options=options)
    except Exception as exc:  # ONNX Runtime's errors are untyped (Fail, InvalidArgument, ...)
        height, width = tensor.shape[-2:]
        why = error_words(exc) or type(exc).__name__
        if options.terminate:
            why = f"stopped: it ran past {RUN_SECONDS:g} s, or the run was interrupted"
        raise ModelRunError(
            detail=f"{what} failed at {width}x{height} ({why})", advice=advice
        ) from exc
    finally:
        _WATCHDOG.done(options)
    saliency = np.asarray(saliency)
    height, width = tensor.shape[-2:]
    if saliency.shape != (1, 1, height, width):
        # The probe saw the right shape on noise; a model may still break it on real input.
        raise ModelRunError(
            detail=f"{what} gave a map of shape {list(saliency.shape)} for a {width}x{height} "
            f"input, which breaks the contract ([1, 1, {height}, {width}])",
            advice=advice,
        )
    return saliency


def error_words(exc: BaseException) -> str:
    """ONNX Runtime's message on one line: it spans several, and an error is one."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:400] + "..."


class _Watchdog:
    """Ends runs past their deadline, or all of them on :meth:`stop_all`; one thread."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._runs: dict[int, tuple[float, Any]] = {}
        self._thread: threading.Thread | None = None
        self._wake_at: float | None = None  # when the thread wakes next; None: when told

    def watch(self, options: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._wake:
            self._runs[id(options)] = (deadline, options)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="vmafx-runs")
                self._thread.start()
            # Woken only for a sooner deadline: not once a frame, on the frame loop's path.
            if self._wake_at is None or deadline < self._wake_at:
                self._wake.notify()

    def done(self, options: Any) -> None:
        with self._wake:
            self._runs.pop(id(options), None)

    def stop_all(self) -> None:
        with self._wake:
            for _, options in self._runs.values():
                options.terminate = True

    def _loop(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                for deadline, options in self._runs.values():
                    if deadline <= now:
                        options.terminate = True
                soonest = min((d for d, _ in self._runs.values() if d > now), default=None)
                self._wake_at = soonest
                self._wake.wait(timeout=None if soonest is None else soonest - now)


_WATCHDOG = _Watchdog()


def stop_runs() -> None:
    """End every model run in flight (they raise): a stopping signal must not wait for one."""
    _WATCHDOG.stop_all()
