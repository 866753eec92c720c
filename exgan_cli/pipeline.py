"""retouch(): one photo, its faces, their references and the model -> the retouched photo.

This is the chain every command shares: detect -> eye state -> choose faces -> per face
align, masks, reference -> generator (batched over faces) -> colour match -> paste back (with
full-resolution detail from the reference photo unless ``BlendConfig.detail`` is off) ->
eye state and identity of the result. It works on pixels and plain data; reading and
writing files is the caller's business (commands/open_eyes.py, batch, evaluate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import geometry
from .blend import BlendConfig, feather_alpha, match_colour, paste_back, photo_boxes
from .detail import DetailSource, Exemplar
from .errors import NoFaceError, NoReferenceError


@dataclass
class RetouchOptions:
    faces: str = "closed"  # "closed": faces whose eyes are closed; "all": every face
    face_index: int | None = None  # only this face (index in the left-to-right order)
    only: tuple[int, ...] | None = None  # only among these faces (indices), e.g. one person's (batch)
    any_identity: bool = False  # accept references of another person
    identity_threshold: float | None = None  # None: faces.SAME_PERSON_THRESHOLD
    detector: str = "hog"  # "hog" or "cnn"
    blend: BlendConfig = field(default_factory=BlendConfig)


@dataclass
class FaceReport:
    index: int
    box: tuple[int, int, int, int]
    detector: str
    eyes_before: dict[str, Any]
    status: str  # "retouched" | "eyes open" | "not selected" | "no reference"
    message: str = ""
    eyes_after: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    mask_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    identity_after: float | None = None  # descriptor distance result face <-> reference

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "box": list(self.box),
            "detector": self.detector,
            "status": self.status,
            "message": self.message,
            "eyes_before": self.eyes_before,
            "eyes_after": self.eyes_after,
            "reference": self.reference,
            "mask_boxes": [[round(v, 1) for v in b] for b in self.mask_boxes],
            "identity_after": self.identity_after,
        }


@dataclass
class RetouchResult:
    pixels: np.ndarray
    faces: list[FaceReport]
    weights: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def retouched(self) -> list[FaceReport]:
        return [f for f in self.faces if f.status == "retouched"]


def _eyes_dict(state) -> dict[str, Any]:
    return {"left": round(float(state.left), 4), "right": round(float(state.right), 4), "closed": bool(state.closed)}


def select_faces(faces: Sequence, states: Sequence, options: RetouchOptions) -> list[int]:
    """Indices of the faces to in-paint under the options (faces are left to right)."""
    if options.face_index is not None:
        if not 0 <= options.face_index < len(faces):
            raise NoFaceError(f"--face {options.face_index}: the photo has {len(faces)} face(s), numbered 0 to {len(faces) - 1}")
        return [options.face_index]
    allowed = range(len(faces)) if options.only is None else sorted({i for i in options.only if 0 <= i < len(faces)})
    if options.faces == "all":
        return list(allowed)
    return [i for i in allowed if states[i].closed]


def prepare_face(rgb: np.ndarray, landmarks: np.ndarray, model) -> dict[str, Any]:
    """Aligned crop, photo->crop matrix, eye boxes and mask for one face (model's geometry)."""
    crop, matrix = geometry.align_face(rgb, landmarks, model.align_cfg)
    boxes = geometry.eye_boxes(geometry.transform_points(landmarks, matrix), model.mask_cfg)
    mask = geometry.boxes_to_mask(boxes, model.align_cfg.resolution)
    return {"crop": crop, "matrix": matrix, "boxes": boxes, "mask": mask}


def inpaint_crops(
    model, crops: np.ndarray, masks: np.ndarray, refs: np.ndarray | None, ref_masks: np.ndarray | None
) -> np.ndarray:
    """Run the generator on N aligned crops at once; raw output (N, res, res, 3) float in 0..255.

    crops/refs are uint8 (N, res, res, 3); masks/ref_masks float (N, res, res), 1 = hole.
    """
    import torch

    gen = model.generator
    device = next(gen.parameters()).device

    def to_t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def mask_t(m: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(m)).to(device).float()[:, None]

    with torch.inference_mode():
        x, m = to_t(crops), mask_t(masks)
        kwargs: dict[str, Any] = {}
        mode = model.model_cfg.mode
        if mode == "reference":
            kwargs = {"ref": to_t(refs), "ref_mask": mask_t(ref_masks)}
        elif mode == "code":
            kwargs = {"code": model.encoder(to_t(refs))}  # EyeEncoder.forward crops the eye band itself
        raw = gen(x * (1 - m), m, **kwargs)
        out = (raw.float().clamp(-1, 1) + 1) * 127.5
    return out.permute(0, 2, 3, 1).cpu().numpy()


def _reference_dict(choice) -> dict[str, Any]:
    c = choice.candidate
    return {
        "path": str(c.path),
        "face": int(c.index),
        "distance": round(float(choice.distance), 4),
        "score": round(float(choice.score), 4),
        "why": choice.reasons,
    }


def retouch(
    rgb: np.ndarray,
    candidates: Sequence,
    model,
    options: RetouchOptions | None = None,
    faces: Sequence | None = None,
) -> RetouchResult:
    """In-paint the selected faces of ``rgb`` (RGB uint8) with references from ``candidates``.

    ``faces`` may be passed when the caller already detected them. Raises NoFaceError when
    the photo has no face, NoReferenceError when faces need retouching but none has a
    usable reference. A face without a usable reference while others have one is reported
    as "no reference" and left untouched.
    """
    from . import eyes, faces as facelib, references

    options = options or RetouchOptions()
    threshold = options.identity_threshold if options.identity_threshold is not None else facelib.SAME_PERSON_THRESHOLD
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if faces is None:
        faces = facelib.detect_faces(rgb, detector=options.detector)
    timings["detect"] = time.perf_counter() - t
    if not faces:
        raise NoFaceError("no face found")
    states = [eyes.eye_state(f.landmarks) for f in faces]
    reports = [
        FaceReport(index=i, box=tuple(int(v) for v in f.box), detector=f.detector, eyes_before=_eyes_dict(s), status="not selected")
        for i, (f, s) in enumerate(zip(faces, states))
    ]
    chosen = select_faces(faces, states, options)
    for i, s in enumerate(states):
        if i not in chosen:
            reports[i].status = "eyes open" if not s.closed else "not selected"
    result = RetouchResult(pixels=rgb, faces=reports, weights=model.source, timings=timings)
    if not chosen:
        return result

    # References: one per chosen face, the best match for that person.
    t = time.perf_counter()
    size = (rgb.shape[1], rgb.shape[0])
    jobs: list[tuple[int, Any, dict]] = []
    failures: list[str] = []
    for i in chosen:
        f = faces[i]
        desc = facelib.face_descriptor(rgb, f)
        pose = facelib.head_pose(f.landmarks, size)
        try:
            choice = references.choose_reference(
                desc, pose, candidates, identity_threshold=threshold, any_identity=options.any_identity
            )
        except NoReferenceError as e:
            reports[i].status, reports[i].message = "no reference", str(e)
            failures.append(f"face {i}: {e}")
            continue
        reports[i].reference = _reference_dict(choice)
        jobs.append((i, choice, prepare_face(rgb, f.landmarks, model)))
    timings["references"] = time.perf_counter() - t
    if not jobs:
        raise NoReferenceError("; ".join(failures))

    # Generator, batched over faces.
    t = time.perf_counter()
    refs = [prepare_face(c.candidate.pixels, c.candidate.face.landmarks, model) for _, c, _ in jobs]
    raw = inpaint_crops(
        model,
        np.stack([j[2]["crop"] for j in jobs]),
        np.stack([j[2]["mask"] for j in jobs]),
        np.stack([r["crop"] for r in refs]),
        np.stack([r["mask"] for r in refs]),
    )
    timings["generate"] = time.perf_counter() - t

    # Paste back, one face at a time, into one output image.
    t = time.perf_counter()
    out = rgb
    res = model.align_cfg.resolution
    for (i, choice, prep), gen, ref in zip(jobs, raw, refs):
        colour = match_colour(gen, prep["crop"], prep["boxes"], options.blend)
        alpha = feather_alpha(prep["boxes"], res, options.blend)
        source = None
        if options.blend.detail:  # full-resolution detail from the reference photo (detail.py)
            c = choice.candidate
            source = DetailSource(faces[i].landmarks, Exemplar(c.pixels, c.face.landmarks, ref["matrix"]), options.blend.detail_cfg)
        out, _ = paste_back(out, colour, alpha, prep["matrix"], source)
        reports[i].status = "retouched"
        reports[i].mask_boxes = photo_boxes(prep["boxes"], prep["matrix"])
    timings["blend"] = time.perf_counter() - t

    # What the result looks like: eye state and identity of each retouched face.
    t = time.perf_counter()
    for i, choice, _ in jobs:
        after = _redetect(out, faces[i])
        if after is not None:
            reports[i].eyes_after = _eyes_dict(eyes.eye_state(after.landmarks))
            d = facelib.face_descriptor(out, after)
            reports[i].identity_after = round(float(facelib.descriptor_distance(d, choice.candidate.descriptor)), 4)
    timings["check"] = time.perf_counter() - t
    result.pixels = out
    return result


def _redetect(rgb: np.ndarray, face):
    """The face at ``face.box`` found again in ``rgb`` (after retouching), or None."""
    from . import faces as facelib

    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    X0, Y0 = max(0, int(x0 - w)), max(0, int(y0 - h))
    X1, Y1 = min(rgb.shape[1], int(x1 + w)), min(rgb.shape[0], int(y1 + h))
    found = facelib.detect_faces(np.ascontiguousarray(rgb[Y0:Y1, X0:X1]), detector=face.detector)
    if not found:
        return None
    cx, cy = (x0 + x1) / 2 - X0, (y0 + y1) / 2 - Y0
    best = min(found, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
    shift = np.array([X0, Y0], dtype=np.float64)
    return type(best)(
        box=(best.box[0] + X0, best.box[1] + Y0, best.box[2] + X0, best.box[3] + Y0),
        landmarks=best.landmarks + shift,
        detector=best.detector,
        score=best.score,
    )
