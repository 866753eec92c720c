"""Self-check of every retouched face: are its eyes open now, and is it still the same person?

After a face is in-painted and pasted back (pipeline.retouch), the face is found again in the
result and judged by the same tools that chose it: the eye state (eyes.assess: the eye-state
classifier, or the EAR rule without its weights) and dlib's identity descriptor against the
reference's. A face passes when

  - its eyes are open, and
  - distance(result, reference) <= max(identity threshold, distance(original, reference) + IDENTITY_MARGIN).

Why that tolerance: the reference was accepted because the original face is within the identity
threshold (0.6, dlib's same-person cut) of it, and a result still within it is the same person by
the very rule that accepted the reference. Above the threshold (--any-identity, or a reference near
the cut), the result may be at most IDENTITY_MARGIN farther from the reference than the original
was. Measured on the test photos (Chavez, Powell, Serena Williams; 7 target/reference pairs):
pasting the reference's own aligned eyes moved the distance by -0.03 to +0.11; 0.15 lets that
pass. The descriptor sees the whole face, so this is a guard against gross failures (a smeared or
misplaced face), not a test of whose eyes they are: another person's eyes moved it by -0.01 to
+0.17 in the same experiment.

A face that fails is retried with the next best reference (references.choose_reference with
the failed ones excluded); when every usable reference fails, the face is left exactly as it
was and reported as "failed self-check" with the reasons. Nothing unchecked is ever pasted
(unless the check is turned off: RetouchOptions.self_check, open-eyes --no-self-check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# How much farther from the reference's identity than the original face a result may move when
# it is beyond the same-person threshold (see the module doc).
IDENTITY_MARGIN = 0.15


@dataclass(frozen=True)
class SelfCheckConfig:
    enabled: bool = True  # check every in-painted face before keeping it (off: keep every result, as before)
    identity_margin: float = IDENTITY_MARGIN  # see the module doc
    max_references: int | None = None  # references tried per face; None: every usable one


@dataclass
class CheckResult:
    passed: bool
    reasons: list[str]  # empty when passed
    eyes: Any = None  # eyes.EyeState of the result face (None: face not found again)
    identity: float | None = None  # descriptor distance result <-> reference
    identity_before: float | None = None  # original <-> reference
    identity_limit: float | None = None  # the tolerance applied
    face: Any = None  # faces.Face found again in the result
    descriptor: Any = None  # (128,) identity descriptor of the result face

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "eyes_after": None if self.eyes is None else self.eyes.to_dict(),
            "identity_after": None if self.identity is None else round(float(self.identity), 4),
            "identity_before": None if self.identity_before is None else round(float(self.identity_before), 4),
            "identity_limit": None if self.identity_limit is None else round(float(self.identity_limit), 4),
        }


@dataclass
class Attempt:
    """One reference tried on one face, and what the check said."""

    reference: dict[str, Any]  # path, face, distance, score (pipeline's reference dict)
    check: CheckResult
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, **self.check.to_dict(), **self.extra}


def identity_limit(distance_before: float, threshold: float, margin: float = IDENTITY_MARGIN) -> float:
    """The largest result-to-reference distance accepted (see the module doc)."""
    if distance_before != distance_before:  # NaN: no descriptor to compare with
        return threshold
    return max(threshold, distance_before + margin)


def check_face(
    result: np.ndarray,
    face: Any,
    reference_descriptor: np.ndarray,
    distance_before: float,
    threshold: float,
    cfg: SelfCheckConfig = SelfCheckConfig(),
) -> CheckResult:
    """Judge the face at ``face.box`` in the retouched photo ``result`` (RGB uint8)."""
    from . import eyes, faces as facelib

    limit = identity_limit(distance_before, threshold, cfg.identity_margin)
    after = facelib.refit_face(result, face)
    state = eyes.assess(result, after)
    reasons = []
    if state.closed:
        reasons.append(f"eyes not open after in-painting ({state.describe()})")
    descriptor = facelib.face_descriptor(result, after)
    d = facelib.descriptor_distance(descriptor, reference_descriptor)
    if d > limit:
        reasons.append(f"identity moved away from the reference (distance {d:.2f} > {limit:.2f})")
    return CheckResult(not reasons, reasons, state, d, distance_before, limit, after, descriptor)
