"""`exgan inspect`: what the tool sees in a photo, without changing anything.

For every face: the box and which detector found it, the eye state with both scores (the
eye-state classifier's P(closed) and the two eye aspect ratios), the head pose from the
landmarks, the eye masks the model would in-paint (mapped back to the photo), and, with
reference photos, the identity distance to each reference face and whether each one is usable
for this face and why (the ranking reference_choice.choose_reference would use). ``inspect_photo``
returns plain data (JSON-ready); ``draw_inspection`` draws it on a copy of the photo.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from exgan_cli.stages.geometry import AlignConfig, MaskConfig


def _r(v: float, n: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), n)


def model_geometry(weights: str | None = None) -> tuple[AlignConfig, MaskConfig, str]:
    """Alignment and mask configs of the model open-eyes would use (read from its config.json,
    no tensors loaded), so the eye masks shown are the ones it would in-paint. Without weights:
    the defaults."""
    from exgan_cli.errors import WeightsError
    from exgan_cli.model.weights import CONFIG_FILE, read_config, resolve_default

    try:
        folder = Path(weights).expanduser() if weights else resolve_default()
    except WeightsError:
        return AlignConfig(), MaskConfig(), "defaults (no weights found)"
    path = folder / CONFIG_FILE
    if not path.is_file():
        return AlignConfig(), MaskConfig(), f"defaults ({path} not found)"
    _, align, mask, _ = read_config(path, str(folder))
    return align, mask, str(folder)


def _reference_entry(cand) -> dict[str, Any]:
    return {
        "path": str(cand.path),
        "face": cand.index,
        "box": [int(v) for v in cand.face.box],
        "detector": cand.face.detector,
        "eye_state": cand.eye.state,
        "eyes": cand.eye.to_dict(),
        "pose": dict(zip(("yaw", "pitch", "roll"), (_r(v, 1) for v in cand.pose))),
        "width": _r(cand.width, 1),
        "sharpness": _r(cand.sharpness, 1),
        "eye_visibility": _r(cand.visibility, 3),  # eyes.eye_visibility (< 0.17: dark glasses)
    }


def self_check_plan(face_width: float, reference, threshold: float, d_best: float) -> dict[str, Any]:
    """What the self-check (selfcheck.py) would demand of this face's new eyes with ``reference``
    (the chosen references.Candidate): each test and its limit."""
    from exgan_cli.stages import selfcheck

    cfg = selfcheck.SelfCheckConfig()
    ref = selfcheck.ReferenceEyes.measure(reference.pixels, reference.face.landmarks)
    colour = None if ref.colour is None else [round(float(v), 1) for v in ref.colour.lab]
    return {
        "eyes_open": "the eye-state classifier (or both EARs) must say open",
        "eye_contrast_min": _r(None if ref.contrast is None else cfg.contrast_ratio * ref.contrast, 3),
        "sharpness_min": _r(selfcheck.sharpness_floor(face_width), 2),
        "reference_iris_lab": colour,  # L*, a*, b* relative to the skin
        "colour_tested": selfcheck.colour_measurable(face_width),  # smaller irises are too few pixels
        "colour_min_face": selfcheck.COLOUR_MIN_FACE,
        "redness_max_difference": cfg.redness_tolerance,
        "blueness_max_drop": cfg.blueness_tolerance,  # either eye's b* at most this below the reference's
        "raw_blueness_max_drop": cfg.raw_blueness_tolerance,  # the same, the generator's own, before the colour match
        "colour_max_difference": cfg.colour_tolerance,
        "identity_max": _r(selfcheck.identity_limit(d_best, threshold, cfg.identity_margin)),
    }


def inspect_photo(
    photo: Path,
    refs: Sequence[Path] = (),
    ref_dir: Path | None = None,
    detector: str = "auto",
    identity_threshold: float | None = None,
    weights: str | None = None,
    cache: bool = False,
) -> dict[str, Any]:
    """Everything inspect reports about ``photo`` (and its references), as JSON-ready data.

    Raises BadInputError for an unreadable photo. A photo without faces is not an error here:
    ``faces`` is empty. ``cache``: reuse stored reference analyses (references.open_cache).
    """
    from exgan_cli.files.images import load_image
    from exgan_cli.stages import eye_classifier, eye_state as eyes, faces as facelib, references
    from exgan_cli.stages.pose import head_pose

    timings: dict[str, float] = {}
    t = time.perf_counter()
    image = load_image(photo)
    timings["load"] = time.perf_counter() - t
    threshold = identity_threshold if identity_threshold is not None else facelib.SAME_PERSON_THRESHOLD
    align, mask, geometry_source = model_geometry(weights)
    classifier = eye_classifier.default_classifier()

    t = time.perf_counter()
    found = facelib.detect_faces(image.pixels, detector=detector)
    timings["detect"] = time.perf_counter() - t

    t = time.perf_counter()
    paths = references.collect_reference_paths(list(refs), ref_dir) if (refs or ref_dir) else []
    candidates, rejections = references.load_candidates(
        paths, detector=detector, cache=references.open_cache(detector) if cache else None
    ) if paths else ([], [])
    timings["references"] = time.perf_counter() - t

    t = time.perf_counter()
    out_faces = []
    for i, f in enumerate(found):
        entry = _face_entry(image, i, f, align, mask)
        if paths:
            desc = facelib.face_descriptor(image.pixels, f)
            pose = head_pose(f.landmarks, image.size)
            entry.update(_reference_verdicts(f, desc, pose, candidates, rejections, threshold))
        out_faces.append(entry)
    timings["faces"] = time.perf_counter() - t

    return {
        "photo": str(photo),
        "size": list(image.size),
        "detector": detector,
        "eye_state": {
            "method": "classifier" if classifier is not None else "ear",
            "classifier": None if classifier is None else {
                "weights": classifier.source, "sha256": classifier.sha256, "threshold": classifier.threshold,
                "rule": classifier.rule()},
            "ear_threshold": eyes.CLOSED_EAR_THRESHOLD,
            "states": list(eyes.EYE_STATES),  # open-eyes retouches closed eyes; narrow with --faces narrow; hidden never
        },
        "identity_threshold": threshold,
        "masks_from": geometry_source,
        "faces": out_faces,
        "references": [_reference_entry(c) for c in candidates]
        + [{"path": str(r.path), "face": r.face_index, "usable": False, "why": r.reason} for r in rejections],
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _face_entry(image, i: int, f, align: AlignConfig, mask: MaskConfig) -> dict[str, Any]:
    """What inspect says of one face by itself: box, eye state, pose, size, sharpness, eye masks."""
    from exgan_cli.stages import eye_state as eyes, faces as facelib, geometry
    from exgan_cli.stages.pose import EXPRESSION_NAMES, expression, expression_strength, head_pose
    from exgan_cli.stages.blend import photo_boxes

    state = eyes.assess(image.pixels, f)
    pose = head_pose(f.landmarks, image.size)
    expr = expression(f.landmarks)
    _, matrix = geometry.align_face(image.pixels, f.landmarks, align)
    boxes = geometry.eye_boxes(geometry.transform_points(f.landmarks, matrix), mask)
    return {
        "index": i,
        "box": [int(v) for v in f.box],
        "detector": f.detector,
        "detector_score": _r(f.score),
        "eye_state": state.state,  # open, narrow, closed or hidden (eye_state.EYE_STATES)
        "eyes": state.to_dict(),
        "pose": dict(zip(("yaw", "pitch", "roll"), (_r(v, 1) for v in pose))),
        # In spreads from LFW's median face (pose.expression); "strength" is their norm.
        "expression": {**{k.replace(" ", "_"): _r(v, 2) for k, v in zip(EXPRESSION_NAMES, expr)},
                       "strength": _r(expression_strength(expr), 2)},
        "width": _r(facelib.face_width(f), 1),
        "sharpness": _r(facelib.sharpness(image.pixels, f), 1),
        "mask_boxes": [[round(v, 1) for v in b] for b in photo_boxes(boxes, matrix)],
    }


def _reference_verdicts(f, desc: np.ndarray, pose, candidates: list, rejections: list, threshold: float) -> dict[str, Any]:
    """Per reference face: identity distance, usable or not and why, the pose difference; the self-check plan."""
    from exgan_cli.errors import NoReferenceError
    from exgan_cli.options import RetouchOptions
    from exgan_cli.stages import faces as facelib, reference_choice
    from exgan_cli.stages.pose import expression, expression_difference, pose_difference

    pose_limit = RetouchOptions().pose_limit
    target_expression = expression(f.landmarks)
    entry: dict[str, Any] = {"identity": [
        {"path": str(c.path), "face": c.index, "distance": _r(facelib.descriptor_distance(desc, c.descriptor)),
         "same_person": bool(facelib.descriptor_distance(desc, c.descriptor) <= threshold)}
        for c in candidates
    ]}
    try:
        choice = reference_choice.choose_reference(
            desc, pose, candidates, identity_threshold=threshold, rejections=rejections, target_width=facelib.face_width(f),
            target_expression=target_expression,
        )  # as open-eyes chooses (apps/retouch._plan_face)
        ranking, best, error = choice.ranking, choice.candidate, None
    except NoReferenceError as e:  # every candidate rejected; the error carries the verdicts
        ranking, best, error = getattr(e, "ranking", []), None, str(e)
    entry["references"] = [
        {"path": str(c.path), "face": c.index, "usable": score is not None, "chosen": c is best,
         "score": _r(score) if score is not None else None, "distance": _r(d), "why": why,
         "pose_difference": _r(pose_difference(pose, c.pose), 1),
         "within_pose_limit": bool(pose_difference(pose, c.pose) <= pose_limit),
         "expression_difference": _r(expression_difference(c.expression, target_expression), 2)}
        for c, score, d, why in ranking
    ] + [{"path": str(r.path), "face": r.face_index, "usable": False, "chosen": False, "score": None,
          "distance": None, "why": r.reason} for r in rejections]
    if error:
        entry["no_reference"] = error
    if best is not None:
        entry["self_check"] = self_check_plan(facelib.face_width(f), best, threshold, d_best=facelib.descriptor_distance(desc, best.descriptor))
    return entry


def draw_inspection(rgb: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """A copy of the photo with each face's box (green: open, orange: narrow, red: closed, grey:
    hidden), its eye masks (yellow), and a label: index, state, P(closed) or EAR, and the detector."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 500))
    scale = max(0.4, max(h, w) / 1200)
    for f in info["faces"]:
        colour = {"closed": (230, 40, 40), "narrow": (245, 150, 20), "hidden": (150, 150, 150)}.get(f["eye_state"], (40, 200, 60))
        x0, y0, x1, y1 = f["box"]
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, thick)
        for bx0, by0, bx1, by1 in f["mask_boxes"]:
            cv2.rectangle(out, (int(round(bx0)), int(round(by0))), (int(round(bx1)), int(round(by1))), (250, 220, 0), max(1, thick // 2))
        e = f["eyes"]
        score = f"P {e['p_closed']:.2f}" if e.get("p_closed") is not None else f"EAR {max(e['left'], e['right']):.2f}"
        label = f"{f['index']} {f['eye_state']} {score} {f['detector']}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(h - 1, y1 + th + 4)
        cv2.rectangle(out, (x0, ty - th - base), (min(w - 1, x0 + tw + 4), ty + base), (0, 0, 0), -1)
        cv2.putText(out, label, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return out
