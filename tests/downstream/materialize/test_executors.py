"""The Ray executor: the numbers of the local one, clear errors for a cluster nobody runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._materialize import _options, _read_jsonl, _refused_writing_nothing, _write_jsonl
from vmafx_saliency.downstream import materialize as mz
from vmafx_saliency.downstream.materialize import job as mz_job
from vmafx_saliency.video.job import ModelChoice


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray instance (2 CPUs) for the module: start-up is the slow part."""
    ray = pytest.importorskip("ray", reason="the Ray executor needs ray (the ray extra)")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        object_store_memory=96 * 1024 * 1024,
    )
    yield ray
    ray.shutdown()


def test_ray_executor_matches_local(
    ray_local: Any, tmp_path: Path, tiny: ModelChoice, videos_dir: Path, corrupt_mp4: Path
) -> None:
    rows = [
        {"id": 0, "src": "carphone_pristine.mp4"},
        {"id": 1, "src": "CiscoVT2people_160x96_6fps.yuv", "width": 160, "height": 96},
        {"id": 2, "src": str(tmp_path / "missing.mp4")},
        {"id": 3, "src": str(corrupt_mp4)},
        {"id": 4, "src": "akiyo_cif.mp4"},
        {"id": 5, "src": "carphone_pristine.mp4"},
    ]
    table = _write_jsonl(tmp_path / "t.jsonl", rows)
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    mz.materialize(table, local, _options(tiny, videos_dir, jobs=1))
    summary = mz.materialize(table, remote, _options(tiny, videos_dir, executor="ray", jobs=2))
    assert summary.executor == "ray" and summary.workers == 2
    assert ray_local.is_initialized()  # a running instance is used, not shut down
    a, b = _read_jsonl(local), _read_jsonl(remote)
    assert [r["saliency_status"] for r in b] == [
        "ok",
        "ok",
        "missing-source",
        "decode-failed",
        "ok",
        "ok",
    ]
    for x, y in zip(a, b, strict=True):
        assert x["saliency_status"] == y["saliency_status"]
        assert x["saliency_model"] == y["saliency_model"]
        for name in ("saliency_mean", "saliency_var"):
            if x[name] is None:
                assert y[name] is None
            else:
                assert abs(x[name] - y[name]) <= 1e-9


def test_a_ray_address_nobody_answers_is_one_clear_error(
    table: Path, tiny: ModelChoice, videos_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Ray raises ConnectionError when no cluster is at --address: say how to get one."""

    class NoCluster:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs: Any) -> None:
            raise ConnectionError(f"Could not find any running Ray instance at {kwargs['address']}")

    monkeypatch.setattr(mz_job, "require", lambda module, *, purpose, extra: NoCluster())
    out = tmp_path / "out.jsonl"
    options = _options(tiny, videos_dir, executor="ray", address="auto")  # Ray's own lookup
    _refused_writing_nothing(
        table,
        out,
        options,
        r"--address auto: no Ray cluster answers there \(.*\): start one "
        r"\(ray start --head\) or leave out --address",
    )


def test_a_ray_address_with_no_listener_is_refused_before_ray_starts(
    table: Path, tiny: ModelChoice, videos_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Ray itself retries an address nobody listens on for minutes: refuse in seconds."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class NotToBeStarted:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs: Any) -> None:
            raise AssertionError("ray.init must not be reached")

    monkeypatch.setattr(mz_job, "require", lambda module, *, purpose, extra: NotToBeStarted())
    out = tmp_path / "out.jsonl"
    options = _options(tiny, videos_dir, executor="ray", address=f"127.0.0.1:{port}")
    _refused_writing_nothing(
        table, out, options, rf"--address 127\.0\.0\.1:{port}: no Ray cluster answers there"
    )
