"""retouch_file(): files in, files out, for one photo (what `exgan open-eyes` does).

Checks every path before any work, never writes over the input, writes nothing when there
is nothing to do or anything fails, and writes each output atomically.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from exgan_cli.options import RetouchOptions
from exgan_cli.errors import NoFaceError, NoReferenceError, SelfCheckError


@dataclass
class RetouchRequest:
    """One photo's files; how to retouch it is ``options``."""

    photo: Path
    output: Path
    refs: list[Path] = field(default_factory=list)
    ref_dir: Optional[Path] = None
    overwrite: bool = False
    report: Optional[Path] = None
    compare: Optional[Path] = None
    options: RetouchOptions = field(default_factory=RetouchOptions)


@dataclass
class Outcome:
    photo: Path
    output: Optional[Path]  # None when nothing was written
    status: str  # "written" | "nothing to do"
    faces: list  # FaceReport
    weights: str = ""
    rejected: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    save: Optional[dict] = None  # how the output was written: images.SaveInfo.to_dict() ("patched" | "full")

    def to_dict(self) -> dict[str, Any]:
        return {
            "photo": str(self.photo),
            "output": str(self.output) if self.output else None,
            "status": self.status,
            "weights": self.weights,
            "faces": [f.to_dict() for f in self.faces],
            "rejected_references": self.rejected,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "save": self.save,
        }


def check_outputs(request: RetouchRequest) -> None:
    """Refuse, before any work, a photo that is not a file or not a supported image by its header,
    then outputs that would overwrite the input or an existing file, or that no image format is
    written to (the photo and --compare): the photo's own problem is said first."""
    from exgan_cli.files.images import check_output, check_photo

    check_photo(request.photo)
    for path, image in ((request.output, True), (request.compare, True), (request.report, False)):
        if path is not None:
            check_output(path, overwrite=request.overwrite, inputs=[request.photo], image=image)


def retouch_file(request: RetouchRequest, log: Optional[Callable[[str], None]] = None) -> Outcome:
    """Retouch ``request.photo`` and write its output (and report, compare image) atomically.

    Raises an ExganError subclass, with nothing written, for a bad input, no face, no usable
    reference, or when no retouched face passes the self-check (or the pose limit).
    """
    from exgan_cli.apps.inputs import find_faces, load_model_in_background, load_references_in_background, require_usable
    from exgan_cli.files.images import drop_prepared, load_image, prepare_save
    from exgan_cli.stages.dlib_models import preload_landmarks

    say = log or (lambda s: None)
    options = request.options
    timings: dict[str, float] = {}
    check_outputs(request)
    # The model and the references load beside the photo's decoding and scanning, each on its
    # own thread; their errors (a bad --weights, a missing reference) are raised where needed.
    # dlib's landmark model reads on a third, beside the photo's HOG scan: the read holds the GIL
    # (~1 s) and would stop the photo's decoding, the scan does not need it (stages/dlib_models.py).
    model_future = load_model_in_background(options)
    refs_future = load_references_in_background(request.refs, request.ref_dir, options)
    scan_started = threading.Event()
    preload_landmarks(scan_started)

    t = time.perf_counter()
    image = load_image(request.photo)
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    found, states = find_faces(image.pixels, options, scan_started)
    timings["detect"] = time.perf_counter() - t
    if not found:
        raise NoFaceError(f"{request.photo}: no face found")
    nothing = _nothing_to_do(request, found, states, say)
    if nothing is not None:
        nothing.timings = timings
        return nothing

    t = time.perf_counter()
    try:
        candidates, rejected = refs_future.result()
    except NoReferenceError as e:
        raise NoReferenceError(f"{request.photo}: {e}") from None
    timings["references"] = time.perf_counter() - t  # the wait for them: they load beside the detection
    require_usable(request.photo, candidates, rejected)

    prepare_save(request.output, image)  # the input JPEG's coefficients read while the faces are retouched
    try:
        t = time.perf_counter()
        model = model_future.result()  # loaded meanwhile; raises its WeightsError here
        timings["model"] = time.perf_counter() - t
        say(f"weights: {model.source}")
        result = _retouch_checked(request, image.pixels, candidates, model, found, states)
        for k, v in result.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        outcome = Outcome(
            photo=request.photo, output=request.output, status="written", faces=result.faces,
            weights=model.source, rejected=rejected, timings=timings,
        )
        _write(request, image, result, candidates, outcome, say)
    finally:
        drop_prepared(image)  # used by the write, or not needed after all: not kept either way
    return outcome


