"""references.py: collecting reference photos, measuring their faces, choosing one."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from exgan_cli.errors import BadInputError, NoReferenceError
from exgan_cli.stages.faces import SAME_PERSON_THRESHOLD, detect_faces, face_descriptor, face_width
from exgan_cli.stages.pose import head_pose
from exgan_cli.files.images import load_image
from exgan_cli.stages.reference_choice import WEIGHTS, Choice, choose_reference
from exgan_cli.stages.references import Candidate, Rejection, collect_reference_paths, load_candidates

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, DATA, GROUP, GROUP_ANGELINA, GROUP_FACES, HIGHRES, POWELL


def _target(path, index=0):
    img = load_image(path)
    face = detect_faces(img.pixels)[index]
    return face_descriptor(img.pixels, face), head_pose(face.landmarks, img.size)


@pytest.fixture(scope="module")
def pool() -> tuple[list[Candidate], list[Rejection]]:
    """Candidates from the group photo, Chavez's photos (closed and open) and Powell's."""
    return load_candidates([GROUP, CHAVEZ_CLOSED, *CHAVEZ_OPEN, POWELL[0]])


def _of(cands, path):
    return [c for c in cands if c.path == path]


def test_load_candidates(pool):
    cands, rejections = pool
    assert rejections == []
    group = _of(cands, GROUP)
    assert len(group) == GROUP_FACES
    assert [c.index for c in group] == list(range(GROUP_FACES))
    assert all(c.faces_in_photo == GROUP_FACES for c in group)
    assert group[0].label == f"{GROUP.name} (face 1 of {GROUP_FACES})"
    c = _of(cands, CHAVEZ_OPEN[0])[0]
    assert c.label == CHAVEZ_OPEN[0].name
    assert c.descriptor.shape == (128,) and c.pixels.shape == (250, 250, 3)
    assert len(c.pose) == 3 and c.width > 50 and c.sharpness > 0
    assert _of(cands, CHAVEZ_CLOSED)[0].eye.closed
    assert not c.eye.closed


def test_load_candidates_rejections(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(blank)
    cands, rejections = load_candidates([text, blank])
    assert cands == []
    assert [(r.path, r.face_index) for r in rejections] == [(text, None), (blank, None)]
    assert "not an image" in rejections[0].reason and str(text) not in rejections[0].reason
    assert rejections[1].reason == "no face found"
    assert str(rejections[1]) == "blank.png: no face found"


def test_group_photo_target_matches_its_own_face(pool):
    """Target: a face of the group photo; references: the group photo. Its face wins."""
    cands, _ = pool
    group = _of(cands, GROUP)
    for i in range(GROUP_FACES):
        descriptor, pose = _target(GROUP, i)
        choice = choose_reference(descriptor, pose, group)
        assert choice.candidate is group[i]
        assert choice.distance < 0.05
        others = [r for r in choice.ranking if r[0] is not group[i]]
        assert all(score is None and why.startswith("another person") for _, score, _, why in others)


def test_other_photo_target_finds_person_in_group(pool):
    """Angelina Jolie's 2500 px portrait as target: her face in the group selfie wins."""
    cands, _ = pool
    descriptor, pose = _target(HIGHRES)
    choice = choose_reference(descriptor, pose, cands)
    assert choice.candidate.path == GROUP and choice.candidate.index == GROUP_ANGELINA
    assert choice.distance < SAME_PERSON_THRESHOLD
    assert isinstance(choice, Choice) and 0 < choice.score <= 1
    assert "identity distance" in choice.reasons


def test_closed_and_other_person_rejected_with_reasons(pool):
    cands, _ = pool
    descriptor, pose = _target(CHAVEZ_CLOSED)
    choice = choose_reference(descriptor, pose, cands)
    assert choice.candidate.path in CHAVEZ_OPEN
    by_path = {(c.path, c.index): (score, dist, why) for c, score, dist, why in choice.ranking}
    score, dist, why = by_path[(CHAVEZ_CLOSED, 0)]
    assert score is None and dist < 1e-6 and why.startswith("eyes closed (EAR")
    score, dist, why = by_path[(POWELL[0], 0)]
    assert score is None and why == f"another person (distance {dist:.2f} > 0.60)"
    usable = [r for r in choice.ranking if r[1] is not None]
    assert {r[0].path for r in usable} == set(CHAVEZ_OPEN)
    assert [r[1] for r in usable] == sorted((r[1] for r in usable), reverse=True)
    assert usable[0][0] is choice.candidate and choice.reasons.startswith("best of 3 usable")


