"""Album runs: open one person's closed eyes in every photo of a folder (`exgan batch`).

``run_batch(BatchOptions(album, person_dir))`` walks the album recursively and, in every photo,
retouches the closed-eyed faces of the person shown in ``person_dir`` (and only theirs), each
with the best reference from ``person_dir`` (``pipeline.retouch`` -> ``references.choose_reference``,
the same selection as `exgan open-eyes`). It returns a BatchSummary and can report each photo
to a callback (the CLI draws a progress bar with it).

Identity. Every photo in ``person_dir`` must show exactly one face: its 128-d dlib descriptor
is one sample of the person. A face in the album is the person when its *identity distance*,
the mean of its IDENTITY_K smallest Euclidean distances to those samples (all of them when
there are fewer), is at most ``identity_threshold`` (faces.SAME_PERSON_THRESHOLD = 0.6 by
default, dlib's documented decision threshold). Averaging the closest few instead of taking
the single closest keeps one look-alike sample from letting a stranger through, while a
person-dir of varied photos still matches every pose. With 3 or more samples, a photo that
matches fewer than half of the others is left out as someone else (a wrong file in the folder).

Files. Only files with an image suffix (.jpg, .jpeg, .png, .webp, any case) are photos; a photo
whose content is not a readable image is an error for that photo; other files and hidden
ones are skipped and counted. Outputs keep the album's relative layout under ``out_dir``
(default: ``<album>_open`` beside the album; never inside it) and are written atomically
(temp file + rename), so an interrupted run (even kill -9) leaves no half-written file. A
re-run skips outputs that exist (``overwrite`` redoes them), removes the temporary files an
interrupted run left, and does not analyse again a photo the report already records as
unchanged under the same settings and unchanged source file. Originals are never written.

Report. ``out_dir/report.jsonl``: one JSON object per line, appended and flushed as each
photo finishes: a "run-start" line (person, settings), one "photo" line per photo (status
retouched | failed self-check | unchanged | copied | skipped-existing | error, faces, which are the person,
references, distances, timings, error text) and a "run-end" line with the counts.

Self-check. Every retouched face is checked like in `exgan open-eyes` (selfcheck.py: eyes open
now, still the same person; else the next reference). A photo in which every face to retouch
failed the check is not written (only copied byte for byte with ``copy_unchanged``) and is
recorded as "failed self-check", with each face's reasons (FaceReport.self_check).

Speed. Decoding, detection, landmarks, eye state (eyes.assess: the eye-state
classifier, loaded once per worker process, or the EAR rule without its weights) and the identity of the faces that could
be retouched run in ``workers`` processes (descriptors cost ~60-90 ms a face on CPU, so faces
with open eyes are not identified unless ``identify_all`` or ``all_faces``); pixels come back
only for photos with something to retouch. The model and the person's references are loaded
once; the generator runs in this process, batched over the faces of each photo.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from exgan_cli.errors import DataError, ExganError, NoReferenceError, OutputError

IDENTITY_K = 3  # a face's identity distance: mean of its k smallest distances to the person's samples
REPORT_NAME = "report.jsonl"  # in out_dir
LOCK_NAME = ".exgan-batch.lock"  # in out_dir: one run at a time may write there
# images.atomic_writer's temporary files: "." + final name + "." + 8 mkstemp characters + ".tmp"
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
STATUSES = ("retouched", "failed self-check", "unchanged", "copied", "skipped-existing", "error")
WINDOW_PER_WORKER = 2  # photos in flight per worker process (bounds the decoded pixels held)


@dataclass
class BatchOptions:
    album: Path  # folder of photos, walked recursively
    person_dir: Path  # photos of the person (one face each): identity and references
    out_dir: Optional[Path] = None  # None: album.parent / (album.name + "_open")
    overwrite: bool = False  # redo outputs that already exist
    copy_unchanged: bool = False  # copy photos with nothing to retouch (byte-identical)
    workers: Optional[int] = None  # processes decoding and detecting; None: CPU cores; 0: this process
    weights: Optional[str] = None  # model folder or Hub id; None: the bundled default
    device: str = "auto"  # where the generator runs: auto | cpu | cuda
    detector: str = "auto"  # dlib face detector: auto (HOG, then CNN when HOG finds none) | hog | cnn
    min_face: Optional[float] = None  # smallest face width (px) looked for; None: faces.MIN_FACE (40)
    identity_threshold: Optional[float] = None  # max identity distance; None: faces.SAME_PERSON_THRESHOLD
    identity_k: int = IDENTITY_K  # see the module docstring
    all_faces: bool = False  # retouch every face of the person, open-eyed ones too
    identify_all: bool = False  # measure the identity of every face (fuller report, slower)
    self_check: bool = True  # check each retouched face (selfcheck.py); never write a failed one
    cache: bool = True  # reuse stored analyses of the person's photos (reference_cache.py; --no-cache)
    best_of: int = 2  # references tried per face, the result closest to the face's identity kept (RetouchOptions.best_of)
    force: bool = False  # retouch past the pose limit (RetouchOptions.force)
    detail: bool = True  # full-resolution detail for the new eyes (BlendConfig.detail)


# ---------------------------------------------------------------------------------------
# The person


@dataclass
class Person:
    folder: Path
    photos: list[Path]  # photos that define the identity (one face each)
    descriptors: np.ndarray  # (n, 128) float32: one sample per photo
    candidates: list  # references.Candidate of those photos: what open-eyes' selection picks from
    rejected: list[dict[str, str]]  # {"path", "reason"}: photos of person_dir not used, and why

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "photos": [str(p) for p in self.photos],
            "open_eyed": sum(1 for c in self.candidates if not c.eye.closed),
            "rejected": self.rejected,
        }


def identity_distance(descriptor: np.ndarray, samples: np.ndarray, k: int = IDENTITY_K) -> float:
    """Mean of the ``k`` smallest Euclidean distances from ``descriptor`` to the person's samples."""
    d = np.linalg.norm(np.asarray(samples, np.float64) - np.asarray(descriptor, np.float64)[None, :], axis=1)
    k = max(1, min(int(k), len(d)))
    return float(np.sort(d)[:k].mean())


