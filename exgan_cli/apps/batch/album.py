"""The album's files and the output folder: what is a photo, where outputs go, one run at a time.

Only files with an image suffix (.jpg, .jpeg, .png, .webp, any case) are photos; a photo whose
content is not a readable image is an error for that photo; other files and hidden ones are
skipped and counted. Outputs keep the album's relative layout under ``out_dir`` (default:
``<album>_open`` beside the album; never inside it) and are written atomically (temp file +
rename), so an interrupted run (even kill -9) leaves no half-written file; the next run removes
the temporary files it left. Originals are never written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from exgan_cli.errors import DataError, OutputError

LOCK_NAME = ".exgan-batch.lock"  # in out_dir: one run at a time may write there
# images.atomic_writer's temporary files: "." + final name + "." + 8 mkstemp characters + ".tmp"
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def check_album(album: Path) -> None:
    """DataError when ``album`` is missing or not a folder."""
    if not album.exists():
        raise DataError(f"{album}: album folder not found")
    if not album.is_dir():
        raise DataError(f"{album}: not a folder (batch takes a folder of photos; use open-eyes for one photo)")


def default_out_dir(album: Path) -> Path:
    """``<album>_open`` beside the album."""
    album = Path(album).resolve()
    return album.parent / f"{album.name}_open"


def check_out_dir(album: Path, out_dir: Path) -> None:
    """OutputError when ``out_dir`` is the album, inside it, holds it, or is a file.

    Outputs never mix with the originals: a run only ever writes below ``out_dir``.
    """
    a, o = Path(album).resolve(), Path(out_dir).resolve()
    if o == a or a in o.parents:
        raise OutputError(f"{out_dir}: the output folder must not be inside the album {album}")
    if o in a.parents:
        raise OutputError(f"{out_dir}: the output folder must not contain the album {album} (give a folder of its own)")
    if o.exists() and not o.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")


def make_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` (and its parents); OutputError when that fails."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out_dir}: cannot create the output folder ({e})") from None


@dataclass
class AlbumScan:
    photos: list[str]  # relative POSIX paths of files with an image suffix, sorted
    others: Counter  # skipped files: suffix (or "hidden") -> count


def scan_album(album: Path) -> AlbumScan:
    """Files of the album, recursively (symlinked folders are not followed)."""
    from exgan_cli.files.images import IMAGE_SUFFIXES

    album = Path(album)
    photos: list[str] = []
    others: Counter = Counter()
    for root, dirs, files in os.walk(album):
        hidden = [d for d in dirs if d.startswith(".")]
        others["hidden"] += len(hidden)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            rel = (Path(root) / name).relative_to(album).as_posix()
            suffix = Path(name).suffix.lower()
            if name.startswith("."):
                others["hidden"] += 1
            elif suffix in IMAGE_SUFFIXES:
                photos.append(rel)
            else:
                others[suffix or "(no suffix)"] += 1
    others = Counter({k: v for k, v in others.items() if v})
    return AlbumScan(photos=sorted(photos), others=others)


def source_stat(path: Path) -> dict[str, int]:
    """{"size", "mtime_ns"} of a photo ({} when it cannot be read): how a re-run knows it is unchanged."""
    try:
        st = path.stat()
        return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    except OSError:
        return {}


def remove_temp_files(out_dir: Path) -> int:
    """Delete the temporary files an interrupted run left in ``out_dir``; how many."""
    removed = 0
    for root, _, files in os.walk(out_dir):
        for name in files:
            if TEMP_FILE.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                    removed += 1
    return removed


def copy_atomic(src: Path, dst: Path, overwrite: bool) -> None:
    """Byte-identical copy, written atomically (temp file in dst's folder + rename)."""
    from exgan_cli.files.images import atomic_writer

    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as s, atomic_writer(dst, "wb", overwrite=overwrite) as d:
        shutil.copyfileobj(s, d, 1 << 20)


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on out_dir for the run (released by the OS even on kill -9).

    The lock file is removed when the run ends, still under the lock; a run that opened the
    file just before it was removed finds, once it holds the lock, that its file is no longer
    the one named LOCK_NAME, and takes the lock again on a new file.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = out_dir / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"{out_dir}: another exgan batch run is writing to this folder") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # removed by the run that held it: lock the new file
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
