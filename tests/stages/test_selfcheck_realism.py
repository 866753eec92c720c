"""The self-check judges the new eyes as a retoucher would (issue #14): a result must look like
eyes, be as detailed as the face, carry the reference's iris colour and keep the identity.

Each test builds a result from a real photo (an open-eyed face stands for a good retouch) and
spoils it in one way; selfcheck.check_face must reject exactly that."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from exgan_cli.stages import exemplar, faces, selfcheck
from exgan_cli.files.images import load_image

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, HIGHRES


def _face(path):
    rgb = load_image(path).pixels
    return rgb, faces.largest_face(faces.detect_faces(rgb))


@pytest.fixture(scope="module")
def light_eyed():
    """A high-resolution portrait of a person with light green-grey eyes (tests/data/photos/img4)."""
    return _face(HIGHRES)


@pytest.fixture(scope="module")
def chavez():
    return _face(CHAVEZ_OPEN[0]), _face(CHAVEZ_OPEN[1])


def _check(result, face, ref_rgb, ref_face):
    """check_face as pipeline.retouch calls it, with the reference's descriptor and eyes."""
    ref_desc = faces.face_descriptor(ref_rgb, ref_face)
    before = faces.descriptor_distance(faces.face_descriptor(result, face), ref_desc)
    ref_eyes = selfcheck.ReferenceEyes.measure(ref_rgb, ref_face.landmarks)
    return selfcheck.check_face(result, face, ref_desc, before, faces.SAME_PERSON_THRESHOLD, reference=ref_eyes)


def _eye_region(rgb, landmarks, grow=0.6):
    pts = landmarks[36:48]
    w = pts[:, 0].max() - pts[:, 0].min()
    x0, y0 = int(pts[:, 0].min() - grow * w / 4), int(pts[:, 1].min() - grow * w / 4)
    x1, y1 = int(pts[:, 0].max() + grow * w / 4) + 1, int(pts[:, 1].max() + grow * w / 4) + 1
    return slice(max(0, y0), y1), slice(max(0, x0), x1)


def test_real_open_eyes_pass(chavez, light_eyed):
    (rgb, face), (ref, ref_face) = chavez
    check = _check(rgb, face, ref, ref_face)
    assert check.passed, check.reasons
    rgb, face = light_eyed
    check = _check(rgb, face, rgb, face)
    assert check.passed, check.reasons


def test_blurry_eyes_fail(light_eyed):
    rgb, face = light_eyed
    blurred = rgb.copy()
    ys, xs = _eye_region(rgb, face.landmarks)
    blurred[ys, xs] = cv2.GaussianBlur(rgb[ys, xs], (0, 0), 9)
    check = _check(blurred, face, rgb, face)
    assert not check.passed
    assert any("softer than the face" in r or "do not look real" in r for r in check.reasons), check.reasons


def test_eyes_softer_than_real_eyes_fail_on_a_large_face():
    """Eyes that still look like eyes but are softer than 95 real eyes in 100 of the face's size
    (issue #23: R 0.75 to 1.15 passed on a 12 MP group photo): a 390 px face, its eyes softened
    just enough to land between the old floor (0.7, the 1st percentile) and the new one."""
    rgb, face = _face(HIGHRES.parent / "img6.jpg")
    ys, xs = _eye_region(rgb, face.landmarks)
    assert _check(rgb, face, rgb, face).passed  # the real eyes themselves pass
    soft = rgb.copy()
    soft[ys, xs] = cv2.GaussianBlur(rgb[ys, xs], (0, 0), 1.25)
    check = _check(soft, face, rgb, face)
    assert faces.face_width(face) >= 150 and 0.7 < check.measures["sharpness"] < check.measures["sharpness_min"]
    assert check.reasons and all("softer than the face" in r for r in check.reasons), check.reasons


