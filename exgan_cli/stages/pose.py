"""Head pose from the 68 landmarks: how far a face is turned, and how far two faces differ.

The exemplar's gain holds up to a pose difference of about 30° between a face and its
reference (docs/self_check.md); references are ranked and limited by it.
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
