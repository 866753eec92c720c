"""An on-disk cache of reference photo analyses, keyed by the photo's content.

Measuring a reference photo (decode, detect, 68 landmarks, identity descriptor, eye state,
pose, sharpness) costs ~270 ms for a 4 MP photo on 2 CPU cores, and a retoucher points
``--ref-dir`` at the same folder of a person again and again. Each analysis is stored as
one small JSON file (~10 KB) named by the SHA-256 of the photo's bytes, in a folder named by
a fingerprint of everything that decides the result: the analysis code itself (the source
of the modules that measure faces), the detector, the minimum face rule, the eye-state
classifier's weights and dlib's version. An upgrade, a retrained classifier or an edited
photo therefore never gets a stale answer; it simply misses.

JSON, not pickle: a cache folder may be shared or copied, and reading it must never run
code. An entry that cannot be read or does not have the expected shape is a miss (and is
written again). Writes are atomic (temp file + rename) and a cache that cannot be written
(read-only home, full disk) is silently skipped: the cache only ever saves time.

Where: ``$EXGAN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/exgan``, else ``~/.cache/exgan``.
Delete the folder to clear it; ``--no-cache`` (open-eyes, batch, inspect) bypasses it.
"""

from __future__ import annotations

import functools
import hashlib
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_ENV = "EXGAN_CACHE_DIR"
FORMAT = 1  # bump when the entry layout changes

# The modules whose code decides an analysis; their source text is part of the fingerprint. Only
# inference code: editing training or evaluation code keeps every user's cache.
_ANALYSIS_MODULES = ("files/images.py", "files/pixels.py", "stages/faces.py", "stages/dlib_models.py",
                     "stages/frontal_face_hog.svm", "stages/pose.py", "stages/eye_state.py", "stages/eye_classifier.py",
                     "model/numpy_nets.py", "stages/geometry.py", "stages/references.py")


def default_cache_dir() -> Path:
    """``$EXGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/exgan``, else ``~/.cache/exgan``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "exgan"
    return Path.home() / ".cache" / "exgan"


def _package_version(*names: str) -> str:
    from importlib import metadata

    for name in names:
        try:
            return f"{name}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


@functools.lru_cache(maxsize=None)
def _code_hash() -> str:
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for name in _ANALYSIS_MODULES:
        h.update((package / name).read_bytes())
    return h.hexdigest()[:16]


def analysis_fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of ``settings`` (what the caller's analysis depends on) together with the
    analysis code, the eye-state classifier in use and the versions of dlib, its models and OpenCV."""
    from exgan_cli.stages.eye_classifier import eye_state_key

    spec = {
        "format": FORMAT,
        "settings": settings,
        "code": _code_hash(),
        "eye_state": eye_state_key(),
        "packages": [
            _package_version("dlib-bin", "dlib"),
            _package_version("face_recognition_models"),
            _package_version("opencv-python-headless", "opencv-python"),
        ],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


class AnalysisCache:
    """Entries (JSON-able dicts) by content hash, under one fingerprint's folder."""

    def __init__(self, root: str | os.PathLike, settings: dict[str, Any]):
        self.root = Path(root)
        self.folder = self.root / "references" / analysis_fingerprint(settings)
        self.hits = 0
        self.misses = 0
        self._sweep()

    def _sweep(self, older_than: float = 600.0) -> None:
        """Remove temporary files of writes that never finished: a run that ended while its
        references' thread was storing an analysis (apps/one_photo.py exits without waiting)."""
        import time

        now = time.time()
        for tmp in self.folder.glob(".tmp-*.json") if self.folder.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > older_than:
                    tmp.unlink()

    def _path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.json"

    def get(self, sha256: str) -> dict[str, Any] | None:
        """The stored entry, or None (missing, unreadable or not a JSON object)."""
        try:
            entry = json.loads(self._path(sha256).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        if not isinstance(entry, dict) or entry.get("sha256") != sha256:
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, sha256: str, entry: dict[str, Any]) -> bool:
        """Store ``entry`` atomically; False (and nothing raised) when the cache can't be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            data = json.dumps({**entry, "sha256": sha256}, separators=(",", ":")).encode("utf-8")
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._path(sha256))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return True
        except OSError:
            return False