def test_brown_eyes_over_a_light_eyed_reference_fail(light_eyed):
    rgb, face = light_eyed
    w = exemplar.iris_weight(rgb, face.landmarks)
    brown = exemplar.recolour_irises(rgb, face.landmarks, (-18.0, 14.0, 24.0), w)
    check = _check(brown, face, rgb, face)
    assert not check.passed
    assert any("iris colour" in r for r in check.reasons), check.reasons


def test_a_brightened_closed_eye_fails(chavez):
    """'New eyes' that are only the closed lids brightened: no iris, no lid line."""
    rgb, face = _face(CHAVEZ_CLOSED)
    (ref, ref_face), _ = chavez
    bright = rgb.astype(np.float32)
    ys, xs = _eye_region(rgb, face.landmarks)
    bright[ys, xs] = bright[ys, xs] * 1.25 + 25
    bright = np.clip(bright, 0, 255).astype(np.uint8)
    check = _check(bright, face, ref, ref_face)
    assert not check.passed
    assert any(r.startswith("eyes not open") or "do not look real" in r for r in check.reasons), check.reasons


def test_the_measures_and_limits_are_reported(chavez, light_eyed):
    rgb, face = light_eyed
    d = _check(rgb, face, rgb, face).to_dict()
    for k in ("eye_contrast", "eye_contrast_min", "sharpness", "sharpness_min", "colour", "colour_max", "redness", "redness_max"):
        assert k in d
    assert d["colour_tested"] is True
    (rgb, face), (ref, ref_face) = chavez
    d = _check(rgb, face, ref, ref_face).to_dict()
    assert "sharpness" in d and "colour" not in d  # a ~100 px face: its irises are too small to measure
    assert d["colour_tested"] is False  # and the report says so (the summary's "iris colour not tested")


def test_force_retouches_past_the_pose_limit_and_says_so(tmp_path, tiny_model):
    """Colin Powell's photo, as a reference for Chavez (--any-identity), is turned 34° from him:
    beyond the pose limit the face is left alone with the reason; --force retouches it and the
    report says so."""
    import json
    import shutil

    from typer.testing import CliRunner

    from exgan_cli import errors
    from exgan_cli.cli import app

    from conftest import POWELL

    photo = tmp_path / "chavez.jpg"
    shutil.copyfile(CHAVEZ_CLOSED, photo)
    args = ["open-eyes", str(photo), "--ref", str(POWELL[0]), "--weights", str(tiny_model), "--any-identity", "--no-self-check"]
    refused = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a.jpg")])
    assert refused.exit_code == errors.EXIT_SELF_CHECK, refused.output
    assert "reference pose differs by" in refused.output and "reliable up to 30" in refused.output
    assert not (tmp_path / "a.jpg").exists()
    forced = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "b.jpg"), "--force", "--report", str(tmp_path / "r.json")])
    assert forced.exit_code == 0, forced.output
    face = json.loads((tmp_path / "r.json").read_text())["faces"][0]
    assert face["status"] == "retouched" and face["message"].startswith("forced past the pose limit")


VIOLET = (-5.0, 4.0, -18.0)  # exemplar.recolour_irises: the generator's blue-violet cast on light irises


def _one_eye_weight(rgb, landmarks, side):
    """exemplar.iris_weight kept on one eye only (0: image-left, 1: image-right)."""
    w = exemplar.iris_weight(rgb, landmarks)
    middle = int(round(landmarks[27, 0]))  # the nose bridge separates the eyes
    if side == 0:
        w[:, middle:] = 0
    else:
        w[:, :middle] = 0
    return w


def test_a_violet_cast_over_a_light_eyed_reference_fails(light_eyed):
    """Her green-grey irises turned blue-violet: a* barely moves, b* drops."""
    rgb, face = light_eyed
    violet = exemplar.recolour_irises(rgb, face.landmarks, VIOLET, exemplar.iris_weight(rgb, face.landmarks))
    check = _check(violet, face, rgb, face)
    assert not check.passed
    assert any("bluer" in r for r in check.reasons), check.reasons
    assert check.measures["redness"] <= check.measures["redness_max"]  # the a* test alone would let it pass


