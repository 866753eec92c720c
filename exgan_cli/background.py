"""One way to run work beside the main thread: ``in_background``.

A run of open-eyes keeps both cores busy by loading and reading on threads while the main one
decodes, scans and retouches (docs/ARCHITECTURE.md, "Threads"). dlib, Pillow, OpenCV and numpy
release the GIL inside their long calls, so such threads really run at once.
"""

from __future__ import annotations

import atexit
import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

T = TypeVar("T")
# How long the interpreter's exit waits for background work still running. A daemon thread cut off
# inside native code (torch being imported, dlib reading a reference) while the interpreter tears
# down aborts the whole process: open-eyes on a photo with no closed eyes exited with SIGABRT
# ("terminate called without an active exception", exit 134) in 1 of 6 runs with a fresh cache.
# The loads take 1 to 3 s; a hung one does not hold the exit beyond this.
EXIT_WAIT = 20.0
_running: set[threading.Thread] = set()
_lock = threading.Lock()


def _settle(timeout: float = EXIT_WAIT) -> None:
    """At exit: wait (at most ``timeout`` s in all) for the background threads still running."""
    import time

    end = time.monotonic() + timeout
    with _lock:
        threads = list(_running)
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))


atexit.register(_settle)


def in_background(fn: Callable[..., T], *args: Any, name: str | None = None) -> "Future[T]":
    """``fn(*args)`` started now on a daemon thread; ``.result()`` gives its value or raises its
    exception, where the caller needs it.

    A daemon thread, not an executor's: nothing outlives the job. A run that stops early (no
    face, a bad path) still lets work already started finish at exit (``_settle``, at most
    EXIT_WAIT s), since cutting a thread off inside native code aborts the process.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # handed to whoever calls .result()
                future.set_exception(e)
        finally:
            with _lock:
                _running.discard(threading.current_thread())

    thread = threading.Thread(target=run, name=name or f"exgan-{getattr(fn, '__name__', 'work')}", daemon=True)
    with _lock:
        _running.add(thread)
    thread.start()
    return future
