"""Head pose and expression from the 68 landmarks: how far a face is turned, how far it smiles
or laughs, and how far two faces differ in both.

The exemplar's gain holds up to a pose difference of about 30° between a face and its
reference (docs/self_check.md); references are ranked and limited by it. The result also
worsens with the expression difference between the two (docs/limits.md); references are
ranked by it too.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


# Generic 3D face (arbitrary units, ~mm) for six dlib landmarks, in the camera's axes when
# the face looks straight into it: x to the image's right, y down, z away from the camera
# (the nose tip is the point nearest the camera).
_POSE_LANDMARKS = (30, 8, 36, 45, 48, 54)  # nose tip, chin, eye outer corners, mouth corners
_POSE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),  # nose tip
        (0.0, 330.0, 65.0),  # chin
        (-225.0, -170.0, 135.0),  # outer corner of the eye on the image's left
        (225.0, -170.0, 135.0),  # outer corner of the eye on the image's right
        (-150.0, 150.0, 125.0),  # mouth corner, image left
        (150.0, 150.0, 125.0),  # mouth corner, image right
    ],
    dtype=np.float64,
)


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 68 landmarks; ``image_size`` is (width, height).

    Fits a generic 3D face to six landmarks with cv2.solvePnP (pinhole camera, focal length
    = the longer image side, principal point at the centre). Signs, as seen in the photo:
      yaw   > 0: the nose points towards the image's right (the subject turns to their left);
      pitch > 0: the nose points up (chin raised);
      roll  > 0: the face is turned clockwise on screen (the eye on the image's right is lower).
    A frontal face looking into the camera is (0, 0, 0). Accuracy is a few degrees: enough to
    rank references by pose similarity.
    """
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    pts = np.ascontiguousarray(lm[list(_POSE_LANDMARKS)])
    w, h = float(image_size[0]), float(image_size[1])
    f = max(w, h)
    cam = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=np.float64)
    # Start from a frontal face in front of the camera: at the face's apparent size.
    iod = max(float(np.linalg.norm(pts[3] - pts[2])), 1.0)
    z0 = f * 450.0 / iod
    centre = (pts[0] - [w / 2, h / 2]) / f * z0
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[centre[0]], [centre[1]], [z0]])
    ok, rvec, _ = cv2.solvePnP(
        _POSE_MODEL, pts, cam, np.zeros(4), rvec=rvec0, tvec=tvec0, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return (0.0, 0.0, 0.0)
    rot, _ = cv2.Rodrigues(rvec)
    fwd = -rot[:, 2]  # where the nose points (the model's -z) in camera axes
    yaw = math.degrees(math.atan2(fwd[0], -fwd[2]))
    pitch = math.degrees(math.atan2(-fwd[1], math.hypot(fwd[0], fwd[2])))
    roll = math.degrees(math.atan2(rot[1, 0], rot[0, 0]))
    return (yaw, pitch, roll)


def pose_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """Degrees between two head poses (yaw, pitch, ...): yaw and pitch differences together."""
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


# ---------------------------------------------------------------------------------------
# Expression: mouth, cheeks and brows, read from landmarks that stay put when the eyes close.
# The eyes' own openness is left out on purpose: the target of open-eyes has closed eyes, and
# its expression must be comparable with an open-eyed reference's.

Expression = tuple[float, float, float, float]  # (mouth_open, smile_width, cheek, brow)
EXPRESSION_NAMES = ("mouth open", "smile width", "cheek", "brow")
# Median and robust spread (1.4826 MAD) of each measure over the 7,677 faces of LFW (the
# `exgan prepare` cache of ../shared/data/lfw, aligned landmarks): a face at the median is
# "neutral" for news photos, and each measure counts in these spreads.
EXPRESSION_NEUTRAL = (0.098, 0.891, 1.112, 0.311)
EXPRESSION_SPREAD = (0.099, 0.114, 0.130, 0.060)


def _face_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Origin, right and down unit vectors and scale of a face from its eye corners only.

    The eye corners (36, 39, 42, 45) barely move when the lids close, unlike the lid points,
    so a closed-eyed face gets the same frame as it would open. Scale: the distance between
    the two eyes' corner midpoints (about the inter-ocular distance)."""
    left = (lm[36] + lm[39]) / 2.0
    right = (lm[42] + lm[45]) / 2.0
    axis = right - left
    scale = max(float(np.linalg.norm(axis)), 1e-6)
    ex = axis / scale
    ey = np.array([-ex[1], ex[0]])  # image y grows downwards: this points from the eyes to the mouth
    return (left + right) / 2.0, ex, ey, scale


def expression_measures(landmarks: np.ndarray) -> Expression:
    """(mouth_open, smile_width, cheek, brow) of a face from its 68 landmarks, raw ratios.

      mouth_open:  inner-lip gap (61-67, 62-66, 63-65) over the inter-ocular distance: a laugh opens it;
      smile_width: mouth corner to corner (48-54) over the inter-ocular distance: a smile widens it;
      cheek:       height of the mouth corners below the eye line over the inter-ocular distance:
                   raised cheeks (a broad smile, a laugh) pull the corners up towards the eyes, so
                   it falls (a lowered head shortens it too, by the cosine of the pitch);
      brow:        mean height of the brows (17-26) above the eye line over the inter-ocular
                   distance: a squint or a hard laugh lowers them, surprise raises them.
    All are ratios within the face, so they do not depend on its size, position or roll.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    origin, _, down, scale = _face_frame(lm)
    gap = float(np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))]))
    width = float(np.linalg.norm(lm[54] - lm[48]))
    corners = float(np.mean([(lm[i] - origin) @ down for i in (48, 54)]))
    brow = float(np.mean([-(lm[i] - origin) @ down for i in range(17, 27)]))
    return (gap / scale, width / scale, corners / scale, brow / scale)


def expression(landmarks: np.ndarray) -> Expression:
    """The expression measures in spreads from LFW's median face (EXPRESSION_NEUTRAL/SPREAD):
    0 is a typical news-photo face; +2 on mouth_open is a mouth open wider than 95% of LFW's."""
    raw = expression_measures(landmarks)
    return tuple((v - m) / s for v, m, s in zip(raw, EXPRESSION_NEUTRAL, EXPRESSION_SPREAD))  # type: ignore[return-value]


def expression_strength(e: Sequence[float]) -> float:
    """How far a face's expression is from a typical one (``expression``): Euclidean norm, in spreads."""
    return float(np.linalg.norm(np.asarray(e, dtype=np.float64)))


def expression_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """How far two faces' expressions (``expression``) differ: Euclidean distance, in spreads."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
