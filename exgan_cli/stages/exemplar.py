"""The exemplar's eyes where the target's eyes go: what a reference-mode generator reads.

A reference aligned through the whole-face template puts its eyes wherever that photo's pose
puts them, a few pixels off the target's, and a small generator learns to ignore it and paint
the training set's average eye (a brown iris). Instead, each reference eye is warped onto the
target eye by the similarity that maps the reference's eye corners (and, weakly, its brow)
onto the target's: points that dlib finds on a closed eye as well as on an open one. The
warped eyes fill the target's holes and a margin of skin around them (so G sees the
reference's skin next to the target's and can match one to the other), and a validity mask
says where they are defined.

Colour is carried relative to the skin: before warping, the reference is scaled per channel by
the ratio of the target's cheek colour to its own (cheeks are below the eye boxes, never in a
hole), so a light iris stays light under the target's lighting and white balance.

Training augmentations that make the exemplar indispensable live here too, because they must
follow the same landmarks: an independent colour cast on target and reference (the model must
learn colour relative to the skin), and one random iris colour painted into both the target's
and the reference's irises (LFW's mostly brown prior is then the wrong answer half the time).

Images are RGB uint8 (R, R, 3) aligned crops; landmarks are dlib's 68 points (x, y) in crop
coordinates; boxes are (x0, y0, x1, y1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from exgan_cli.stages.geometry import LEFT_EYE, RIGHT_EYE, Box, similarity_transform
from exgan_cli.files.images import luminance

# Per side: the eye's corners (outer, inner for the image-left eye; inner, outer for the right)
# and the brow above it. Corners anchor the fit; the brow (weight 1 against 4 per corner) only
# steadies rotation and scale when dlib's corners of a closed eye are a pixel off.
_CORNERS = ((36, 39), (42, 45))
_BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
_CORNER_WEIGHT = 4
CONTEXT = 1.3  # the warped eye covers the hole box grown by this factor about its centre
CHEEK_TOP, CHEEK_BOTTOM = 0.85, 1.55  # cheek band below an eye, in eye widths below its centre
RATIO_RANGE = (0.5, 2.0)  # a cheek-colour ratio beyond this is a shadow or a bad fit, not lighting


def eye_width(landmarks: np.ndarray, side: int) -> float:
    """Corner-to-corner width of eye ``side`` (0: image-left, 1: image-right)."""
    a, b = _CORNERS[side]
    return float(np.linalg.norm(landmarks[b] - landmarks[a]))


def eye_warp(ref_landmarks: np.ndarray, target_landmarks: np.ndarray, side: int) -> np.ndarray:
    """2x3 similarity taking reference crop coordinates onto the target crop, fitted on eye
    ``side``'s corners (weighted) and brow."""
    idx = list(_CORNERS[side]) * _CORNER_WEIGHT + list(_BROWS[side])
    return similarity_transform(np.asarray(ref_landmarks)[idx], np.asarray(target_landmarks)[idx])


