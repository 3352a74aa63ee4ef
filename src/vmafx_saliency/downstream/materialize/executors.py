"""Executors: the clips computed in this process, in a process pool, or on Ray actors.

The local executor computes in this process with one worker, or in a spawned
process pool whose workers each load the model once (the pool pickles
``work._init_pool_worker`` and ``work._compute_in_pool`` by their module
path). The Ray executor starts (or joins) a cluster and spreads the clips over
actors that each hold one :class:`~vmafx_saliency.downstream.materialize.work.ClipWorker`.
Every path runs the same per-clip code and returns the same results.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from vmafx_saliency.downstream.materialize.records import Clip, ClipResult, Options, Settings
from vmafx_saliency.downstream.materialize.work import (
    ClipWorker,
    _compute_in_pool,
    _init_pool_worker,
)
from vmafx_saliency.errors import MaterializeError
from vmafx_saliency.video.extract import default_threads


def _run_local(
    clips: Sequence[Clip], settings: Settings, workers: int, here: ClipWorker | None
) -> list[ClipResult]:
    if here is not None:
        return [here.compute(clip) for clip in clips]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the driver already holds an ONNX Runtime session and its
    # thread pool, and forking a threaded process can deadlock the child.
    context = multiprocessing.get_context("spawn")
    with (
        _quiet_cancelled_future_race(),
        ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_pool_worker,
            initargs=(settings,),
        ) as pool,
    ):
        try:
            with _sigint_held():  # the workers start (map submits every clip at once)
                results = pool.map(_compute_in_pool, clips)
            return list(results)
        except BrokenProcessPool as exc:
            raise MaterializeError(
                f"a worker process died ({exc}): run again with --jobs 1 (Options(jobs=1)) to "
                "see the error in this process; a script that calls materialize() must guard "
                "its entry point with if __name__ == '__main__'"
            ) from exc


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back while the workers start: they inherit the blocked signal, so one
    sent now cannot interrupt a worker's start-up with a traceback; each worker unblocks
    it once its handler is set (``_init_pool_worker``), and this process when the
    workers are started, so no Ctrl-C is lost."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # the caller's, as it was


@contextlib.contextmanager
def _quiet_cancelled_future_race() -> Iterator[None]:
    """Before Python 3.12 a Ctrl-C while workers start could print a traceback from the
    pool's manager thread: it set an error on a future the interrupt had cancelled
    (CPython gh-107219, fixed by ignoring that InvalidStateError). Ignore it here too,
    while the pool runs; the pool is joined before the hook is put back."""
    from concurrent.futures import InvalidStateError

    if threading.current_thread() is not threading.main_thread():
        # Ctrl-C reaches the main thread only; and a hook swapped from two threads at
        # once could be put back in the wrong order.
        yield
        return
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not issubclass(args.exc_type, InvalidStateError):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def _check_reachable(address: str) -> None:
    """Refuse a ``host:port`` nobody listens on at once: Ray retries it for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": Ray's own lookup
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise MaterializeError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}): "
            "start one (ray start --head) or leave out --address for a local Ray"
        ) from exc


def _run_ray(
    clips: Sequence[Clip], settings: Settings, options: Options, ray: Any
) -> tuple[list[ClipResult], int]:
    """Clips on Ray actors, each holding one session; returns the results and the actor count."""
    started = False
    if not ray.is_initialized():
        common: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
        if options.address:
            _check_reachable(options.address)
            try:
                ray.init(address=options.address, **common)
            except ConnectionError as exc:
                raise MaterializeError(
                    f"--address {options.address}: no Ray cluster answers there ({exc}): start "
                    "one (ray start --head) or leave out --address for a local Ray"
                ) from exc
        else:
            ray.init(
                num_cpus=options.jobs or default_threads(),
                # Only small per-clip results travel through the object store.
                object_store_memory=128 * 1024 * 1024,
                **common,
            )
        started = True
    actors: list[Any] = []
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(options.jobs or cpus, len(clips)))
        # One CPU reserved per ORT thread: actors x threads never exceeds the cluster's cores.
        remote = ray.remote(num_cpus=settings.threads)(ClipWorker)
        actors = [remote.remote(settings) for _ in range(count)]
        pool = ray.util.ActorPool(actors)
        try:
            results = list(pool.map(lambda actor, clip: actor.compute.remote(clip), clips))
        except ray.exceptions.RayError as exc:
            raise MaterializeError(
                f"a Ray worker failed ({exc}): if it could not load the model, put the model "
                "at the same path on every node or ship it with the job's working_dir; run with "
                "--executor local to see the error in this process"
            ) from exc
        return results, count
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if started:
            ray.shutdown()