def test_deterministic_and_exclude(pool):
    cands, _ = pool
    descriptor, pose = _target(CHAVEZ_CLOSED)
    first = choose_reference(descriptor, pose, cands)
    again = choose_reference(descriptor, pose, list(reversed(cands)))
    assert again.candidate is first.candidate and again.score == first.score
    second = choose_reference(descriptor, pose, cands, exclude=[first.candidate])
    assert second.candidate is not first.candidate and second.candidate.path in CHAVEZ_OPEN
    assert second.score <= first.score
    by_key = choose_reference(descriptor, pose, cands, exclude=[(first.candidate.path, 0)])
    assert by_key.candidate is second.candidate
    tried = [first.candidate, second.candidate]
    third = choose_reference(descriptor, pose, cands, exclude=tried)
    with pytest.raises(NoReferenceError, match="already tried"):
        choose_reference(descriptor, pose, cands, exclude=tried + [third.candidate])


def test_no_usable_reference_message(pool):
    cands, _ = pool
    descriptor, pose = _target(CHAVEZ_CLOSED)
    bad = _of(cands, CHAVEZ_CLOSED) + _of(cands, POWELL[0])
    extra = [Rejection(HIGHRES.parent / "blank.png", None, "no face found")]
    with pytest.raises(NoReferenceError) as info:
        choose_reference(descriptor, pose, bad, rejections=extra)
    msg = str(info.value)
    assert "\n" not in msg and info.value.exit_code == 5
    assert msg.startswith("no usable reference: ")
    assert f"{CHAVEZ_CLOSED.name}: eyes closed (EAR" in msg
    assert f"{POWELL[0].name}: another person (distance " in msg and "> 0.60)" in msg
    assert "blank.png: no face found" in msg
    with pytest.raises(NoReferenceError, match="no reference photos given"):
        choose_reference(descriptor, pose, [])


def test_any_identity(pool):
    cands, _ = pool
    descriptor, pose = _target(CHAVEZ_CLOSED)
    powell = _of(cands, POWELL[0])
    with pytest.raises(NoReferenceError):
        choose_reference(descriptor, pose, powell)
    choice = choose_reference(descriptor, pose, powell, any_identity=True)
    assert choice.candidate is powell[0] and choice.distance > SAME_PERSON_THRESHOLD
    # closed eyes are rejected even then
    with pytest.raises(NoReferenceError, match="eyes closed"):
        choose_reference(descriptor, pose, _of(cands, CHAVEZ_CLOSED), any_identity=True)
    # a stricter identity threshold is honoured
    with pytest.raises(NoReferenceError, match=r"> 0\.20\)"):
        choose_reference(descriptor, pose, cands, identity_threshold=0.2)