def cheek_mask(landmarks: np.ndarray, resolution: int, hole: np.ndarray | None = None) -> np.ndarray:
    """Boolean (R, R): a band of cheek below each eye (outside ``hole`` when given)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    m = np.zeros((resolution, resolution), dtype=bool)
    for side, eye in enumerate((lm[LEFT_EYE], lm[RIGHT_EYE])):
        w = eye_width(lm, side)
        cx, cy = eye.mean(axis=0)
        x0, x1 = int(round(cx - 0.5 * w)), int(round(cx + 0.5 * w))
        y0, y1 = int(round(cy + CHEEK_TOP * w)), int(round(cy + CHEEK_BOTTOM * w))
        m[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    if hole is not None:
        m &= np.asarray(hole) < 0.5
    return m


def skin_colour(crop: np.ndarray, landmarks: np.ndarray, hole: np.ndarray | None = None) -> np.ndarray | None:
    """Per-channel median RGB (3,) of the cheeks; None when too few cheek pixels are in the crop."""
    m = cheek_mask(landmarks, crop.shape[0], hole)
    if m.sum() < 8:
        return None
    return np.median(crop[m].astype(np.float32), axis=0)


def relight_ratio(ref: np.ndarray, ref_landmarks: np.ndarray, target: np.ndarray, target_landmarks: np.ndarray,
                  target_hole: np.ndarray | None = None) -> np.ndarray:
    """Per-channel gain (3,) that gives the reference's cheeks the target's cheek colour (all ones
    when either face shows too little cheek). Measured on the aligned crops; the full-resolution
    warp (warp.py) applies the same gain to the reference photo."""
    s_ref = skin_colour(ref, ref_landmarks)
    s_tgt = skin_colour(target, target_landmarks, target_hole)
    if s_ref is None or s_tgt is None:
        return np.ones(3, dtype=np.float32)
    return np.clip((s_tgt + 1.0) / (s_ref + 1.0), *RATIO_RANGE).astype(np.float32)


def relight(ref: np.ndarray, ref_landmarks: np.ndarray, target: np.ndarray, target_landmarks: np.ndarray,
            target_hole: np.ndarray | None = None) -> np.ndarray:
    """The reference (float32, 0..255) scaled per channel so that its cheeks take the target's
    cheek colour: the reference's eyes as they would look under the target's light."""
    ratio = relight_ratio(ref, ref_landmarks, target, target_landmarks, target_hole)
    return np.clip(ref.astype(np.float32) * ratio, 0.0, 255.0)


def _grown(box: Box, factor: float) -> Box:
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * factor / 2, (y1 - y0) * factor / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def eye_windows(boxes: Sequence[Box], resolution: int) -> list[tuple[int, int, int, int]]:
    """Per eye, the integer window (x0, y0, x1, y1) of the crop that warp_eyes renders it in: its
    hole box grown by CONTEXT, inside the crop (empty when outside). Where the two touch, the
    first eye keeps the pixels."""
    out = []
    for box in boxes[:2]:
        gx0, gy0, gx1, gy1 = _grown(box, CONTEXT)
        x0, y0 = max(0, int(round(gx0))), max(0, int(round(gy0)))
        x1, y1 = min(resolution, int(round(gx1))), min(resolution, int(round(gy1)))
        out.append((x0, y0, max(x0, x1), max(y0, y1)))
    return out


def warp_eyes(
    ref: np.ndarray, ref_landmarks: np.ndarray, target_landmarks: np.ndarray, boxes: Sequence[Box], resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """(eyes (R, R, 3) float32 0..255, valid (R, R) float32): each reference eye warped onto the
    target's, over its hole box grown by CONTEXT; zero (and invalid) elsewhere and wherever the
    warp samples outside the reference crop."""
    import cv2

    # a fourth channel of ones, warped with the pixels, tells where the warp stayed inside the reference
    src = np.dstack([np.asarray(ref, dtype=np.float32), np.ones(ref.shape[:2], dtype=np.float32)])
    eyes = np.zeros((resolution, resolution, 3), dtype=np.float32)
    valid = np.zeros((resolution, resolution), dtype=np.float32)
    for side, (x0, y0, x1, y1) in enumerate(eye_windows(boxes, resolution)):
        if x1 <= x0 or y1 <= y0:
            continue
        m = eye_warp(ref_landmarks, target_landmarks, side)
        m[:, 2] -= (x0, y0)  # render only the window: output pixel (0, 0) is crop pixel (x0, y0)
        w = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        v = (w[..., 3] > 0.999) * (valid[y0:y1, x0:x1] < 0.5)  # the eyes' windows may touch: the first keeps it
        eyes[y0:y1, x0:x1] += w[..., :3] * v[..., None]
        valid[y0:y1, x0:x1] = np.maximum(valid[y0:y1, x0:x1], v)
    return eyes, valid


# --------------------------------------------------------------------------------------------
# Training augmentations


def colour_cast(image: np.ndarray, rng: np.random.Generator, gain_std: float = 0.06, light_std: float = 0.12) -> np.ndarray:
    """A random white balance (per-channel gain) and exposure applied to one image (uint8)."""
    gain = np.exp(rng.normal(0.0, gain_std, 3) + rng.normal(0.0, light_std))
    return np.clip(image.astype(np.float32) * gain.astype(np.float32), 0, 255).astype(np.uint8)


def iris_weight(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Soft (R, R) weight of the irises: inside each eye contour, in the eye's central band, and
    darker than the eye's white (the darkest pixels, the pupil, get a lower weight)."""
    import cv2

    r = crop.shape[0]
    lm = np.asarray(landmarks, dtype=np.float64)
    out = np.zeros(crop.shape[:2], dtype=np.float32)
    for side, idx in enumerate((LEFT_EYE, RIGHT_EYE)):
        eye = lm[idx]
        # work in a window around the eye: the contour filled 4x supersampled for a soft edge
        x0, y0 = max(0, int(np.floor(eye[:, 0].min())) - 1), max(0, int(np.floor(eye[:, 1].min())) - 1)
        x1, y1 = min(crop.shape[1], int(np.ceil(eye[:, 0].max())) + 2), min(r, int(np.ceil(eye[:, 1].max())) + 2)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        poly = np.zeros(((y1 - y0) * 4, (x1 - x0) * 4), dtype=np.uint8)
        cv2.fillPoly(poly, [np.round((eye - [x0, y0]) * 4 + 1.5).astype(np.int32)], 255)
        inside = cv2.resize(poly, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        lum = luminance(crop[y0:y1, x0:x1])
        vals = np.sort(lum[inside > 0.5])
        if vals.size < 3:
            continue
        w = eye_width(lm, side)
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        band = np.clip(1.0 - (np.abs(xs - float(eye[:, 0].mean())) - 0.22 * w) / (0.1 * w + 1e-6), 0.0, 1.0)
        white, dark = vals[int(0.85 * (vals.size - 1))], vals[int(0.05 * (vals.size - 1))]
        darker = np.clip((white - lum) / max(white - dark, 1.0) * 1.5, 0.0, 1.0)
        pupil = np.clip((lum - dark) / max(0.25 * (white - dark), 1.0), 0.3, 1.0)
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], inside * band * darker * pupil)
    return out


