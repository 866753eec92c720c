"""eyes.py: the eye aspect ratio and the open/closed decision on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from exgan_cli.stages import eye_classifier
from exgan_cli.stages.eye_state import CLOSED_EAR_THRESHOLD, EyeState, assess, eye_aspect_ratio, eye_state
from exgan_cli.stages.geometry import AlignConfig
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


def _face(ear: float) -> np.ndarray:
    lm = np.zeros((68, 2))
    lm[36:42] = _eye(30, 30 * ear) + [100, 100]
    lm[42:48] = _eye(30, 30 * ear) + [160, 100]
    return lm


@pytest.mark.parametrize(
    "ear,p,closed",
    [
        (0.10, 0.0, True),  # very low EAR: closed whatever the network says (a laughing news face)
        (0.20, 0.30, True),  # a half-closed blink: under the EAR rule's 0.21 and the network leans closed
        (0.20, 0.01, False),  # a narrow open eye: same EARs, the network sees an iris
        (0.22, 0.50, False),  # above the EAR rule's threshold: only the network's own cut counts
        (0.30, 0.90, True),  # the network is sure
    ],
)
def test_assess_uses_the_classifiers_decision(monkeypatch, ear, p, closed):
    """assess: the classifier's P(closed) with both EARs (EyeClassifier.decide), half-closed blinks included."""
    clf = eye_classifier.EyeClassifier(None, eye_classifier.EyeNetConfig(), AlignConfig(), 0.81, 0.18, "", "",
                                       lean_ear_below=0.21, lean_threshold=0.05)
    monkeypatch.setattr(eye_classifier.EyeClassifier, "probability", lambda self, rgb, lm, ears=None: p)
    monkeypatch.setattr(eye_classifier, "default_classifier", lambda: clf)
    st = assess(np.zeros((10, 10, 3), np.uint8), _face(ear))
    assert st.method == "classifier" and st.p_closed == p and st.left == pytest.approx(ear)
    assert st.closed is closed