def _nothing_to_do(request: RetouchRequest, found: list, states: list, say) -> Outcome | None:
    """The outcome when no face is selected (nothing written); None when there is work."""
    from exgan_cli.apps.retouch import FaceReport, idle_status, select_faces

    try:
        selected = select_faces(found, states, request.options)
    except NoFaceError as e:
        raise NoFaceError(f"{request.photo}: {e}") from None
    if selected:
        return None
    i = request.options.face_index
    if i is not None:  # the asked-for face is hidden (select_faces): say that, not a count
        say(f"{request.photo}: face {i}: eyes hidden ({states[i].rule}): left alone, nothing written")
    else:
        faces = f"{len(found)} face" + ("" if len(found) == 1 else "s")
        narrow, hidden = (sum(s.state == k for s in states) for k in ("narrow", "hidden"))
        left = [f"{n} {k}" for n, k in ((narrow, "narrow"), (hidden, "hidden")) if n]
        extra = f" ({', '.join(left)}: left alone{'; --faces narrow opens narrowed eyes' if narrow else ''})" if left else ""
        say(f"{request.photo}: {faces}, none with closed eyes{extra}: nothing to do, nothing written")
    reports = [
        FaceReport(index=i, box=tuple(int(v) for v in f.box), detector=f.detector, eyes_before=s.to_dict(), status=idle_status(s))
        for i, (f, s) in enumerate(zip(found, states))
    ]
    return Outcome(photo=request.photo, output=None, status="nothing to do", faces=reports)


def _retouch_checked(request: RetouchRequest, pixels: np.ndarray, candidates: list, model, found: list, states: list):
    """apps.retouch.retouch with the photo's name on its errors; SelfCheckError when every face was refused."""
    from exgan_cli.apps.retouch import retouch

    try:
        result = retouch(pixels, candidates, model, request.options, faces=found, states=states)
    except NoReferenceError as e:
        raise NoReferenceError(f"{request.photo}: {e}") from None
    refused = [f for f in result.faces if f.status in ("failed self-check", "pose out of range")]
    if not result.retouched and refused:
        why = "; ".join(f"face {f.index}: {f.message}" for f in refused)
        raise SelfCheckError(f"{request.photo}: no retouched face passed the self-check (or the pose limit), nothing written: {why}")
    return result


def _write(request: RetouchRequest, image, result, candidates: list, outcome: Outcome, say) -> None:
    """The compare image, the photo (JPEG blocks patched where possible), then the report."""
    from exgan_cli.files.images import atomic_write_bytes, save_image, save_image_info

    t = time.perf_counter()
    if request.compare is not None:
        save_image(compare_image(image.pixels, result, candidates), request.compare, overwrite=request.overwrite)
    saved = save_image_info(result.pixels, request.output, like=image, overwrite=request.overwrite)
    outcome.save = saved.to_dict()
    say(saved.describe())
    outcome.timings["write"] = time.perf_counter() - t
    if request.report is not None:  # after the photo: the report says how it was written
        atomic_write_bytes(request.report, (json.dumps(outcome.to_dict(), indent=2) + "\n").encode())


def compare_image(before: np.ndarray, result, candidates, height: int = 768) -> np.ndarray:
    """before | after | the reference faces used, side by side at a common height."""
    import cv2

    def fit(img: np.ndarray, h: int) -> np.ndarray:
        w = max(1, round(img.shape[1] * h / img.shape[0]))
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if h < img.shape[0] else cv2.INTER_CUBIC)

    h = min(height, before.shape[0])
    panels = [fit(before, h), np.full((h, 8, 3), 255, np.uint8), fit(result.pixels, h)]
    used = [f.reference["path"] for f in result.retouched if f.reference]
    refs = []
    for c in candidates:
        if str(c.path) in used and not any(r is c.pixels for r in refs):
            x0, y0, x1, y1 = c.face.box
            m = (x1 - x0) // 2
            crop = c.pixels[max(0, y0 - m): y1 + m, max(0, x0 - m): x1 + m]
            refs.append(crop)
    if refs:
        each = h // len(refs)
        tiles = [fit(r, each) for r in refs]
        width = max(t.shape[1] for t in tiles)
        column = np.vstack([np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])
        column = np.pad(column, ((0, h - column.shape[0]), (0, 0), (0, 0)), constant_values=255)
        panels += [np.full((h, 8, 3), 255, np.uint8), column]
    return np.hstack(panels)