def random_iris_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """(lightness lift, a*, b*) of a random iris colour: blue, green, grey, hazel or brown."""
    lift = float(rng.uniform(0.0, 40.0))
    chroma = float(rng.uniform(0.0, 28.0))
    hue = float(rng.uniform(0.0, 2 * np.pi))
    return lift, chroma * float(np.cos(hue)), chroma * float(np.sin(hue))


def recolour_irises(
    crop: np.ndarray, landmarks: np.ndarray, colour: tuple[float, float, float], weight: np.ndarray | None = None
) -> np.ndarray:
    """The crop (uint8) with its irises given ``colour`` (random_iris_colour): in CIELAB the iris
    keeps its texture (a third of its own a*, b* and all of its lightness variation) and takes the
    new hue, chroma and lift. ``weight``: iris_weight of the crop, when already computed."""
    import cv2

    weight = iris_weight(crop, landmarks) if weight is None else weight
    ys, xs = np.nonzero(weight > 0.02)
    if len(ys) == 0:
        return crop
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    patch = crop[y0:y1, x0:x1].astype(np.float32) / 255.0
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB)
    lift, a, b = colour
    new = lab.copy()
    new[..., 0] = np.clip(lab[..., 0] + lift, 0, 100)
    new[..., 1] = lab[..., 1] * 0.35 + a
    new[..., 2] = lab[..., 2] * 0.35 + b
    w = weight[y0:y1, x0:x1, None]
    rgb = cv2.cvtColor((1 - w) * lab + w * new, cv2.COLOR_LAB2RGB)
    out = crop.copy()
    out[y0:y1, x0:x1] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# One pair -> what the networks read


def pair_inputs(
    cfg, target: np.ndarray, target_landmarks: np.ndarray, hole: np.ndarray, boxes: Sequence[Box],
    ref: np.ndarray, ref_landmarks: np.ndarray, ref_hole: np.ndarray,
) -> dict[str, np.ndarray]:
    """The exemplar inputs of one (target, reference) pair for a model of config ``cfg``
    (ModelConfig), shared by training, evaluation and open-eyes so that they cannot drift apart:

    - "ref" (R, R, 3) float32 0..255: the reference face as D and the eye encoder see it
      (relit to the target's skin when cfg.relight);
    - "ref_mask" (R, R): its eye mask;
    - "eyes", "eyes_valid": reference mode with ref_input "eyes", the warped eyes (warp_eyes) and
      their validity; otherwise zeros.

    Nothing under the target's ``hole`` is read.
    """
    r = target.shape[0]
    face = relight(ref, ref_landmarks, target, target_landmarks, hole) if cfg.relight else ref.astype(np.float32)
    out = {"ref": face, "ref_mask": np.asarray(ref_hole, dtype=np.float32)}
    if cfg.mode == "reference" and cfg.ref_input == "eyes":
        out["eyes"], out["eyes_valid"] = warp_eyes(face, ref_landmarks, target_landmarks, boxes, r)
    else:
        out["eyes"], out["eyes_valid"] = np.zeros((r, r, 3), np.float32), np.zeros((r, r), np.float32)
    return out


def generator_exemplar(cfg, inputs: dict) -> dict:
    """The generator's exemplar keyword arguments from batched tensors of pair_inputs (images
    already in [-1, 1], masks (B, 1, R, R)): what G.forward takes as ref and ref_mask."""
    if cfg.mode != "reference":
        return {}
    if cfg.ref_input == "eyes":
        return {"ref": inputs["eyes"] * inputs["eyes_valid"], "ref_mask": inputs["eyes_valid"]}
    return {"ref": inputs["ref"], "ref_mask": inputs["ref_mask"]}
