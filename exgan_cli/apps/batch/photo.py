"""One analysed photo of the album retouched and written (in the main process, where the model is).

Every retouched face is checked like in `exgan open-eyes` (selfcheck.py: eyes open now, still
the same person; else the next reference). A photo in which every face to retouch failed the
check is not written (only copied byte for byte with ``copy_unchanged``) and is recorded as
"failed self-check", with each face's reasons (FaceReport.self_check).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from exgan_cli.apps.batch.album import copy_atomic, source_stat
from exgan_cli.apps.batch.journal import PhotoRecord
from exgan_cli.apps.batch.person import Person
from exgan_cli.apps.batch.workers import Analysis
from exgan_cli.errors import ExganError, NoReferenceError
from exgan_cli.options import RetouchOptions


@dataclass(frozen=True)
class Destination:
    """Where a photo's output goes, and how it may be written."""

    album: Path
    out_dir: Path
    overwrite: bool  # replace outputs that exist
    copy_unchanged: bool  # copy photos with nothing to retouch (byte-identical)


def face_dicts(analysis: Analysis, threshold: float, result=None) -> list[dict]:
    """Per face: the pipeline's FaceReport fields (when retouch ran) plus identity."""
    from exgan_cli.apps.retouch import idle_status

    out = []
    for i, (f, s, d) in enumerate(zip(analysis.faces, analysis.eyes, analysis.distances)):
        person = None if d is None else bool(d <= threshold)
        if result is not None and i in analysis.todo:
            fd = result.faces[i].to_dict()
        else:
            fd = {
                "index": i, "box": [int(v) for v in f.box], "detector": f.detector, "message": "",
                "eyes_before": s.to_dict(), "eyes_after": None, "reference": None, "mask_boxes": [],
                "identity_after": None, "self_check": None,
            }  # the keys and eyes of the pipeline's FaceReport
            fd["status"] = "other person" if person is False else idle_status(s)
        fd["distance"] = d
        fd["person"] = person
        out.append(fd)
    return out


def keep_unchanged(rec: PhotoRecord, dest: Destination) -> PhotoRecord:
    """Copy an unchanged photo when asked (byte-identical); otherwise leave it as recorded."""
    if not dest.copy_unchanged:
        return rec
    t = time.perf_counter()
    try:
        copy_atomic(dest.album / rec.path, dest.out_dir / rec.path, dest.overwrite)
    except (ExganError, OSError) as e:
        rec.status, rec.error = "error", f"{dest.out_dir / rec.path}: cannot copy: {e}"
        return rec
    rec.timings["copy"] = time.perf_counter() - t
    rec.status, rec.output = "copied", rec.path
    return rec


def finish_photo(analysis: Analysis, dest: Destination, person: Person, model, options: RetouchOptions) -> PhotoRecord:
    """Retouch and write one analysed photo; never raises for a bad photo.

    ``options.identity_threshold`` is the run's (resolved) threshold; ``options.only`` is set
    here to the person's faces that need it.
    """
    rel = analysis.rel
    threshold = float(options.identity_threshold)
    rec = PhotoRecord(rel, "unchanged", source=source_stat(dest.album / rel), analysed=True, timings=dict(analysis.timings))
    if analysis.error:
        rec.status, rec.error, rec.traceback = "error", analysis.error, analysis.bug
        return rec
    rec.faces = face_dicts(analysis, threshold)
    rec.matched = [f["index"] for f in rec.faces if f["person"]]
    if not analysis.todo:
        return keep_unchanged(rec, dest)
    try:
        return _retouch_and_write(analysis, rec, dest, person, model, replace(options, only=tuple(analysis.todo)))
    except NoReferenceError as e:
        rec.status, rec.error = "error", f"{dest.album / rel}: nothing to copy the eyes from: {e}"
    except ExganError as e:
        rec.status, rec.error = "error", str(e)
    except OSError as e:
        rec.status, rec.error = "error", f"{dest.out_dir / rel}: {e}"
    except Exception as e:  # a bug on this photo: reported, the album goes on
        rec.status, rec.error = "error", f"{dest.album / rel}: unexpected error (please report it): {type(e).__name__}: {e}"
        rec.traceback = traceback.format_exc()
    finally:
        analysis.image = None  # free the pixels now
    return rec


def _retouch_and_write(analysis: Analysis, rec: PhotoRecord, dest: Destination, person: Person, model,
                       options: RetouchOptions) -> PhotoRecord:
    """The generator on the photo's faces to retouch (eye states from the analysis, not measured
    again), then the output written beside the album's layout; raises for the caller to record."""
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.files.images import save_image_info

    result = retouch(analysis.image.pixels, person.candidates, model, options, faces=analysis.faces, states=analysis.eyes)
    for k, v in result.timings.items():
        if k != "detect":
            rec.timings[k] = rec.timings.get(k, 0.0) + v
    rec.faces = face_dicts(analysis, float(options.identity_threshold), result)
    rec.retouched = [f.index for f in result.retouched]
    rec.failed_check = [f.index for f in result.failed_check]
    rec.references = sorted({f.reference["path"] for f in result.retouched if f.reference})
    if not result.retouched:  # every face failed the self-check: the photo stays as it was
        rec = keep_unchanged(rec, dest)
        if rec.status != "error":
            rec.status = "failed self-check"
        return rec
    t = time.perf_counter()
    dst = dest.out_dir / rec.path
    dst.parent.mkdir(parents=True, exist_ok=True)
    rec.save = save_image_info(result.pixels, dst, like=analysis.image, overwrite=dest.overwrite).to_dict()
    rec.timings["write"] = time.perf_counter() - t
    rec.status, rec.output = "retouched", rec.path
    return rec