def load_person(folder: Path, detector: str = "auto", threshold: Optional[float] = None, cache: bool = False) -> Person:
    """The person shown in ``folder`` (not recursive): descriptors and reference candidates.

    DataError when the folder is missing or no photo in it holds exactly one face;
    NoReferenceError when every usable face has closed eyes (nothing to copy eyes from).
    ``cache``: reuse stored analyses of photos seen before (references.open_cache).
    """
    from exgan_cli.stages.faces import SAME_PERSON_THRESHOLD, descriptor_distance
    from exgan_cli.stages.references import collect_reference_paths, load_candidates, open_cache

    threshold = SAME_PERSON_THRESHOLD if threshold is None else threshold
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: person folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (--person-dir takes a folder of photos of one person)")
    try:
        paths = collect_reference_paths([], folder)
    except ExganError as e:
        raise DataError(str(e)) from None
    candidates, rejections = load_candidates(paths, detector=detector, cache=open_cache(detector) if cache else None)
    rejected = [{"path": str(r.path), "reason": r.reason} for r in rejections]
    by_photo: dict[Path, list] = {}
    for c in candidates:
        by_photo.setdefault(c.path, []).append(c)
    single = []
    for path, cands in by_photo.items():
        if len(cands) == 1:
            single.append(cands[0])
        else:
            rejected.append({"path": str(path), "reason": f"{len(cands)} faces (each photo must show the person alone)"})
    # A photo unlike most of the others is someone else's (a wrong file in the folder).
    if len(single) >= 3:
        kept = []
        for c in single:
            others = [o for o in single if o is not c]
            close = sum(descriptor_distance(c.descriptor, o.descriptor) <= threshold for o in others)
            if close * 2 < len(others):
                rejected.append({"path": str(c.path), "reason": f"looks like another person (matches {close} of the {len(others)} other photos)"})
            else:
                kept.append(c)
        single = kept
    rejected.sort(key=lambda r: r["path"])
    if not single:
        why = "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejected[:6]) or "no photos"
        more = f"; and {len(rejected) - 6} more" if len(rejected) > 6 else ""
        raise DataError(f"{folder}: no usable face of the person ({why}{more})")
    if all(c.eye.closed for c in single):
        raise NoReferenceError(f"{folder}: the person's eyes are closed in every photo: no reference to copy open eyes from")
    single.sort(key=lambda c: str(c.path))
    return Person(
        folder=folder,
        photos=[c.path for c in single],
        descriptors=np.stack([c.descriptor for c in single]).astype(np.float32),
        candidates=single,
        rejected=rejected,
    )


# ---------------------------------------------------------------------------------------
# Folders


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


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on out_dir for the run (released by the OS even on kill -9)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{out_dir}: another exgan batch run is writing to this folder") from None
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------
# Analysis of one photo (runs in the worker processes)


