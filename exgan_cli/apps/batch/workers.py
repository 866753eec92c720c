"""The album's photos analysed in worker processes: decode, detect, eye state, identity.

Decoding, detection, landmarks, eye state (apps.inputs.find_faces, as in every runner: the
eye-state classifier, loaded once per worker process, or the EAR rule without its weights) and
the identity of the faces that could be retouched run in ``workers`` processes (descriptors cost
~60-90 ms a face on CPU, so faces with open eyes are not identified unless ``identify_all`` or
all faces are retouched); pixels come back only for photos with something to retouch. The generator runs in the main
process (apps/batch/photo.py), batched over the faces of each photo.

The workers die with the command, however it ends: on Linux the kernel kills each worker when the
command dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), elsewhere a thread in each worker watches
for it; they ignore SIGINT, which a terminal's Ctrl-C sends to the whole process group, so that the
command alone answers it (one line, no worker tracebacks), and the command stops them at once
when it is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from exgan_cli.apps.batch.person import identity_distance
from exgan_cli.errors import ExganError

WINDOW_PER_WORKER = 2  # photos in flight per worker process (bounds the decoded pixels held)


@dataclass
class Matcher:
    """What a worker needs to tell the person's faces from the others (small, pickled per task)."""

    samples: np.ndarray  # (n, 128) the person's descriptors
    threshold: float
    k: int
    detector: str
    min_face: float
    faces: str  # which of the person's faces to retouch: "closed", "narrow" (and narrowed eyes) or "all" (retouch.wanted)
    identify_all: bool

    @property
    def all_faces(self) -> bool:
        return self.faces == "all"


@dataclass
class Analysis:
    rel: str
    faces: list = field(default_factory=list)  # faces.Face, left to right
    eyes: list = field(default_factory=list)  # eyes.EyeState per face
    distances: list = field(default_factory=list)  # identity distance per face; None: not measured
    todo: list[int] = field(default_factory=list)  # the person's faces to retouch
    image: Any = None  # images.LoadedImage, only when there is something to retouch
    error: Optional[str] = None
    bug: Optional[str] = None  # traceback of an unexpected exception
    timings: dict[str, float] = field(default_factory=dict)


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def analyse_photo(path: str, rel: str, matcher: Matcher) -> Analysis:
    """Decode, detect, eye state, identity; never raises for a bad photo (``error`` says why)."""
    out = Analysis(rel=rel)
    try:
        from exgan_cli.apps.inputs import find_faces
        from exgan_cli.apps.retouch import wanted
        from exgan_cli.files.images import load_image
        from exgan_cli.options import RetouchOptions
        from exgan_cli.stages import faces as facelib

        t = time.perf_counter()
        image = load_image(path)
        out.timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        # The faces and their eye states as every runner finds them (the classifier, as in open-eyes).
        out.faces, out.eyes = find_faces(image.pixels, RetouchOptions(detector=matcher.detector, min_face=matcher.min_face))
        out.timings["detect"] = time.perf_counter() - t
        t = time.perf_counter()
        for f, s in zip(out.faces, out.eyes):
            if matcher.identify_all or wanted(s, matcher.faces):
                d = identity_distance(facelib.face_descriptor(image.pixels, f), matcher.samples, matcher.k)
                out.distances.append(round(d, 4))
            else:
                out.distances.append(None)
        out.timings["identify"] = time.perf_counter() - t
        out.todo = [
            i for i, (d, s) in enumerate(zip(out.distances, out.eyes))
            if d is not None and d <= matcher.threshold and wanted(s, matcher.faces)
        ]
        if out.todo:
            out.image = image
    except ExganError as e:
        out.error = str(e)
    except Exception as e:  # a bug or a native library failing on odd pixels: this photo only
        out.error = f"unexpected error (please report it): {type(e).__name__}: {e}"
        out.bug = traceback.format_exc()
    return out


def _init_worker(parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the command answers it
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)  # the workers already use every core
    # The eye-state classifier runs in numpy here (model/numpy_nets.py): no torch to import.


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the pid that started it) dies, however it dies.

    Linux: the kernel sends SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG, through
    ctypes). Elsewhere, or if that fails: a daemon thread checks twice a second whether the
    process has been handed to another parent. Either way, a parent already gone ends it now.
    """
    armed = False
    with contextlib.suppress(OSError, AttributeError, TypeError):
        import ctypes

        armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="exgan-parent-watch", daemon=True).start()


def stop_workers(pool) -> None:
    """Terminate a ProcessPoolExecutor's workers now (an interrupted run does not wait for the
    photos they are analysing): ``terminate_workers`` where Python has it (3.14), else each process."""
    stop = getattr(pool, "terminate_workers", None)
    if stop is not None:
        stop()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


def analyse_all(
    items: Sequence[tuple[str, str]], matcher: Matcher, workers: int
) -> Iterator[Analysis]:
    """Analyses of (path, rel) items, in completion order; ``workers`` 0 runs them here.

    A worker that dies (killed, out of memory, a crash in native code) breaks the pool: the
    photos in flight are retried one at a time in a fresh pool, and the one that breaks it
    alone is reported as an error.
    """
    if workers <= 0:
        for path, rel in items:
            yield analyse_photo(path, rel, matcher)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending: deque = deque(items)
    suspects: set[str] = set()
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    # The workers run the eye-state network in numpy: one BLAS thread each, not N workers x N
    # threads on N cores. Spawned children read this at their numpy import (this process's BLAS
    # has started already and keeps its threads).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                   initargs=(os.getpid(),))
        inflight: dict = {}
        broken = False
        try:
            while (pending or inflight) and not broken:
                window = 1 if suspects else workers * WINDOW_PER_WORKER
                while pending and len(inflight) < window:
                    path, rel = pending[0]
                    try:
                        fut = pool.submit(analyse_photo, path, rel, matcher)
                    except BrokenProcessPool:  # a worker died since the last wait
                        broken = True
                        break
                    pending.popleft()
                    inflight[fut] = (path, rel, len(inflight) == 0 and window == 1)
                if broken:
                    break
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    path, rel, alone = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        inflight[fut] = (path, rel, alone)
                        continue
                    suspects.discard(rel)
                    yield result
            if broken:
                for path, rel, alone in inflight.values():
                    if alone:
                        suspects.discard(rel)
                        yield Analysis(rel=rel, error=f"{path}: a worker process died on this photo (out of memory, or a crash in a native library)")
                    else:
                        suspects.add(rel)
                        pending.appendleft((path, rel))
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or closed early: the workers stop now
            stop_workers(pool)
            broken = True
            raise
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Limit torch's threads while worker processes keep the cores busy: on a loaded CPU an
    oversubscribed OpenMP generator runs ~20x slower (measured: 40 ms vs 840 ms a face)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
