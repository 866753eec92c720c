"""eyes.py: the eye aspect ratio and the open/closed decision on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from exgan_cli.stages import eye_classifier
from exgan_cli.stages import eye_state as eye_state_module
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


def _classifier(**cuts) -> eye_classifier.EyeClassifier:
    """A classifier with the decision's cuts only (its P(closed) is monkeypatched)."""
    return eye_classifier.EyeClassifier(None, eye_classifier.EyeNetConfig(), AlignConfig(), cuts.pop("threshold", 0.8),
                                        cuts.pop("ear_below", 0.18), "", "", **cuts)


@pytest.mark.parametrize(
    "ear,p,state",
    [
        (0.10, 0.0001, "narrow"),  # very low EAR, but the network is sure the eyes are open: never overridden
        (0.17, 0.002, "narrow"),  # issue #24: a smiling face's narrow open eyes, P(closed) 0.002
        (0.10, 0.05, "closed"),  # the network is not sure: the EAR cut decides
        (0.17, 0.30, "closed"),
        (0.19, 0.30, "narrow"),  # above the EAR cut: only the network's own threshold counts
        (0.25, 0.79, "open"),
        (0.30, 0.90, "closed"),  # the network is sure
    ],
)
def test_ear_cut_never_overrides_a_confident_open(monkeypatch, ear, p, state):
    """assess: the classifier decides when it is sure; the EAR cut only where it is not (EyeClassifier.judge)."""
    clf = _classifier(threshold=0.8, ear_below=0.18, open_below=0.01, narrow_ear_below=0.23)
    monkeypatch.setattr(eye_classifier.EyeClassifier, "probability", lambda self, rgb, lm, ears=None: p)
    monkeypatch.setattr(eye_classifier, "default_classifier", lambda: clf)
    monkeypatch.setattr(eye_state_module, "eye_region_measures", lambda rgb, lm: (0.7, 5.0, 120.0))  # eyes visible
    st = assess(np.zeros((10, 10, 3), np.uint8), _face(ear))
    assert st.method == "classifier" and st.p_closed == p and st.left == pytest.approx(ear)
    assert st.state == state and st.closed is (state == "closed") and st.rule


@pytest.mark.parametrize("p", [1e-5, 1e-4, 0.001, 0.005, 0.0099])
def test_below_open_below_nothing_makes_a_face_closed(p):
    clf = _classifier(threshold=0.8, ear_below=0.18, open_below=0.01)
    for ear in np.linspace(0.0, 0.4, 41):
        assert not clf.decide(p, float(ear)), (p, ear)


def test_the_bundled_decision_trusts_a_sure_network():
    """weights/eye-state/config.json: the EAR cut counts only above open_below, the lean rule is gone."""
    clf = eye_classifier.default_classifier()
    assert clf is not None and 0.005 <= clf.open_below < clf.threshold
    assert clf.lean_ear_below == 0.0 and clf.narrow_ear_below > clf.ear_below
    assert not clf.decide(clf.open_below / 2, 0.05)


def test_the_decision_before_issue_24_is_kept_for_old_configs():
    """A config without open_below decides as before (benchmarks compare the two): the EAR cut alone."""
    clf = _classifier(threshold=0.81, ear_below=0.18, lean_ear_below=0.21, lean_threshold=0.05)
    assert clf.decide(0.0, 0.17) and clf.decide(0.06, 0.20) and not clf.decide(0.01, 0.20)


@pytest.mark.parametrize(
    "visibility,tint,cheek,eye_px,hidden",
    [
        (0.75, 6.0, 120.0, 15.0, ""),
        (0.14, 16.0, 120.0, 15.0, "dark lenses"),
        (0.85, 45.0, 120.0, 15.0, "tinted"),
        (0.75, 6.0, 5.0, 15.0, "too dark"),
        (0.75, 6.0, 120.0, 3.0, "too small"),
        (float("nan"), float("nan"), float("nan"), 15.0, ""),  # regions off the photo: judged as usual
    ],
)
def test_hidden_reason(visibility, tint, cheek, eye_px, hidden):
    why = eye_state_module.hidden_reason(visibility, tint, cheek, eye_px)
    assert (hidden in why) if hidden else why == ""


def test_hidden_comes_before_closed(monkeypatch):
    """Eyes that cannot be seen are never closed, however sure the network is (sunglasses)."""
    clf = _classifier(threshold=0.8, ear_below=0.18, open_below=0.01)
    monkeypatch.setattr(eye_classifier.EyeClassifier, "probability", lambda self, rgb, lm, ears=None: 0.99)
    monkeypatch.setattr(eye_classifier, "default_classifier", lambda: clf)
    monkeypatch.setattr(eye_state_module, "eye_region_measures", lambda rgb, lm: (0.12, 10.0, 120.0))
    st = assess(np.zeros((10, 10, 3), np.uint8), _face(0.1))
    assert st.state == "hidden" and st.hidden and not st.closed and "dark lenses" in st.rule


def test_eye_state_records_round_trip():
    """EyeState as the reference cache stores it (asdict), and an older record without a state."""
    from dataclasses import asdict

    st = eye_state(_face(0.22))
    assert st.state == "narrow" and EyeState(**asdict(st)) == st
    old = {k: v for k, v in asdict(eye_state(_face(0.1))).items() if k in ("left", "right", "closed", "score", "p_closed", "method", "threshold")}
    assert EyeState(**old).state == "closed"
    old_open = {k: v for k, v in asdict(eye_state(_face(0.3))).items() if k in ("left", "right", "closed", "score", "p_closed", "method", "threshold")}
    assert EyeState(**old_open).state == "open" and EyeState(0.3, 0.3, False, 0.3).to_dict()["state"] == "open"
    assert EyeState(0.3, 0.3, True, 0.3, state="narrow").state == "closed"  # closed set alone wins
    with pytest.raises(ValueError):
        EyeState(0.3, 0.3, False, 0.3, state="shut")
