"""detail.py: full-resolution eye detail, on a real high-resolution photo.

Target: tests/data/photos/img4.jpg (2500 x 1728, Angelina Jolie, face ~720 px). References of
the same person: img6.jpg (face ~390 px: smaller than the target's, so part of the finest band
is grain) and her face in the group photo (~100 px: almost all grain). The generator is a tiny
random model (conftest.tiny_model): its eyes are mush, which is the point: the plain paste of a
128 px crop is blurry whatever the model, and the detail must come from real pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from exgan_cli.stages import faces as facelib
from exgan_cli.stages import geometry
from exgan_cli.apps import retouch as pipeline
from exgan_cli.stages.generate import align_for_model, exemplar_batch
from exgan_cli.stages.blend import BlendConfig, feather_alpha, match_colour, paste_back
from exgan_cli.stages.detail import DetailConfig, DetailSource, Exemplar, eye_matrices, sharpness_ratio
from exgan_cli.stages.detail_bands import covariance, luma, median, shock, synthesise_fine
from exgan_cli.stages.detail_flow import warp_from
from exgan_cli.files.images import load_image, luminance
from exgan_cli.options import RetouchOptions
from exgan_cli.apps.retouch import retouch
from exgan_cli.stages.references import load_candidates
from exgan_cli.stages.selfcheck import SelfCheckConfig

from conftest import DATA, GROUP, GROUP_ANGELINA, HIGHRES

HIGHRES_REF = DATA / "photos" / "img6.jpg"  # Angelina Jolie again, 750 x 1050, face ~390 px
REAL_RANGE = (1.4, 10.0)  # R of real open eyes in sharp photos (issue #8)


@pytest.fixture(scope="module")
def model(tiny_model):
    from exgan_cli.model.weights import load_pretrained

    return load_pretrained(tiny_model)


@pytest.fixture(scope="module")
def target():
    rgb = load_image(HIGHRES).pixels
    found = facelib.detect_faces(rgb, detector="hog")
    return rgb, found, facelib.largest_face(found)


@pytest.fixture(scope="module")
def reference():
    cands, _ = load_candidates([HIGHRES_REF], detector="hog")
    return max(cands, key=lambda c: c.width)


@pytest.fixture(scope="module")
def small_reference():
    cands, _ = load_candidates([GROUP], detector="hog")
    return cands[GROUP_ANGELINA]


def _retouch(target, cand, model, detail: bool):
    rgb, found, face = target
    opts = RetouchOptions(
        faces="all",
        face_index=found.index(face),
        detector="hog",
        blend=BlendConfig(detail=detail),
        self_check=SelfCheckConfig(enabled=False),  # keep this reference, whatever the result
    )
    return retouch(rgb, [cand], model, opts, faces=found)


@pytest.fixture(scope="module")
def results(target, reference, model):
    return {d: _retouch(target, reference, model, d) for d in (False, True)}


def _support(rgb: np.ndarray, face, model, cfg: BlendConfig = BlendConfig()) -> np.ndarray:
    """Photo pixels the feathered alpha can touch (dilated by 2 px against rounding)."""
    import cv2

    prep = align_for_model(rgb, face.landmarks, model)
    alpha = feather_alpha(prep.boxes, model.align_cfg.resolution, cfg)
    h, w = rgb.shape[:2]
    a = cv2.warpAffine(alpha, geometry.invert(prep.matrix), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.dilate((a > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def test_real_eyes_are_in_the_real_range(target, reference):
    rgb, _, face = target
    assert REAL_RANGE[0] <= sharpness_ratio(rgb, face.landmarks) <= REAL_RANGE[1]
    assert REAL_RANGE[0] <= sharpness_ratio(reference.pixels, reference.face.landmarks) <= REAL_RANGE[1]


def test_detail_is_as_sharp_as_real_eyes_and_the_plain_paste_is_not(target, results):
    rgb, _, face = target
    plain = sharpness_ratio(results[False].pixels, face.landmarks)
    new = sharpness_ratio(results[True].pixels, face.landmarks)
    assert plain < 1.0  # the upsampled 128 px crop: blurrier than the skin around it
    assert REAL_RANGE[0] <= new <= REAL_RANGE[1]
    assert new > 2.5 * plain


def test_pixels_outside_the_eye_regions_are_bit_exact(target, results, model):
    rgb, _, face = target
    support = _support(rgb, face, model)
    assert support.mean() < 0.05  # the eyes only, not the photo
    for res in results.values():
        assert np.array_equal(res.pixels[~support], rgb[~support])
    # and inside, the detail did change the eyes (it is not the plain paste)
    inside = results[True].pixels[support].astype(int) - results[False].pixels[support].astype(int)
    assert np.abs(inside).mean() > 1.0


def test_identity_is_no_worse_than_the_plain_paste(results):
    plain = results[False].retouched[0].identity_after
    new = results[True].retouched[0].identity_after
    assert plain is not None and new is not None
    assert new <= plain + 0.02


def test_small_reference_gets_grain_for_the_rest(target, small_reference, model):
    """A ~100 px reference face on a ~720 px target: the finest band is almost all grain, and
    the eyes are still as sharp as real ones (not mush)."""
    rgb, _, face = target
    assert small_reference.width < 0.25 * facelib.face_width(face)
    res = _retouch(target, small_reference, model, True)
    r = sharpness_ratio(res.pixels, face.landmarks)
    assert REAL_RANGE[0] <= r <= REAL_RANGE[1]


def _paste_inputs(target, cand, model):
    rgb, _, face = target
    prep = align_for_model(rgb, face.landmarks, model)
    ref = align_for_model(cand.pixels, cand.face.landmarks, model)
    gen = pipeline.generate_crops(model, prep.crop[None], prep.mask[None], exemplar_batch(model, [prep], [ref])).raw[0]
    colour = match_colour(gen, prep.crop, prep.boxes)
    alpha = feather_alpha(prep.boxes, model.align_cfg.resolution)
    return rgb, face, prep, ref, colour, alpha


def _fine(a: np.ndarray) -> np.ndarray:
    import cv2

    return a - cv2.GaussianBlur(a, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)


def test_synthesised_fine_band_follows_the_eye_not_noise(target):
    """The target's eye reduced 2x and enlarged back (a reference half the target's width):
    the band synthesised for it lies on the eye's edges (far stronger in the eye box than on
    the skin around it), is in phase with the detail the reduction removed, and the shock
    filter never leaves the local range (no halo)."""
    import cv2

    rgb, _, face = target
    x0, y0, x1, y1 = geometry.eye_boxes(face.landmarks)[0]
    h = y1 - y0
    X0, Y0 = int(x0 - h), int(y0 - h)
    lum = luminance(rgb[Y0 : int(y1 + h), X0 : int(x1 + h)])
    H, W = lum.shape
    small = cv2.resize(lum, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    top, synth, lack = synthesise_fine(up, W / small.shape[1], DetailConfig())
    assert lack == pytest.approx(1.0, abs=0.01)  # 2x smaller: the whole finest octave is missing
    assert synthesise_fine(lum, 1.0, DetailConfig())[2] == 0.0  # same size: nothing is
    assert synthesise_fine(lum, 4 / 3, DetailConfig())[2] == pytest.approx(0.5)
    eye = np.zeros((H, W), bool)
    eye[int(y0) - Y0 : int(y1) - Y0, int(x0) - X0 : int(x1) - X0] = True
    ring = np.zeros((H, W), bool)
    ring[5:-5, 5:-5] = True
    ring &= ~cv2.dilate(eye.astype(np.uint8), np.ones((int(0.4 * h),) * 2, np.uint8)).astype(bool)
    assert synth[eye].var() > 2.5 * synth[ring].var()  # 4.1 here; grain would give ~1
    removed = _fine(lum) - _fine(up)
    inner = (slice(5, -5), slice(5, -5))
    assert np.corrcoef(removed[inner].ravel(), synth[inner].ravel())[0, 1] > 0.03  # noise: ~0 +- 0.005
    sharp = shock(up, 1.0, 1)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    assert np.all(sharp >= cv2.erode(up, cross) - 1e-4) and np.all(sharp <= cv2.dilate(up, cross) + 1e-4)
    assert np.abs(sharp - up).max() > 1.0


def test_synthesis_sharpens_a_smaller_reference_and_leaves_a_full_one_alone(target, reference, model):
    """img6's face is ~0.54 of the target's: most of the finest octave is synthesised and the
    eyes get sharper than with grain alone. With the target as its own reference nothing is
    missing and the result is bit-identical with the synthesis off."""
    rgb, face, prep, ref, colour, alpha = _paste_inputs(target, reference, model)
    exemplar = Exemplar(reference.pixels, reference.face.landmarks, ref.matrix)
    r = {}
    for on in (False, True):
        source = DetailSource(face.landmarks, exemplar, DetailConfig(synthesize=on))
        out, _ = paste_back(rgb, colour, alpha, prep.matrix, source)
        r[on] = sharpness_ratio(out, face.landmarks)
    assert min(source.info["missing_fine"]) > 0.8 and 0.0 < source.info["synth_gain"] <= 1.0
    assert r[True] > 1.2 * r[False]  # 1.60 -> 2.14 with the tiny random generator
    assert REAL_RANGE[0] <= r[True] <= REAL_RANGE[1]
    own = Exemplar(rgb, face.landmarks, prep.matrix)
    outs = []
    for on in (False, True):
        source = DetailSource(face.landmarks, own, DetailConfig(synthesize=on))
        outs.append(paste_back(rgb, colour, alpha, prep.matrix, source)[0])
    assert source.info["missing_fine"] == [0.0, 0.0] and source.info["synth_gain"] == 0.0
    assert np.array_equal(outs[0], outs[1])


def test_render_is_deterministic_and_reports_what_it_measured(target, reference, model):
    rgb, face, prep, ref, colour, alpha = _paste_inputs(target, reference, model)
    outs = []
    for _ in range(2):
        source = DetailSource(face.landmarks, Exemplar(reference.pixels, reference.face.landmarks, ref.matrix))
        out, box = paste_back(rgb, colour, alpha, prep.matrix, source)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
    info = source.info
    assert DetailConfig().min_gain <= info["gain_mid"] <= DetailConfig().max_gain
    assert len(info["registration"]) == 2


def test_perfect_generator_and_self_reference_give_back_the_photo(target, model):
    """Why it works: the generator's low band + the exemplar's high band. With a 'generator'
    that returns the target's own 128 px crop and the target photo as its own reference, the
    result is the photo again (up to what a 128 px crop cannot hold below the split), while
    the plain paste of the same crop is the blurred photo."""
    rgb, _, face = target
    prep = align_for_model(rgb, face.landmarks, model)
    crop = prep.crop.astype(np.float32)
    alpha = feather_alpha(prep.boxes, model.align_cfg.resolution)
    support = _support(rgb, face, model)
    plain, _ = paste_back(rgb, crop, alpha, prep.matrix)
    source = DetailSource(face.landmarks, Exemplar(rgb, face.landmarks, prep.matrix))
    new, _ = paste_back(rgb, crop, alpha, prep.matrix, source)
    err_plain = np.abs(plain[support].astype(float) - rgb[support]).mean()
    err_new = np.abs(new[support].astype(float) - rgb[support]).mean()
    assert err_new < 0.5 * err_plain
    assert err_new < 3.0
    r_real = sharpness_ratio(rgb, face.landmarks)
    assert sharpness_ratio(new, face.landmarks) == pytest.approx(r_real, rel=0.25)


def test_no_exemplar_gives_skin_grain_only(target, model):
    """Without a reference the eyes get the generator's low band and grain as strong as the
    skin's (R ~1: as sharp as the skin, no sharper)."""
    rgb, _, face = target
    prep = align_for_model(rgb, face.landmarks, model)
    gen = np.full_like(prep.crop, 150, dtype=np.float32)  # a flat "generator"
    alpha = feather_alpha(prep.boxes, model.align_cfg.resolution)
    out, _ = paste_back(rgb, gen, alpha, prep.matrix, DetailSource(face.landmarks, None))
    assert 0.7 <= sharpness_ratio(out, face.landmarks) <= 1.6
    plain, _ = paste_back(rgb, gen, alpha, prep.matrix)
    assert sharpness_ratio(plain, face.landmarks) < 0.6


