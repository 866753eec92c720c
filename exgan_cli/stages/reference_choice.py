"""Choosing a face's reference among the candidates: who is the same person, and who is best.

``choose_reference`` rejects faces with closed eyes, hidden eyes and faces of someone else, and
ranks the rest by identity, pose, expression, openness, resolution and sharpness (WEIGHTS). In a
group photo, the face that matches the target's identity wins through the distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from exgan_cli.errors import NoReferenceError
from exgan_cli.stages.eye_state import CLOSED_EAR_THRESHOLD, visibility_term
from exgan_cli.stages.faces import SAME_PERSON_THRESHOLD, descriptor_distance
from exgan_cli.stages.pose import Expression, expression_difference
from exgan_cli.stages.references import Candidate, Pose, Rejection

# Score = sum of weight * term over the sum of the weights scored, every term in [0, 1], so the
# score is in [0, 1]. Without the target's expression the expression term is left out of both
# sums, and the scores are what they were before it existed.
WEIGHTS = {
    "identity": 0.35,  # 1 - distance / threshold: the closer the identity, the better
    "pose": 0.30,  # exp(-(dyaw^2 + dpitch^2) / (2 * POSE_SIGMA^2)); roll is ignored (alignment removes it)
    "openness": 0.10,  # (min EAR - closed threshold) / OPEN_MARGIN: both eyes clearly open
    "visibility": 0.05,  # eyes.visibility_term: tinted lenses or deep shadow over the eyes score lower
    "resolution": 0.10,  # face width / max(FULL_WIDTH, target face width): pixels for the crop and for the detail
    "sharpness": 0.10,  # Laplacian variance / FULL_SHARPNESS: in focus, not motion-blurred
    # max(0, 1 - d / EXPRESSION_RANGE), d = pose.expression_difference (mouth, cheeks, brows). The
    # weight is measured against the identity term (below, at EXPRESSION_RANGE).
    "expression": 0.12,
}
POSE_SIGMA = 20.0  # degrees: a 20 deg difference in yaw scores 0.61, 40 deg scores 0.14
# benchmarks/expression_limits.py --within (docs/limits.md): each of 145 validation faces in-painted
# with every other face of its person (742 pairs, the shipped model), compared within the face.
# Its L1 eyes and identity distance rise linearly with the expression difference, and one spread
# costs as much as 0.039 (L1) or 0.045 (identity) of the reference's identity distance to the face,
# fitted together (2.7 and 4 standard errors from 0). The identity term pays 0.35 / 0.6 = 0.58 of
# score per unit of distance, so one spread should cost about 0.04 * 0.58 = 0.023: a linear term
# over EXPRESSION_RANGE spreads with weight 0.12 costs 0.024 per spread. (Within a face, pose
# costs little: 1 spread is worth 30 deg of it; the pose term is weighted by the pose limit.)
EXPRESSION_RANGE = 5.0  # spreads: the 99th percentile of the difference between two faces of a person
OPEN_MARGIN = 0.10  # EAR above the closed threshold at which openness is full (0.31 by default)
FULL_WIDTH = 200.0  # px (jaw width): LFW's ~100 px faces score 0.5; phone photos score 1 ...
# ... unless the target face is wider: then only a reference at least as wide as the target scores
# 1. Its pixels give the new eyes their full-resolution detail (detail.py); a reference half
# the target's width lacks the target's finest octave, which is then synthesised.
FULL_SHARPNESS = 150.0  # faces.sharpness(): sharp LFW faces ~100, sharp high-res faces > 300
MAX_LISTED = 6  # rejections spelled out in the NoReferenceError line before "and N more"



@dataclass(eq=False)
class Choice:
    candidate: Candidate  # the winner
    distance: float  # its identity distance to the target
    score: float  # its score in [0, 1] (see WEIGHTS)
    reasons: str  # why it won, one line: identity, pose, expression (when scored), openness, size, sharpness
    # Every candidate, best first, usable ones then rejected ones:
    # (candidate, score or None if rejected, distance, reasons or the rejection reason).
    ranking: list[tuple[Candidate, float | None, float, str]] = field(default_factory=list)
    aside: str = ""  # " (and 1 beyond the pose limit: ref.jpg)": candidates set aside by choose_reference's exclude

    def ranking_candidates(self) -> list[Candidate]:
        """The usable candidates, best first."""
        return [c for c, s, _, _ in self.ranking if s is not None] or [self.candidate]


def _terms(
    cand: Candidate, distance: float, target_pose: Pose | None, threshold: float, target_width: float | None = None,
    target_expression: Expression | None = None,
) -> dict[str, float]:
    identity = 0.0 if math.isnan(distance) else float(np.clip(1.0 - distance / threshold, 0.0, 1.0))
    if target_pose is None:
        pose = 1.0
    else:
        dy, dp = cand.pose[0] - target_pose[0], cand.pose[1] - target_pose[1]
        pose = math.exp(-(dy * dy + dp * dp) / (2 * POSE_SIGMA**2))
    openness = float(np.clip((min(cand.eye.left, cand.eye.right) - CLOSED_EAR_THRESHOLD) / OPEN_MARGIN, 0.0, 1.0))
    terms = {
        "identity": identity,
        "pose": pose,
        "openness": openness,
        "visibility": visibility_term(cand.visibility),
        "resolution": float(min(1.0, cand.width / max(FULL_WIDTH, target_width or 0.0))),
        "sharpness": float(min(1.0, cand.sharpness / FULL_SHARPNESS)),
    }
    if target_expression is not None:
        d = expression_difference(cand.expression, target_expression)
        terms["expression"] = max(0.0, 1.0 - d / EXPRESSION_RANGE)
    return terms


def _score(terms: dict[str, float]) -> float:
    """The weighted mean of the terms scored (WEIGHTS), in [0, 1]."""
    total = float(sum(WEIGHTS[k] * v for k, v in terms.items()))
    if "expression" not in terms:  # the other weights sum to 1: the score stays bit-for-bit what it was
        return total
    return total / float(sum(WEIGHTS[k] for k in terms))


def _describe(cand: Candidate, distance: float, target_pose: Pose | None, target_width: float | None = None,
              target_expression: Expression | None = None) -> str:
    parts = ["any identity" if math.isnan(distance) else f"identity distance {distance:.2f}"]
    if target_pose is not None:
        parts.append(f"pose diff yaw {abs(cand.pose[0] - target_pose[0]):.0f} deg, pitch {abs(cand.pose[1] - target_pose[1]):.0f} deg")
    if target_expression is not None:
        parts.append(f"expression diff {expression_difference(cand.expression, target_expression):.1f}")
    parts.append(f"eyes open (EAR {cand.eye.left:.2f}/{cand.eye.right:.2f})")
    size = f"face {cand.width:.0f} px"
    if target_width and target_width > FULL_WIDTH:
        size += f" ({cand.width / target_width:.2f} of the target's)"
    parts.append(size)
    parts.append(f"sharpness {cand.sharpness:.0f}")
    return ", ".join(parts)


def _exclude_keys(exclude: Iterable) -> set[tuple[str, int]]:
    keys = set()
    for item in exclude:
        if isinstance(item, Candidate):
            keys.add(item.key)
        else:
            path, index = item
            keys.add((str(path), int(index)))
    return keys


def _summary(rejected: list[str]) -> str:
    if not rejected:
        return "no reference photos given"
    shown = rejected[:MAX_LISTED]
    rest = len(rejected) - len(shown)
    return "; ".join(shown) + (f"; and {rest} more" if rest else "")


def choose_reference(
    target_descriptor: np.ndarray | None,
    target_pose: Pose | None,
    candidates: Sequence[Candidate],
    *,
    identity_threshold: float = SAME_PERSON_THRESHOLD,
    any_identity: bool = False,
    exclude: Iterable = (),
    exclude_reason: str = "already tried",
    rejections: Sequence[Rejection] = (),
    target_width: float | None = None,
    target_expression: Expression | None = None,
) -> Choice:
    """The best open-eyed reference face of the target's person; NoReferenceError if none.

    Rejects faces whose eyes are closed and, unless ``any_identity``, faces farther than
    ``identity_threshold`` from the target's descriptor (another person). Scores the rest
    (WEIGHTS; deterministic: ties go to the smaller distance, then path and face index).
    ``exclude``: candidates (or (path, face index) keys) already tried, e.g. by a self-check
    retrying with the next best reference, or references beyond the pose limit; ``exclude_reason``
    says why, and the reasons' "N usable" mentions the faces set aside for it alone (a user who gave
    three references reads "#2 of 2 usable (and 1 beyond the pose limit: c.jpg)"). ``rejections`` from ``load_candidates`` are only
    used to explain a NoReferenceError. ``target_pose`` None: pose is not scored.
    ``target_width``: the target face's width (``faces.face_width``); on a face wider than
    FULL_WIDTH the resolution term is relative to it (a reference as wide as the target
    scores 1, half as wide 0.5), so that larger references are preferred on large faces.
    None: FULL_WIDTH only. ``target_expression``: the target's ``pose.expression`` (from its
    landmarks; valid with its eyes closed); None: expression is not scored.
    """
    if target_descriptor is None and not any_identity:
        raise ValueError("choose_reference needs the target's descriptor unless any_identity")
    excluded = _exclude_keys(exclude)
    usable: list[tuple[Candidate, float, float, str]] = []
    rejected: list[tuple[Candidate, float, str]] = []
    for cand in candidates:
        distance = float("nan") if target_descriptor is None else descriptor_distance(target_descriptor, cand.descriptor)
        why: list[str] = []
        if cand.key in excluded:
            why.append(exclude_reason)
        if not any_identity and not distance <= identity_threshold:
            why.append(f"another person (distance {distance:.2f} > {identity_threshold:.2f})")
        if cand.eye.closed:
            why.append(f"eyes closed ({cand.eye.describe()})")
        elif cand.eye.hidden:  # dark lenses among others (eye_state.hidden_reason, which names them)
            why.append(cand.eye.rule)
        if why:
            rejected.append((cand, distance, ", ".join(why)))
            continue
        terms = _terms(cand, distance, target_pose, identity_threshold, target_width, target_expression)
        usable.append((cand, _score(terms), distance, _describe(cand, distance, target_pose, target_width, target_expression)))

    def order(u: tuple[Candidate, float, float, str]) -> tuple:
        cand, score, distance, _ = u
        return (-round(score, 9), 0.0 if math.isnan(distance) else distance, str(cand.path), cand.index)

    usable.sort(key=order)
    ranking: list[tuple[Candidate, float | None, float, str]] = [(c, s, d, t) for c, s, d, t in usable]
    ranking += [(c, None, d, t) for c, d, t in rejected]
    if not usable:
        lines = [f"{c.label}: {t}" for c, _, t in rejected] + [str(r) for r in rejections]
        error = NoReferenceError(f"no usable reference: {_summary(lines)}")
        error.ranking = ranking  # every candidate with its rejection reason (for `exgan inspect`)
        raise error
    aside = [c.label for c, _, t in rejected if t == exclude_reason]
    aside_text = f" (and {len(aside)} {exclude_reason}: {', '.join(aside[:MAX_LISTED])})" if aside else ""
    best, score, distance, text = usable[0]
    reasons = f"best of {len(usable)} usable{aside_text}: {text}"
    return Choice(candidate=best, distance=distance, score=score, reasons=reasons, ranking=ranking, aside=aside_text)


def top_choices(choice: Choice, n: int) -> list[Choice]:
    """The ``n`` best usable references of a ``choose_reference`` result, best first (the winner
    itself and the runners-up of its ranking)."""
    usable = [(c, s, d, t) for c, s, d, t in choice.ranking if s is not None]
    out = [choice]
    for k, (cand, score, distance, text) in enumerate(usable[1:n], start=2):
        out.append(Choice(candidate=cand, distance=distance, score=score, reasons=f"#{k} of {len(usable)} usable{choice.aside}: {text}",
                          ranking=choice.ranking, aside=choice.aside))
    return out
