"""eyes.py: the eye aspect ratio and the open/closed decision on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from exgan_cli.stages.eye_state import CLOSED_EAR_THRESHOLD, EyeState, eye_aspect_ratio, eye_state
from exgan_cli.stages.faces import central_face, detect_faces
from exgan_cli.files.images import load_image

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, CLOSED_CROPS, POWELL, SERENA


def _state(path) -> EyeState:
    img = load_image(path)
    face = central_face(detect_faces(img.pixels), img.size)
    assert face is not None, path
    return eye_state(face.landmarks)


def _eye(width: float, height: float) -> np.ndarray:
    """Six dlib-ordered eye points: corner, two upper lid points, corner, two lower."""
    w, h = width, height / 2
    return np.array([[0, 0], [w / 3, -h], [2 * w / 3, -h], [w, 0], [2 * w / 3, h], [w / 3, h]], dtype=float)


def test_ear_formula():
    assert eye_aspect_ratio(_eye(30, 9)) == pytest.approx(0.3)
    assert eye_aspect_ratio(_eye(30, 0)) == 0.0
    # invariant to scale and in-plane rotation
    theta = np.radians(25)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert eye_aspect_ratio(5 * _eye(30, 9) @ rot.T + 7) == pytest.approx(0.3)
    assert eye_aspect_ratio(np.zeros((6, 2))) == 0.0
    with pytest.raises(ValueError):
        eye_aspect_ratio(np.zeros((5, 2)))


def test_both_eyes_must_be_closed():
    lm = np.zeros((68, 2))
    lm[36:42] = _eye(30, 3) + [100, 100]  # image-left eye closed (EAR 0.1)
    lm[42:48] = _eye(30, 9) + [160, 100]  # image-right eye open (EAR 0.3): a wink
    st = eye_state(lm)
    assert st.left == pytest.approx(0.1) and st.right == pytest.approx(0.3)
    assert st.score == pytest.approx(0.3) and not st.closed
    lm[42:48] = _eye(30, 3) + [160, 100]
    assert eye_state(lm).closed
    assert not eye_state(lm, threshold=0.05).closed
    with pytest.raises(ValueError):
        eye_state(np.zeros((5, 2)))


@pytest.mark.parametrize("path", CLOSED_CROPS + [CHAVEZ_CLOSED], ids=lambda p: p.name)
def test_closed_faces_are_closed(path):
    st = _state(path)
    assert st.closed and st.score < CLOSED_EAR_THRESHOLD


@pytest.mark.parametrize("path", CHAVEZ_OPEN + POWELL + SERENA, ids=lambda p: p.name)
def test_open_faces_are_open(path):
    st = _state(path)
    assert not st.closed and st.score >= CLOSED_EAR_THRESHOLD
