"""pose.expression on real photos, and how reference_choice weighs it (issue #14, point 3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exgan_cli.files.images import load_image
from exgan_cli.stages.faces import detect_faces, face_descriptor
from exgan_cli.stages.pose import expression, expression_difference, expression_measures, expression_strength, head_pose
from exgan_cli.stages.reference_choice import choose_reference
from exgan_cli.stages.references import load_candidates

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, SERENA

LIDS = [37, 38, 40, 41, 43, 44, 46, 47]  # the eyelid points between the eye corners


def _face(path):
    img = load_image(path)
    return img, detect_faces(img.pixels)[0]


def test_laugh_with_closed_eyes_reads_as_a_strong_expression():
    # Hugo_Chavez_0017 laughs with his eyes shut: a wider mouth and raised cheeks than in any of
    # his calm open-eyed photos, read without the eyes' openness.
    _, laugh = _face(CHAVEZ_CLOSED)
    e = expression(laugh.landmarks)
    for path in CHAVEZ_OPEN:
        _, calm = _face(path)
        c = expression(calm.landmarks)
        assert expression_strength(e) > expression_strength(c), path.name
        assert e[1] > c[1], f"smile width vs {path.name}"
        assert e[2] < c[2], f"mouth corners nearer the eyes (raised cheeks) vs {path.name}"


def test_expression_ignores_the_eyelids_and_the_face_placement():
    _, face = _face(SERENA[0])
    lm = np.asarray(face.landmarks, dtype=np.float64)
    raw = expression_measures(lm)
    shut = lm.copy()  # close both eyes: every lid point on its eye's corner line
    for lid, (a, b) in zip(LIDS, [(36, 39)] * 4 + [(42, 45)] * 4):
        shut[lid] = lm[a] + (lm[b] - lm[a]) * (0.33 if lid in (37, 41, 43, 47) else 0.67)
    assert expression_measures(shut) == pytest.approx(raw, abs=1e-12)
    turn = math.radians(25)
    rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    moved = (lm @ rot.T) * 2.7 + [40.0, -13.0]  # rolled, scaled, shifted: the same expression
    assert expression_measures(moved) == pytest.approx(raw, rel=1e-9)


def _target(path):
    img, face = _face(path)
    return face_descriptor(img.pixels, face), head_pose(face.landmarks, img.size), expression(face.landmarks)


@pytest.mark.parametrize("target, refs", [(CHAVEZ_CLOSED, CHAVEZ_OPEN), (SERENA[0], SERENA[1:])], ids=["chavez-laugh", "serena-smile"])
def test_reference_nearest_in_expression_moves_up(target, refs):
    desc, pose, expr = _target(target)
    candidates, _ = load_candidates(list(refs))
    plain = choose_reference(desc, pose, candidates)
    weighed = choose_reference(desc, pose, candidates, target_expression=expr)
    assert all("expression" not in why for _, _, _, why in plain.ranking)
    assert all("expression diff" in why for _, s, _, why in weighed.ranking if s is not None)
    assert all(0.0 <= s <= 1.0 for _, s, _, _ in weighed.ranking if s is not None)
    order = {name: [c.path.name for c in ch.ranking_candidates()] for name, ch in (("plain", plain), ("weighed", weighed))}
    diff = {c.path.name: expression_difference(expression(c.face.landmarks), expr) for c in candidates}
    nearest, farthest = min(diff, key=diff.get), max(diff, key=diff.get)
    assert order["weighed"].index(nearest) <= order["plain"].index(nearest)
    assert order["weighed"].index(farthest) >= order["plain"].index(farthest)
    # Both targets smile or laugh harder than any reference, and the nearest in expression loses
    # on pose or identity alone: weighing expression narrows its gap to the winner.
    assert order["plain"][0] != nearest
    score = {name: {c.path.name: s for c, s, _, _ in ch.ranking if s is not None} for name, ch in (("plain", plain), ("weighed", weighed))}
    winner = order["plain"][0]
    assert score["weighed"][winner] - score["weighed"][nearest] < score["plain"][winner] - score["plain"][nearest]
