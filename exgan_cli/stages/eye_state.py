"""Open or closed eyes from dlib's 68 landmarks: the eye aspect ratio (EAR).

EAR (Soukupova & Cech, "Real-Time Eye Blink Detection using Facial Landmarks", 2016) is
the mean height of the eye's two lid-to-lid distances over its corner-to-corner width:

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)

for the six eye landmarks p1..p6 (corner, two upper lid points, corner, two lower lid
points). It is ~0.25-0.35 for an open eye and drops towards 0 as the lids close; it does not
depend on the face's size or in-plane rotation.

A face counts as closed when BOTH eyes are below the threshold (one closed eye is a wink or
a landmark error, and the model in-paints both eyes anyway). The threshold was calibrated
on real photos by ``benchmarks/eye_state.py``; the figures are in docs/eye_state.md.

``assess(rgb, face)`` is what the commands use: when the eye-state classifier's weights are
present (weights/eye-state, exgan_cli/stages/eye_classifier.py) it decides from the pixels of the
aligned eye band, far more reliably than the EAR rule (docs/eye_state.md); the EARs are still
measured and reported, and decide alone when there is no classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from exgan_cli.stages.geometry import LEFT_EYE, RIGHT_EYE

# Both eyes below this EAR -> closed. Calibrated on 600 closed-eye faces (CEW) against
# 1,500 LFW faces (seed 0) by benchmarks/eye_state.py: the threshold that flags at most
# 10% of LFW faces (most of which are open; some LFW faces really are closed or squinting),
# which catches ~70% of the detected closed-eye faces. See docs/eye_state.md.
CLOSED_EAR_THRESHOLD = 0.21


@dataclass(frozen=True)
class EyeState:
    left: float  # EAR of the eye on the image's left (the subject's right eye)
    right: float  # EAR of the eye on the image's right
    closed: bool  # the decision: the classifier's when it ran (method), else both EARs < threshold
    score: float  # max(left, right): the face's openness by EAR; EAR rule: closed <=> score < threshold
    p_closed: float | None = None  # the classifier's P(closed); None when it did not run
    method: str = "ear"  # what decided ``closed``: "classifier" or "ear"
    threshold: float = CLOSED_EAR_THRESHOLD  # the EAR threshold used

    @property
    def ear_closed(self) -> bool:
        """The EAR rule's verdict (both eyes below the threshold), whatever decided ``closed``."""
        return self.score < self.threshold

    def to_dict(self) -> dict[str, Any]:
        """For reports: EARs, the decision, what made it, and both verdicts."""
        return {
            "left": round(float(self.left), 4),
            "right": round(float(self.right), 4),
            "closed": bool(self.closed),
            "method": self.method,
            "p_closed": None if self.p_closed is None else round(float(self.p_closed), 4),
            "ear_closed": bool(self.ear_closed),
        }

    def describe(self) -> str:
        """One line for messages: "EAR 0.12/0.10 < 0.21" (EAR rule) or "EAR 0.12/0.10, P(closed) 0.97"."""
        ear = f"EAR {self.left:.2f}/{self.right:.2f}"
        if self.p_closed is None:
            return f"{ear} {'<' if self.ear_closed else '>='} {self.threshold:.2f}"
        return f"{ear}, P(closed) {self.p_closed:.2f}"


