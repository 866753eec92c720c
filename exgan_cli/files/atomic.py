"""Writes that never leave half a file: a temporary file beside the destination, fsync, rename.

A crash, a kill -9 or a full disk leaves the destination as it was (and at worst a temporary
file named ``.<name>.<8 characters>.tmp``, which ``exgan batch`` sweeps up on its next run).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from exgan_cli.errors import OutputError


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _umask_mode() -> int:
    """Permissions a normally created file gets (mkstemp's temp files are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", *, overwrite: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and move it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. With
    ``overwrite=False`` an existing ``path`` is an OutputError. ``mode`` is "wb" or "w".
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output already exists (use --overwrite to replace it)")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a file name")
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: output folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({one_line(e)})") from None
    try:
        os.fchmod(fd, _umask_mode())
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write ({one_line(e)})") from None
        raise
    # Make the rename itself durable (POSIX; not possible on every platform).
    with contextlib.suppress(OSError, AttributeError):
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_writer``); returns the path."""
    with atomic_writer(path, "wb", overwrite=overwrite) as f:
        f.write(data)
    return Path(path)
