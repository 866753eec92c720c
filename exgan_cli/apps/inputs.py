"""What a retouch starts from: the photo's faces with their eye states, the references, the model.

Each runner (one photo, an album, the Python API) gets these the same way, and hands them to
``apps.retouch.retouch``, which never measures them again.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Sequence

import numpy as np

from exgan_cli.background import in_background
from exgan_cli.options import RetouchOptions


def find_faces(rgb: np.ndarray, options: RetouchOptions | None = None,
               scan_started: threading.Event | None = None) -> tuple[list, list]:
    """Every face of the photo (RGB uint8), left to right, and the eye state of each: (faces, states).

    Faces are stages.faces.Face (box (x0, y0, x1, y1), 68 landmarks as (x, y)); states are
    stages.eye_state.EyeState. ``scan_started``: see stages.dlib_models.preload_landmarks.
    """
    from exgan_cli.stages import eye_state, faces as facelib

    options = options or RetouchOptions()
    min_face = facelib.MIN_FACE if options.min_face is None else float(options.min_face)
    found = facelib.detect_faces(rgb, detector=options.detector, min_face=min_face, scan_started=scan_started)
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


def require_usable(photo: object, candidates: list, rejected: list[dict]) -> None:
    """NoReferenceError naming ``photo`` and why each reference photo was rejected ("a.jpg: no
    usable reference: noface.jpg: no face found") when no reference face is left to choose from."""
    from exgan_cli.errors import NoReferenceError

    if not candidates:
        why = "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejected) or "none found"
        raise NoReferenceError(f"{photo}: no usable reference: {why}")


def load_model(weights: str | Path | None = None, device: str = "auto", engine: str = "auto"):
    """A generator ready to in-paint: a model folder, a Hub id OWNER/NAME[@REVISION], or None for
    the bundled default (model.weights.Pretrained).

    ``engine`` "auto": on the CPU the numpy engine (model/numpy_nets.py: no torch import, ~2.4 s
    of a cold start; ~0.1 s a face slower than torch), torch on a GPU. "torch" for runs of many
    faces (batch), where the import is paid once.
    """
    from exgan_cli.model.weights import load_pretrained, resolve_default, resolve_device, wants_cpu

    if engine not in ("auto", "numpy", "torch"):
        raise ValueError(f"engine must be auto, numpy or torch, not {engine!r}")
    spec = weights or resolve_default()
    if engine == "numpy" or (engine == "auto" and wants_cpu(device)):
        return load_pretrained(spec, device="cpu" if device == "auto" else device, engine="numpy")
    return load_pretrained(spec, device=resolve_device(device))


def load_model_in_background(options: RetouchOptions) -> "Future":
    """``load_model`` on a second thread; ``.result()`` gives the model or raises its WeightsError.

    On a GPU this imports torch (~2.4 s); on the CPU the numpy engine reads the weights in ms.
    """
    return in_background(load_model, options.weights, options.device)


def load_references_in_background(refs: Sequence[Path] = (), ref_dir: Path | None = None,
                                  options: RetouchOptions | None = None) -> "Future":
    """``load_references`` on another thread: decoding and scanning the references (dlib and
    Pillow release the GIL) overlaps the photo's own detection (benchmarks/cold_start.py)."""
    return in_background(load_references, refs, ref_dir, options)
