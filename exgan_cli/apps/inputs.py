"""What a retouch starts from: the photo's faces with their eye states, the references, the model.

Each runner (one photo, an album, the Python API) gets these the same way, and hands them to
``apps.retouch.retouch``, which never measures them again.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from exgan_cli.options import RetouchOptions


def find_faces(rgb: np.ndarray, options: RetouchOptions | None = None) -> tuple[list, list]:
    """Every face of the photo (RGB uint8), left to right, and the eye state of each: (faces, states).

    Faces are stages.faces.Face (box (x0, y0, x1, y1), 68 landmarks as (x, y)); states are
    stages.eye_state.EyeState.
    """
    from exgan_cli.stages import eye_state, faces as facelib

    options = options or RetouchOptions()
    min_face = facelib.MIN_FACE if options.min_face is None else float(options.min_face)
    found = facelib.detect_faces(rgb, detector=options.detector, min_face=min_face)
    return found, [eye_state.assess(rgb, f) for f in found]


def load_references(refs: Sequence[Path] = (), ref_dir: Path | None = None,
                    options: RetouchOptions | None = None) -> tuple[list, list[dict]]:
    """Every face of the reference photos, measured: (candidates, rejected as JSON-ready dicts).

    A reference photo that cannot be read or has no usable face is rejected, not an error; a
    missing file or folder is a BadInputError, and no photo at all a NoReferenceError. Analyses are
    cached unless ``options.cache`` is off.
    """
    from exgan_cli.errors import NoReferenceError
    from exgan_cli.stages.references import collect_reference_paths, load_candidates, open_cache

    options = options or RetouchOptions()
    paths = collect_reference_paths(list(refs), ref_dir)
    if not paths:
        raise NoReferenceError("no reference photo given (use --ref or --ref-dir)")
    cache = open_cache(options.detector) if options.cache else None
    candidates, rejections = load_candidates(paths, detector=options.detector, cache=cache)
    return candidates, [{"path": str(r.path), "face": r.face_index, "reason": r.reason} for r in rejections]


def load_model(weights: str | Path | None = None, device: str = "auto"):
    """A generator ready to in-paint: a model folder, a Hub id OWNER/NAME[@REVISION], or None for
    the bundled default (model.weights.Pretrained)."""
    from exgan_cli.model.weights import load_pretrained, resolve_default, resolve_device

    return load_pretrained(weights or resolve_default(), device=resolve_device(device))


def load_model_in_background(options: RetouchOptions) -> Future:
    """``load_model`` on a second thread; ``.result()`` gives the model or raises its WeightsError.

    Importing torch is most of a cold start, and dlib releases the GIL while it scans, so the
    model loads on the second core while this one decodes and detects (benchmarks/cold_start.py).
    """
    loader = ThreadPoolExecutor(1, thread_name_prefix="exgan-model")
    future = loader.submit(load_model, options.weights, options.device)
    loader.shutdown(wait=False)
    return future