def test_a_violet_cast_on_one_eye_only_fails(light_eyed):
    rgb, face = light_eyed
    for side in (0, 1):
        violet = exemplar.recolour_irises(rgb, face.landmarks, VIOLET, _one_eye_weight(rgb, face.landmarks, side))
        check = _check(violet, face, rgb, face)
        assert not check.passed and any("bluer" in r for r in check.reasons), (side, check.reasons)


def test_eye_colours_reads_each_eye_alone(light_eyed):
    """A cast on the image-left iris moves that eye's b*, not the other's."""
    rgb, face = light_eyed
    before = selfcheck.eye_colours(rgb, face.landmarks)
    violet = exemplar.recolour_irises(rgb, face.landmarks, VIOLET, _one_eye_weight(rgb, face.landmarks, 0))
    after = selfcheck.eye_colours(violet, face.landmarks)
    moved = [abs(a.lab[2] - b.lab[2]) for a, b in zip(after, before)]
    assert moved[0] > 4 * max(moved[1], 0.5), moved


def test_a_yellower_iris_is_not_called_bluer(light_eyed):
    """The b* test is one-sided: the same cast towards yellow is not a blue-violet cast."""
    rgb, face = light_eyed
    yellow = exemplar.recolour_irises(rgb, face.landmarks, (-5.0, -8.0, 14.0), exemplar.iris_weight(rgb, face.landmarks))
    check = _check(yellow, face, rgb, face)
    assert check.measures["blueness"] < 0
    assert not any("bluer" in r for r in check.reasons), check.reasons


def test_a_good_retouch_with_the_bundled_model_passes():
    """Chavez's real blink (tests/data) opened by the bundled model from his own photos: the check
    (on, as open-eyes runs it) keeps it."""
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.model.weights import load_pretrained
    from exgan_cli.options import RetouchOptions
    from exgan_cli.stages.references import load_candidates

    from conftest import ROOT

    rgb, face = _face(CHAVEZ_CLOSED)
    cands, _ = load_candidates(CHAVEZ_OPEN)
    model = load_pretrained(ROOT / "weights" / "exgan-reference-128", device="cpu")
    res = retouch(rgb, cands, model, RetouchOptions(), faces=[face])
    report = res.faces[0]
    assert report.status == "retouched", report
    assert not np.array_equal(res.pixels, rgb)


def test_a_strong_cast_before_the_colour_match_fails_even_when_matched(light_eyed):
    """The iris colour match repaints a result's irises to the reference's colour; a generator
    whose own irises came out strongly blue-violet failed, and the match must not hide it: the
    check judges the unmatched result's cast too. A mild cast, which the match repairs, passes."""
    from exgan_cli.stages.eye_colour import match_iris_colour

    rgb, face = light_eyed
    ref_desc = faces.face_descriptor(rgb, face)
    ref_eyes = selfcheck.ReferenceEyes.measure(rgb, face.landmarks)
    for cast, fails in ((VIOLET, True), ((0.0, 0.0, -4.0), False)):
        raw = exemplar.recolour_irises(rgb, face.landmarks, cast, exemplar.iris_weight(rgb, face.landmarks))
        matched = match_iris_colour(raw, face.landmarks, ref_eyes.colour)
        check = selfcheck.check_face(matched, face, ref_desc, 0.0, faces.SAME_PERSON_THRESHOLD, reference=ref_eyes,
                                     unmatched=raw)
        assert (check.measures["raw_blueness"] > check.measures["raw_blueness_max"]) is fails, check.measures
        if not fails:  # the match repaired the mild cast: the colour tests pass
            assert check.measures["blueness"] <= check.measures["blueness_max"], check.measures
            assert not any("colour" in r for r in check.reasons), check.reasons
        assert any("before the colour match" in r for r in check.reasons) is fails, check.reasons
