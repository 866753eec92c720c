"""eye_colour.match_iris_colour: new irises moved to the reference's colour, nothing else touched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from exgan_cli.files.images import load_image, luminance
from exgan_cli.stages import faces
from exgan_cli.stages.eye_colour import _iris_weight, colour_distance, eye_pixels, iris_colour, match_iris_colour
from exgan_cli.stages.geometry import LEFT_EYE, RIGHT_EYE

from conftest import HIGHRES


@pytest.fixture(scope="module")
def portrait():
    """A 2500 px portrait of a light-eyed woman (her real open eyes) and her 68 landmarks."""
    rgb = load_image(HIGHRES).pixels
    face = faces.largest_face(faces.detect_faces(rgb))
    return rgb, face.landmarks


@pytest.mark.parametrize("shift", [(0.0, 8.0, 6.0), (0.0, -5.0, -7.0), (6.0, 0.0, 0.0)])
def test_irises_take_the_target_colour(portrait, shift):
    """Browner and bluer targets: the irises end within a just-noticeable difference or two of the
    target's a*, b*; one lighter within LIGHTNESS_TOLERANCE moves neither their lightness nor
    their hue (lightness is the photo's light). Every pixel outside the two eye windows is unchanged."""
    rgb, lm = portrait
    before = iris_colour(rgb, lm)
    target = dataclasses.replace(before, lab=before.lab + np.array(shift))
    out = match_iris_colour(rgb, lm, target)
    after = iris_colour(out, lm)
    if shift[0]:
        assert colour_distance(after, before) < 1.5
    else:
        assert colour_distance(after, target) < 3.0 < colour_distance(before, target)
        assert abs(after.lab[0] - before.lab[0]) < 1.5
    # every changed pixel lies within one eye's contour box, grown by a fifth of its width
    changed = np.argwhere(np.any(out != rgb, axis=2))[:, ::-1]  # (x, y)
    near = np.zeros(len(changed), bool)
    for idx in (LEFT_EYE, RIGHT_EYE):
        eye = lm[idx]
        grow = 0.2 * np.linalg.norm(eye[3] - eye[0])
        near |= np.all((changed >= eye.min(axis=0) - grow) & (changed <= eye.max(axis=0) + grow), axis=1)
    assert near.all(), changed[~near][:5]
    for idx in (LEFT_EYE, RIGHT_EYE):  # and inside each eye's window, only where the iris weighs
        (y0, y1, x0, x1), weight = _iris_weight(rgb, lm[idx])
        still = weight == 0
        assert np.array_equal(out[y0:y1, x0:x1][still], rgb[y0:y1, x0:x1][still])


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_lightness_moves_only_beyond_the_tolerance(portrait, sign):
    """A target 20 L* darker (a dark iris the generator painted light, which reads as grey-blue) or
    lighter: the irises move that way by about the excess over LIGHTNESS_TOLERANCE, not by all 20
    (a full match moves them ~16 here, the fade towards the whites and the contour taking the
    rest), and keep their hue; one 6 L* lighter (within the tolerance: this photo's light) moves
    nothing (above)."""
    from exgan_cli.stages.eye_colour import LIGHTNESS_TOLERANCE

    rgb, lm = portrait
    before = iris_colour(rgb, lm)
    out = match_iris_colour(rgb, lm, dataclasses.replace(before, lab=before.lab + np.array([20.0 * sign, 0.0, 0.0])))
    after = iris_colour(out, lm)
    moved = sign * (after.lab[0] - before.lab[0])
    excess = 20.0 - LIGHTNESS_TOLERANCE
    assert 0.6 * excess < moved < 0.95 * excess, moved
    assert np.linalg.norm(after.lab[1:] - before.lab[1:]) < 2.0


def test_the_whites_keep_their_colour(portrait):
    """A strong brown target: the irises move, the brightest pixels inside the contours (the
    whites, the glints) barely do: no tinted sclera."""
    rgb, lm = portrait
    before = iris_colour(rgb, lm)
    out = match_iris_colour(rgb, lm, dataclasses.replace(before, lab=before.lab + np.array([0.0, 12.0, 10.0])))
    for idx in (LEFT_EYE, RIGHT_EYE):
        a, b = eye_pixels(rgb, lm, idx, band=None), eye_pixels(out, lm, idx, band=None)
        white = luminance(a) >= np.percentile(luminance(a), 92)
        assert np.abs(b[white] - a[white]).mean() < 2.0  # grey levels
        assert np.abs(b[~white] - a[~white]).mean() > 3.0  # the rest of the eye did move


def test_nothing_to_match_leaves_the_photo(portrait):
    rgb, lm = portrait
    assert match_iris_colour(rgb, lm, None) is rgb
    assert match_iris_colour(rgb, lm + 10_000, iris_colour(rgb, lm)) is rgb  # eyes outside the photo


def test_open_eyes_matches_the_iris_colour_unless_told_not_to(tmp_path):
    """End to end on the light-eyed portrait repainted from another photo of her: the new irises
    are closer to the reference's colour with the match than with --no-iris-colour, and the two
    outputs differ only around the eyes."""
    from typer.testing import CliRunner

    from exgan_cli.cli import app
    from exgan_cli.stages.selfcheck import ReferenceEyes

    from conftest import DATA

    photo, ref = DATA / "photos" / "img6.jpg", DATA / "photos" / "img4.jpg"
    outs = {}
    for flag in ("--iris-colour", "--no-iris-colour"):
        out = tmp_path / f"{flag}.png"
        run = CliRunner().invoke(app, ["open-eyes", str(photo), "--ref", str(ref), "--faces", "all", "--no-self-check",
                                       "--no-cache", "-o", str(out), flag, "--quiet"])
        assert run.exit_code == 0, run.output
        outs[flag] = load_image(out).pixels
    ref_rgb = load_image(ref).pixels
    ref_colour = ReferenceEyes.measure(ref_rgb, faces.largest_face(faces.detect_faces(ref_rgb)).landmarks).colour
    face = faces.largest_face(faces.detect_faces(outs["--iris-colour"]))
    matched, raw = (iris_colour(outs[f], face.landmarks) for f in ("--iris-colour", "--no-iris-colour"))
    chroma = lambda c: float(np.linalg.norm(c.lab[1:] - ref_colour.lab[1:]))  # noqa: E731
    assert chroma(matched) < chroma(raw) - 1.0
    changed = np.argwhere(np.any(outs["--iris-colour"] != outs["--no-iris-colour"], axis=2))
    eyes, width = face.landmarks[36:48], faces.face_width(face)
    assert changed[:, 1].min() >= eyes[:, 0].min() - 0.1 * width and changed[:, 1].max() <= eyes[:, 0].max() + 0.1 * width
    assert changed[:, 0].min() >= eyes[:, 1].min() - 0.1 * width and changed[:, 0].max() <= eyes[:, 1].max() + 0.1 * width


def test_an_eye_of_two_pixels_does_not_break_it(portrait):
    """An eye collapsed to a few pixels (a contour at the photo's border): matched or left, never an error."""
    rgb, lm = portrait
    small = lm.copy()
    small[36:42] = lm[36] + (small[36:42] - lm[36]) * 0.02  # the left eye shrunk to ~2 px
    out = match_iris_colour(rgb, small, iris_colour(rgb, lm))
    assert out.shape == rgb.shape