def eye_aspect_ratio(eye6: np.ndarray) -> float:
    """EAR of one eye from its six dlib landmarks (6, 2), in dlib's order."""
    p = np.asarray(eye6, dtype=np.float64)
    if p.shape != (6, 2):
        raise ValueError(f"eye_aspect_ratio needs (6, 2) points, got {p.shape}")
    width = float(np.linalg.norm(p[0] - p[3]))
    if width <= 0.0:
        return 0.0
    height = float(np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
    return height / (2.0 * width)


def eye_state(landmarks: np.ndarray, threshold: float = CLOSED_EAR_THRESHOLD) -> EyeState:
    """Open/closed state of a face from its 68 landmarks (closed: both EARs < threshold)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"eye_state needs (68, 2) landmarks, got {lm.shape}")
    left = eye_aspect_ratio(lm[LEFT_EYE])
    right = eye_aspect_ratio(lm[RIGHT_EYE])
    score = max(left, right)
    return EyeState(left=left, right=right, closed=score < threshold, score=score, threshold=threshold)


def assess(rgb: np.ndarray, face: Any, threshold: float = CLOSED_EAR_THRESHOLD) -> EyeState:
    """Eye state of one face of a photo (RGB uint8): the classifier's verdict when its weights
    are present (eye_classifier.default_classifier, EyeClassifier.decide: P(closed) >= its
    threshold, or both EARs below its ``ear_below``, or both below its ``lean_ear_below`` with
    P(closed) >= its ``lean_threshold``: a news photo's half-closed blink), with the EARs measured
    as well; the EAR rule alone otherwise.
    ``face``: a faces.Face, or its (68, 2) landmarks."""
    from exgan_cli.stages.eye_classifier import default_classifier

    landmarks = getattr(face, "landmarks", face)
    state = eye_state(landmarks, threshold)
    classifier = default_classifier()
    if classifier is None:
        return state
    p = classifier.probability(rgb, landmarks, (state.left, state.right))
    return replace(state, closed=classifier.decide(p, state.score), p_closed=p, method="classifier")


# Eye visibility: dark glasses hide the eyes (dlib still places lids on the lenses, and both
# the EAR and the eye-state classifier read "open"), yet a reference behind them carries
# nothing about the person's eyes. The eye boxes' median luminance over that of the cheeks at
# the nose tip's height (below the lenses) picks out dark lenses: on the 7,677 aligned LFW
# faces the 1st percentile is 0.40 and the median 0.75; the 9 faces below 0.17 all wear dark
# sunglasses; from 0.17 to 0.40 come lighter lenses mixed with deep-set eyes in shadow.
# Light-topped or reflective lenses can score as visible: this catches the dark ones only.
VISIBLE_FULL = 0.40  # ratio at and above which the eyes count as fully visible
VISIBLE_NONE = 0.17  # below this, the eyes count as hidden (dark glasses): not a reference


def eye_visibility(rgb: np.ndarray, landmarks: np.ndarray) -> float:
    """Median luminance of the eye boxes / median luminance of the cheeks below them.

    ~0.5-0.9 for visible eyes (dark iris and lashes, bright sclera, against skin), below
    ~0.17 behind dark glasses. ``rgb``: the photo (uint8), ``landmarks``: the face's 68 points
    in its coordinates. NaN when the regions fall outside the photo.
    """
    from exgan_cli.stages.geometry import eye_boxes
    from exgan_cli.files.images import luminance

    lm = np.asarray(landmarks, dtype=np.float64)
    h, w = rgb.shape[:2]

    def region(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        a, b = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
        c, d = int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1)))
        if c <= a or d <= b:
            return np.empty(0)
        return luminance(rgb[b:d, a:c]).ravel()

    eyes, cheeks = [], []
    nose_y = lm[30, 1]
    for x0, y0, x1, y1 in eye_boxes(lm):
        bh, bw = y1 - y0, x1 - x0
        eyes.append(region(x0, y0, x1, y1))
        # cheek: at the height of the nose tip, under the eye: below the lenses of glasses,
        # above the moustache
        cheeks.append(region(x0 + 0.15 * bw, nose_y - 0.4 * bh, x1 - 0.15 * bw, nose_y + 0.2 * bh))
    eye_px, cheek_px = np.concatenate(eyes), np.concatenate(cheeks)
    if eye_px.size < 4 or cheek_px.size < 4:
        return float("nan")
    return float(np.median(eye_px) / max(float(np.median(cheek_px)), 1.0))


def visibility_term(ratio: float) -> float:
    """``eye_visibility`` mapped to [0, 1]: 0 at and below VISIBLE_NONE (dark glasses), 1 at
    and above VISIBLE_FULL (clearly visible eyes); NaN counts as visible."""
    if not np.isfinite(ratio):
        return 1.0
    return float(np.clip((ratio - VISIBLE_NONE) / (VISIBLE_FULL - VISIBLE_NONE), 0.0, 1.0))
