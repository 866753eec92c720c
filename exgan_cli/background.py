"""One way to run work beside the main thread: ``in_background``.

A run of open-eyes keeps both cores busy by loading and reading on threads while the main one
decodes, scans and retouches (docs/ARCHITECTURE.md, "Threads"). dlib, Pillow, OpenCV and numpy
release the GIL inside their long calls, so such threads really run at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def in_background(fn: Callable[..., T], *args: Any, name: str | None = None) -> "Future[T]":
    """``fn(*args)`` started now on a daemon thread; ``.result()`` gives its value or raises its
    exception, where the caller needs it.

    A daemon thread, not an executor's: a run that stops early (no face, a bad path) exits at
    once instead of waiting for work it no longer needs, and nothing outlives the job.
    """
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # handed to whoever calls .result()
            future.set_exception(e)

    threading.Thread(target=run, name=name or f"exgan-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return future