@dataclass
class Matcher:
    """What a worker needs to tell the person's faces from the others (small, pickled per task)."""

    samples: np.ndarray  # (n, 128) the person's descriptors
    threshold: float
    k: int
    detector: str
    min_face: float
    all_faces: bool
    identify_all: bool


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


def analyse_photo(path: str, rel: str, matcher: Matcher) -> Analysis:
    """Decode, detect, eye state, identity; never raises for a bad photo (``error`` says why)."""
    out = Analysis(rel=rel)
    try:
        from exgan_cli.stages import eye_state as eyes, faces as facelib
        from exgan_cli.files.images import load_image

        t = time.perf_counter()
        image = load_image(path)
        out.timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        out.faces = facelib.detect_faces(image.pixels, detector=matcher.detector, min_face=matcher.min_face)
        out.eyes = [eyes.assess(image.pixels, f) for f in out.faces]  # the classifier, as in open-eyes
        out.timings["detect"] = time.perf_counter() - t
        t = time.perf_counter()
        for f, s in zip(out.faces, out.eyes):
            if matcher.identify_all or matcher.all_faces or s.closed:
                d = identity_distance(facelib.face_descriptor(image.pixels, f), matcher.samples, matcher.k)
                out.distances.append(round(d, 4))
            else:
                out.distances.append(None)
        out.timings["identify"] = time.perf_counter() - t
        out.todo = [
            i for i, (d, s) in enumerate(zip(out.distances, out.eyes))
            if d is not None and d <= matcher.threshold and (matcher.all_faces or s.closed)
        ]
        if out.todo:
            out.image = image
    except ExganError as e:
        out.error = str(e)
    except Exception as e:  # a bug or a native library failing on odd pixels: this photo only
        out.error = f"unexpected error (please report it): {type(e).__name__}: {e}"
        out.bug = traceback.format_exc()
    return out


def _init_worker() -> None:
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)  # the workers already use every core
    with contextlib.suppress(Exception):
        from exgan_cli.stages.eye_classifier import default_folder

        if default_folder().exists():  # eyes.assess runs the eye-state classifier here (torch)
            import torch

            torch.set_num_threads(1)


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
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)
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
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


# ---------------------------------------------------------------------------------------
# The run


@dataclass
class PhotoRecord:
    path: str  # relative to the album (POSIX)
    status: str  # one of STATUSES
    output: Optional[str] = None  # relative to out_dir, when a file was written or exists
    faces: list[dict] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)  # faces that are the person
    retouched: list[int] = field(default_factory=list)
    failed_check: list[int] = field(default_factory=list)  # faces in-painted but kept: failed the self-check
    references: list[str] = field(default_factory=list)  # reference photos used
    error: Optional[str] = None
    traceback: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)
    source: dict[str, int] = field(default_factory=dict)  # {"size", "mtime_ns"} of the photo
    resumed: bool = False  # known from an earlier run's report, not analysed again
    analysed: bool = False  # decoded and searched for faces in this run
    save: Optional[dict] = None  # how a retouched photo was written: images.SaveInfo.to_dict()

    def to_dict(self, settings: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": "photo",
            "path": self.path,
            "status": self.status,
            "output": self.output,
            "faces": self.faces,
            "matched": self.matched,
            "retouched": self.retouched,
            "failed_check": self.failed_check,
            "references": self.references,
            "error": self.error,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "source": self.source,
            "settings": settings,
            "resumed": self.resumed,
            "time": _now(),
        }
        if self.traceback:
            d["traceback"] = self.traceback
        if self.save:
            d["save"] = self.save
        return d


@dataclass
class BatchPlan:
    album: Path
    out_dir: Path
    person: Person
    photos: int  # files with an image suffix
    to_analyse: int  # of which decoded and searched in this run
    already_done: int  # outputs that exist, or known unchanged from the report
    others: Counter
    temp_removed: int
    workers: int
    weights: str
    device: str


