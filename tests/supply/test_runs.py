"""Running a model on one input: ORT's errors as ours, the shape checked, runs bounded."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from tests._onnx_models import endless_loop_model, refused_on_bright_model
from vmafx_saliency.errors import ModelRunError
from vmafx_saliency.supply import runs
from vmafx_saliency.supply.contract import make_session
from vmafx_saliency.supply.runs import run_map


def test_run_map_words_a_refused_run_as_ours_and_silences_onnx_runtimes_log(
    capfd: pytest.CaptureFixture[str],
) -> None:
    session = make_session(refused_on_bright_model(), source="refused")
    dark = np.zeros((1, 3, 40, 56), np.float32)
    assert run_map(session, dark, what="x", advice="y").shape == (1, 1, 40, 56)
    white = np.full((1, 3, 40, 56), 2.4, np.float32)  # white after ImageNet mean/std
    capfd.readouterr()
    with pytest.raises(ModelRunError, match=r"^frame 9: m failed at 56x40 \(.*out of data bounds.*"
                       r"\): try this$") as caught:  # fmt: skip
        run_map(session, white, what="frame 9: m", advice="try this")
    assert caught.value.detail.startswith("frame 9: m failed at 56x40 (")
    assert caught.value.advice == "try this"
    assert caught.value.__cause__ is not None  # ONNX Runtime's own error, for -v
    assert capfd.readouterr().err == ""  # its log line of the failed run is not printed


@pytest.mark.parametrize(
    "shape", [(1, 1, 0, 0), (1, 1, 1, 1), (1, 1, 80, 56), (40, 56), (1, 2, 40, 56)]
)
def test_run_map_refuses_a_map_of_another_shape_than_its_input(shape: tuple[int, ...]) -> None:
    """The probe saw [1, 1, H, W] on noise; a model may give another shape on real frames."""

    class Shaped:
        def run(self, names: object, feeds: object, run_options: object = None) -> list[object]:
            return [np.zeros(shape, np.float32)]

    tensor = np.zeros((1, 3, 40, 56), np.float32)
    with pytest.raises(ModelRunError, match=rf"^frame 2: m gave a map of shape "
                       rf"{re.escape(str(list(shape)))} for a 56x40 input, which breaks the "
                       r"contract \(\[1, 1, 40, 56\]\): try this$"):  # fmt: skip
        run_map(Shaped(), tensor, what="frame 2: m", advice="try this")


def test_a_run_past_its_time_is_stopped_as_a_refused_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scanner allows Loop: a model may pass the probe and loop on a real frame."""
    monkeypatch.setattr(runs, "RUN_SECONDS", 0.5)
    session = make_session(endless_loop_model(), source="endless")
    start = time.monotonic()
    with pytest.raises(ModelRunError, match=r"^frame 0: m failed at 16x8 \(stopped: it ran "
                       r"past 0\.5 s, or the run was interrupted\): try this$"):  # fmt: skip
        run_map(session, np.zeros((1, 3, 8, 16), np.float32), what="frame 0: m", advice="try this")
    assert time.monotonic() - start < 20  # the watchdog, not the 2^62 trips, ended it


def test_stop_runs_ends_every_run_in_flight() -> None:
    session = make_session(endless_loop_model(), source="endless")
    caught: list[BaseException] = []

    def one() -> None:
        try:
            run_map(session, np.zeros((1, 3, 8, 16), np.float32), what="m", advice="a")
        except ModelRunError as exc:
            caught.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both in ONNX Runtime's Loop by now
    runs.stop_runs()
    for thread in threads:
        thread.join(timeout=20)
    assert [t.is_alive() for t in threads] == [False, False]
    assert len(caught) == 2 and all("stopped" in str(exc) for exc in caught)