def test_eye_matrices_put_reference_corners_on_target_corners(target, reference, model):
    rgb, _, face = target
    ref = align_for_model(reference.pixels, reference.face.landmarks, model)
    mats = eye_matrices(face.landmarks, align_for_model(rgb, face.landmarks, model).matrix,
                        Exemplar(reference.pixels, reference.face.landmarks, ref.matrix))
    for m, eye in zip(mats, (geometry.LEFT_EYE, geometry.RIGHT_EYE)):
        corners = [eye.start, eye.start + 3]
        mapped = geometry.transform_points(face.landmarks[corners], m)
        assert np.abs(mapped - reference.face.landmarks[corners]).max() < 0.5


def test_warp_from_a_finer_source_does_not_alias():
    """A 1-px checkerboard reduced 3x must come out grey, not as a coarser false pattern."""
    board = ((np.indices((300, 300)).sum(0) % 2) * 255).astype(np.uint8)
    src = np.repeat(board[..., None], 3, axis=2)
    dst_to_src = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    out = warp_from(src, dst_to_src, (100, 100))
    assert abs(out[5:-5, 5:-5].mean() - 127.5) < 3
    assert out[5:-5, 5:-5].std() < 10  # (a 3x3 box average of the board is 4/9 or 5/9 white)
    import cv2

    naive = cv2.warpAffine(src, dst_to_src, (100, 100), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert naive[5:-5, 5:-5].std() > 100  # what sampling without the reduction gives


def test_fast_statistics_match_numpy():
    """The render's shortcuts (one-k partition median, per-channel covariance, one-pass luma)
    give numpy's values: the speed-up changes nothing but float rounding."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 6, 1001, 4096):
        x = rng.standard_normal(n).astype(np.float32)
        assert median(x) == float(np.median(x))
        ties = np.round(3 * x)
        assert median(ties) == float(np.median(ties))
    rgb = rng.normal(120, 30, (40, 60, 3)).astype(np.float32) + rng.normal(0, 20, (40, 60, 1)).astype(np.float32)
    sel = rng.random((40, 60)) < 0.4
    assert np.allclose(covariance(rgb, sel), np.cov(rgb[sel].T), rtol=1e-9, atol=1e-9)
    view = rgb[3:30, 5:50]  # a view, as the render passes
    assert np.allclose(luma(view), luminance(view), atol=1e-3)


def test_detail_can_be_turned_off():
    assert BlendConfig().detail is True
    assert replace(BlendConfig(), detail=False).to_dict()["detail"] is False
    assert "split" in BlendConfig().to_dict()["detail_cfg"]


def test_open_eyes_has_a_no_detail_flag():
    from typer.testing import CliRunner

    from exgan_cli.cli import app

    out = CliRunner().invoke(app, ["open-eyes", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    assert "--no-detail" in out.output