@dataclass
class BatchSummary:
    album: Path
    out_dir: Path
    report: Path
    person: Person
    photos: int = 0
    counts: Counter = field(default_factory=Counter)  # status -> photos
    faces_seen: int = 0  # in the photos analysed
    faces_matched: int = 0  # of which the person's
    faces_retouched: int = 0
    faces_failed_check: int = 0  # in-painted, failed the self-check, left as they were
    analysed: int = 0  # photos decoded and searched in this run
    others: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (relative path, error)
    failed_check: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why): photos left as they were
    temp_removed: int = 0
    seconds: float = 0.0
    workers: int = 0
    weights: str = ""
    completed: bool = False  # False: interrupted (or failed) before the last photo

    @property
    def photos_per_second(self) -> float:
        return self.analysed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "run-end",
            "completed": self.completed,
            "album": str(self.album),
            "out_dir": str(self.out_dir),
            "photos": self.photos,
            "counts": {s: self.counts.get(s, 0) for s in STATUSES},
            "analysed": self.analysed,
            "faces_seen": self.faces_seen,
            "faces_matched": self.faces_matched,
            "faces_retouched": self.faces_retouched,
            "faces_failed_check": self.faces_failed_check,
            "other_files": dict(self.others),
            "errors": [{"path": p, "error": e} for p, e in self.errors],
            "failed_self_check": [{"path": p, "why": w} for p, w in self.failed_check],
            "temp_files_removed": self.temp_removed,
            "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 3),
            "time": _now(),
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _source_stat(path: Path) -> dict[str, int]:
    try:
        st = path.stat()
        return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    except OSError:
        return {}