def test_collect_reference_paths(tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for p in CHAVEZ_OPEN:
        shutil.copy(p, refs / p.name)
    (refs / "notes.txt").write_text("x")
    (refs / ".hidden.jpg").write_bytes(b"")
    (refs / "sub").mkdir()
    shutil.copy(POWELL[0], refs / "sub" / "powell.jpg")
    upper = refs / "UPPER.JPG"
    shutil.copy(POWELL[1], upper)
    got = collect_reference_paths([refs / CHAVEZ_OPEN[0].name, POWELL[2]], refs)
    expected = sorted([refs / p.name for p in CHAVEZ_OPEN] + [upper, POWELL[2]], key=str)
    assert got == expected  # sorted, images only, no duplicates, not recursive
    assert collect_reference_paths([], None) == []
    with pytest.raises(BadInputError, match="missing.jpg: reference photo not found"):
        collect_reference_paths([tmp_path / "missing.jpg"], None)
    with pytest.raises(BadInputError, match="reference folder not found"):
        collect_reference_paths([], tmp_path / "nope")
    with pytest.raises(BadInputError, match="not a folder"):
        collect_reference_paths([], upper)
    with pytest.raises(BadInputError, match="is a folder"):
        collect_reference_paths([refs], None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoReferenceError, match="no .jpg"):
        collect_reference_paths([], empty)


def test_large_target_prefers_the_larger_reference(tmp_path):
    """On a ~720 px target face, the same reference photo at full size (face ~390 px) beats a
    copy reduced to 0.55x (face ~215 px): the resolution term is relative to the target's
    width. Both are over FULL_WIDTH, so with the absolute term alone the reduced copy (a
    slightly closer descriptor) wins."""
    full = DATA / "photos" / "img6.jpg"
    small = tmp_path / "img6_small.jpg"
    with Image.open(full) as im:
        im.resize((round(im.width * 0.55), round(im.height * 0.55)), Image.LANCZOS).save(small, quality=95)
    cands, _ = load_candidates([full, small])
    assert len(cands) == 2
    big, little = sorted(cands, key=lambda c: -c.width)
    assert big.path == full and 200 < little.width < 0.6 * big.width
    img = load_image(HIGHRES)
    face = max(detect_faces(img.pixels), key=face_width)
    width = face_width(face)
    assert width > 600
    descriptor, pose = face_descriptor(img.pixels, face), head_pose(face.landmarks, img.size)
    absolute = choose_reference(descriptor, pose, cands)
    assert absolute.candidate is little  # what the absolute term alone picks
    relative = choose_reference(descriptor, pose, cands, target_width=width)
    assert relative.candidate is big
    scores = {c.path: s for c, s, _, _ in relative.ranking}
    old = {c.path: s for c, s, _, _ in absolute.ranking}
    # only the resolution term moved: from 1 (both over FULL_WIDTH) to face width / target width
    for c in cands:
        assert old[c.path] - scores[c.path] == pytest.approx(WEIGHTS["resolution"] * (1 - c.width / width), abs=1e-6)
    assert "of the target's" in relative.reasons


def test_target_width_changes_nothing_on_small_faces(pool):
    """LFW-sized targets (under FULL_WIDTH): the resolution term is the absolute one, as before."""
    cands, _ = pool
    img = load_image(CHAVEZ_CLOSED)
    face = detect_faces(img.pixels)[0]
    assert face_width(face) < 200
    descriptor, pose = face_descriptor(img.pixels, face), head_pose(face.landmarks, img.size)
    a = choose_reference(descriptor, pose, cands)
    b = choose_reference(descriptor, pose, cands, target_width=face_width(face))
    assert [(c.key, s) for c, s, _, _ in a.ranking] == [(c.key, s) for c, s, _, _ in b.ranking]
    assert a.reasons == b.reasons


SUNGLASSES = DATA / "sunglasses"  # three LFW photos of Keanu Reeves; 0005 behind dark sunglasses


def test_eye_visibility_sees_dark_glasses():
    from exgan_cli.stages.eye_state import VISIBLE_FULL, VISIBLE_NONE, eye_visibility

    from exgan_cli.stages.faces import central_face

    def vis(path):
        img = load_image(path)
        return eye_visibility(img.pixels, central_face(detect_faces(img.pixels), img.size).landmarks)

    assert vis(SUNGLASSES / "Keanu_Reeves_0005.jpg") < VISIBLE_NONE
    for p in (SUNGLASSES / "Keanu_Reeves_0001.jpg", SUNGLASSES / "Keanu_Reeves_0002.jpg", CHAVEZ_OPEN[0], POWELL[0]):
        assert vis(p) > VISIBLE_FULL, p  # Powell wears clear glasses: still visible


def test_reference_behind_dark_glasses_is_rejected():
    # Same person, and the sunglasses photo has the closer head pose (yaw -27 vs the
    # target's -31; the other reference looks the other way, +26): without the visibility
    # check it would win. It is rejected, with the reason, and the visible one is chosen.
    desc, pose = _target(SUNGLASSES / "Keanu_Reeves_0002.jpg")
    dark, clear = SUNGLASSES / "Keanu_Reeves_0005.jpg", SUNGLASSES / "Keanu_Reeves_0001.jpg"
    cands, _ = load_candidates([dark, clear])
    keanu = [c for c in _of(cands, dark) if c.visibility < 0.17]  # (0005 also shows Hugo Weaving)
    assert len(keanu) == 1 and not keanu[0].eye.closed and keanu[0].eye.hidden  # hidden, never closed (issue #24)
    choice = choose_reference(desc, pose, cands)
    assert choice.candidate.path == clear
    assert any(c.path == dark and s is None and "dark lenses" in why for c, s, _, why in choice.ranking)
    with pytest.raises(NoReferenceError, match="dark lenses"):
        choose_reference(desc, pose, keanu)