def _settings_key(person: Person, matcher: Matcher) -> str:
    """What decides whether a photo has anything to retouch: a photo recorded as unchanged
    under the same key (and the same source size and time) needs no second look."""
    from exgan_cli.stages.eye_classifier import eye_state_key

    spec = {
        "person": [[p.name, *_source_stat(p).values()] for p in person.photos],
        "threshold": matcher.threshold,
        "k": matcher.k,
        "detector": matcher.detector,
        "min_face": matcher.min_face,
        "all_faces": matcher.all_faces,
        "eye_state": eye_state_key(),  # which classifier (or the EAR rule) judged the eyes
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def read_report(path: Path) -> dict[str, dict]:
    """The last "photo" line of each photo in a report.jsonl that says what the photo needed
    ("skipped-existing" lines say nothing about it; unreadable lines are ignored)."""
    last: dict[str, dict] = {}
    if not path.is_file():
        return last
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue  # e.g. a line cut by a kill
            if (
                isinstance(d, dict) and d.get("kind") == "photo" and isinstance(d.get("path"), str)
                and d.get("status") != "skipped-existing"
            ):
                last[d["path"]] = d
    return last


class _Report:
    """report.jsonl, appended: one line per event, flushed at once."""

    def __init__(self, path: Path):
        self.path = path
        ends_cleanly = True
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                ends_cleanly = f.read(1) == b"\n"
        self.file = open(path, "a", encoding="utf-8")
        if not ends_cleanly:  # a line cut by a kill: start a fresh one
            self.file.write("\n")

    def write(self, obj: dict) -> None:
        self.file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


@contextlib.contextmanager
def _torch_threads(n: Optional[int]) -> Iterator[None]:
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


def _eyes(state) -> dict[str, Any]:
    return state.to_dict()  # as the pipeline's FaceReport.eyes_before


def _face_dicts(analysis: Analysis, threshold: float, result=None) -> list[dict]:
    """Per face: the pipeline's FaceReport fields (when retouch ran) plus identity."""
    out = []
    for i, (f, s, d) in enumerate(zip(analysis.faces, analysis.eyes, analysis.distances)):
        person = None if d is None else bool(d <= threshold)
        if result is not None and i in analysis.todo:
            fd = result.faces[i].to_dict()
        else:
            fd = {
                "index": i, "box": [int(v) for v in f.box], "detector": f.detector, "message": "",
                "eyes_before": _eyes(s), "eyes_after": None, "reference": None, "mask_boxes": [], "identity_after": None,
                "self_check": None,
            }
            fd["status"] = "other person" if person is False else ("eyes open" if not s.closed else "not selected")
        fd["distance"] = d
        fd["person"] = person
        out.append(fd)
    return out


def _copy_atomic(src: Path, dst: Path, overwrite: bool) -> None:
    """Byte-identical copy, written atomically (temp file in dst's folder + rename)."""
    from exgan_cli.files.images import atomic_writer

    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as s, atomic_writer(dst, "wb", overwrite=overwrite) as d:
        shutil.copyfileobj(s, d, 1 << 20)


def run_batch(
    options: BatchOptions,
    on_start: Optional[Callable[[BatchPlan], None]] = None,
    on_photo: Optional[Callable[[PhotoRecord], None]] = None,
) -> BatchSummary:
    """Retouch the person of ``options.person_dir`` across ``options.album``; see the module doc.

    Raises (nothing written yet) DataError for a missing album or an unusable person folder,
    NoReferenceError when the person's eyes are closed in every photo, WeightsError, and
    OutputError for an output folder inside the album or held by another run. Problems with
    single photos never raise: they are recorded and the run goes on.
    """
    from exgan_cli.stages.faces import MIN_FACE, SAME_PERSON_THRESHOLD
    from exgan_cli.stages.blend import BlendConfig
    from exgan_cli.options import RetouchOptions
    from exgan_cli.stages.selfcheck import SelfCheckConfig
    from exgan_cli.model.weights import load_pretrained, resolve_default, resolve_device

    t_start = time.perf_counter()
    album = Path(options.album)
    if not album.exists():
        raise DataError(f"{album}: album folder not found")
    if not album.is_dir():
        raise DataError(f"{album}: not a folder (batch takes a folder of photos; use open-eyes for one photo)")
    out_dir = Path(options.out_dir) if options.out_dir is not None else default_out_dir(album)
    check_out_dir(album, out_dir)
    threshold = SAME_PERSON_THRESHOLD if options.identity_threshold is None else float(options.identity_threshold)
    if not threshold > 0:
        raise ExganError(f"identity threshold must be positive, not {threshold}")
    workers = default_workers() if options.workers is None else max(0, int(options.workers))

    person = load_person(options.person_dir, detector=options.detector, threshold=threshold, cache=options.cache)
    spec = options.weights if options.weights else resolve_default()
    model = load_pretrained(spec, device=resolve_device(options.device))

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out_dir}: cannot create the output folder ({e})") from None
    matcher = Matcher(
        samples=person.descriptors, threshold=threshold, k=options.identity_k, detector=options.detector,
        min_face=float(MIN_FACE if options.min_face is None else options.min_face), all_faces=options.all_faces, identify_all=options.identify_all,
    )
    settings = _settings_key(person, matcher)
    summary = BatchSummary(album=album, out_dir=out_dir, report=out_dir / REPORT_NAME, person=person,
                           workers=workers, weights=model.source)
    with _locked(out_dir):
        summary.temp_removed = remove_temp_files(out_dir)
        previous = {} if options.overwrite else read_report(summary.report)
        scan = scan_album(album)
        summary.photos, summary.others = len(scan.photos), scan.others

        # What is already done: outputs that exist, photos known unchanged from the report.
        done: list[PhotoRecord] = []
        queue: list[tuple[str, str]] = []
        for rel in scan.photos:
            src, dst = album / rel, out_dir / rel
            stat = _source_stat(src)
            if dst.exists() and not options.overwrite:
                done.append(PhotoRecord(rel, "skipped-existing", output=rel, source=stat))
                continue
            prev = previous.get(rel)
            if (
                prev and prev.get("status") in ("unchanged", "copied") and prev.get("settings") == settings
                and prev.get("source") == stat and stat
            ):
                keep = ("faces", "matched")
                done.append(PhotoRecord(rel, "unchanged", source=stat, resumed=True, **{k: prev.get(k) or [] for k in keep}))
                continue
            queue.append((str(src), rel))

        plan = BatchPlan(
            album=album, out_dir=out_dir, person=person, photos=len(scan.photos), to_analyse=len(queue),
            already_done=len(done), others=scan.others, temp_removed=summary.temp_removed, workers=workers,
            weights=model.source, device=str(next(model.generator.parameters()).device),
        )
        report = _Report(summary.report)
        try:
            report.write({
                "kind": "run-start", "time": _now(), "album": str(album), "out_dir": str(out_dir),
                "person": person.to_dict(), "settings": settings, "threshold": threshold, "k": options.identity_k,
                "detector": options.detector, "min_face": matcher.min_face, "all_faces": options.all_faces, "overwrite": options.overwrite,
                "copy_unchanged": options.copy_unchanged, "self_check": options.self_check, "detail": options.detail,
                "weights": model.source, "workers": workers,
                "photos": len(scan.photos), "to_analyse": len(queue), "other_files": dict(scan.others),
                "temp_files_removed": summary.temp_removed,
            })
            if on_start:
                on_start(plan)

            def record(rec: PhotoRecord) -> None:
                summary.counts[rec.status] += 1
                if rec.status == "error":
                    summary.errors.append((rec.path, rec.error or ""))
                if rec.status == "failed self-check":
                    why = "; ".join(f"face {f['index']}: {f.get('message', '')}" for f in rec.faces
                                    if f.get("status") in ("failed self-check", "pose out of range"))
                    summary.failed_check.append((rec.path, why))
                if rec.analysed:
                    summary.analysed += 1
                    summary.faces_seen += len(rec.faces)
                    summary.faces_matched += len(rec.matched)
                    summary.faces_retouched += len(rec.retouched)
                    summary.faces_failed_check += len(rec.failed_check)
                report.write(rec.to_dict(settings))
                if on_photo:
                    on_photo(rec)

            for rec in done:
                if rec.status == "unchanged" and options.copy_unchanged:
                    rec = _unchanged(album, out_dir, rec, options)
                record(rec)

            base = RetouchOptions(
                faces="all" if options.all_faces else "closed", identity_threshold=threshold, detector=options.detector,
                blend=BlendConfig(detail=options.detail), self_check=SelfCheckConfig(enabled=options.self_check),
                best_of=options.best_of, force=options.force,
            )
            main_threads = max(1, default_workers() - workers) if workers > 0 else None
            with _torch_threads(main_threads), contextlib.closing(analyse_all(queue, matcher, workers)) as analyses:
                for analysis in analyses:
                    record(_finish(analysis, album, out_dir, person, model, base, threshold, options))
            summary.completed = True
        finally:
            summary.seconds = time.perf_counter() - t_start
            with contextlib.suppress(Exception):
                report.write(summary.to_dict())
            report.close()
    return summary


def _unchanged(album: Path, out_dir: Path, rec: PhotoRecord, options: BatchOptions) -> PhotoRecord:
    """Copy an unchanged photo when asked (byte-identical); otherwise leave it as recorded."""
    if not options.copy_unchanged:
        return rec
    t = time.perf_counter()
    try:
        _copy_atomic(album / rec.path, out_dir / rec.path, options.overwrite)
    except (ExganError, OSError) as e:
        rec.status, rec.error = "error", f"{out_dir / rec.path}: cannot copy: {e}"
        return rec
    rec.timings["copy"] = time.perf_counter() - t
    rec.status, rec.output = "copied", rec.path
    return rec


def _finish(analysis: Analysis, album: Path, out_dir: Path, person: Person, model, base, threshold: float,
            options: BatchOptions) -> PhotoRecord:
    """Retouch and write one analysed photo (this process); never raises for a bad photo."""
    from dataclasses import replace

    from exgan_cli.files.images import save_image_info
    from exgan_cli.apps.retouch import retouch

    rel = analysis.rel
    rec = PhotoRecord(rel, "unchanged", source=_source_stat(album / rel), analysed=True, timings=dict(analysis.timings))
    if analysis.error:
        rec.status, rec.error, rec.traceback = "error", analysis.error, analysis.bug
        return rec
    rec.faces = _face_dicts(analysis, threshold)
    rec.matched = [f["index"] for f in rec.faces if f["person"]]
    if not analysis.todo:
        return _unchanged(album, out_dir, rec, options)
    try:
        result = retouch(analysis.image.pixels, person.candidates, model, replace(base, only=tuple(analysis.todo)),
                         faces=analysis.faces, states=analysis.eyes)
        for k, v in result.timings.items():
            if k != "detect":
                rec.timings[k] = rec.timings.get(k, 0.0) + v
        rec.faces = _face_dicts(analysis, threshold, result)
        rec.retouched = [f.index for f in result.retouched]
        rec.failed_check = [f.index for f in result.failed_check]
        rec.references = sorted({f.reference["path"] for f in result.retouched if f.reference})
        if not result.retouched:  # every face failed the self-check: the photo stays as it was
            rec = _unchanged(album, out_dir, rec, options)
            if rec.status != "error":
                rec.status = "failed self-check"
            return rec
        t = time.perf_counter()
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        rec.save = save_image_info(result.pixels, dst, like=analysis.image, overwrite=options.overwrite).to_dict()
        rec.timings["write"] = time.perf_counter() - t
        rec.status, rec.output = "retouched", rel
    except NoReferenceError as e:
        rec.status, rec.error = "error", f"{album / rel}: nothing to copy the eyes from: {e}"
    except ExganError as e:
        rec.status, rec.error = "error", str(e)
    except OSError as e:
        rec.status, rec.error = "error", f"{out_dir / rel}: {e}"
    except Exception as e:  # a bug on this photo: reported, the album goes on
        rec.status, rec.error = "error", f"{album / rel}: unexpected error (please report it): {type(e).__name__}: {e}"
        rec.traceback = traceback.format_exc()
    finally:
        analysis.image = None  # free the pixels now
    return rec
