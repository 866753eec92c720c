"""Alignment and eye masks on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from exgan_cli.stages import geometry
from exgan_cli.stages.faces import detect_faces
from exgan_cli.files.images import load_image

from conftest import CHAVEZ_CLOSED, HIGHRES, POWELL


@pytest.fixture(scope="module")
def powell_face():
    img = load_image(POWELL[0]).pixels
    return img, detect_faces(img)[0]


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    a = np.deg2rad(17.0)
    m = np.array([[1.3 * np.cos(a), -1.3 * np.sin(a), 4.0], [1.3 * np.sin(a), 1.3 * np.cos(a), -7.0]])
    got = geometry.similarity_transform(src, geometry.transform_points(src, m))
    np.testing.assert_allclose(got, m, atol=1e-9)
    assert geometry.matrix_scale(got) == pytest.approx(1.3)


def test_alignment_puts_the_template_points_in_place(powell_face):
    img, face = powell_face
    cfg = geometry.AlignConfig()
    crop, m = geometry.align_face(img, face.landmarks, cfg)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    pts = geometry.alignment_points(geometry.transform_points(face.landmarks, m))
    # A least-squares fit of five points: eye centres land within 3 px of the template.
    err = np.linalg.norm(pts - np.array(cfg.template) * cfg.resolution, axis=1)
    assert err[:2].max() < 3.0, err


def test_alignment_round_trip_is_sub_pixel(powell_face):
    img, face = powell_face
    m = geometry.align_matrix(face.landmarks)
    back = geometry.transform_points(geometry.transform_points(face.landmarks, m), geometry.invert(m))
    assert np.abs(back - face.landmarks).max() < 1e-6
    # And through pixels: the crop warped back onto the photo matches it inside the face
    # to within resampling error (checks the matrix convention of warp_to_crop).
    import cv2

    crop = geometry.warp_to_crop(img, m, 128)
    x0, y0, x1, y1 = face.box
    back_img = cv2.warpAffine(crop, geometry.invert(m), (img.shape[1], img.shape[0]))
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    diff = np.abs(back_img[inner].astype(float) - img[inner].astype(float)).mean()
    assert diff < 12.0, diff


def test_large_photo_crop_is_area_reduced_not_aliased():
    img = load_image(HIGHRES).pixels
    face = detect_faces(img)[0]
    crop, m = geometry.align_face(img, face.landmarks)
    assert geometry.matrix_scale(m) < 0.25  # a big face reduced a lot
    # The reduced crop is about as smooth as a properly area-resized one (no aliasing).
    import cv2

    lap = cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    assert lap < 2000, lap


@pytest.mark.parametrize("photo", [POWELL[0], CHAVEZ_CLOSED])
def test_eye_boxes_cover_the_eyes_and_stay_inside_the_face(photo):
    img = load_image(photo).pixels
    face = detect_faces(img)[0]
    crop, m = geometry.align_face(img, face.landmarks)
    lm = geometry.transform_points(face.landmarks, m)
    boxes = geometry.eye_boxes(lm)
    mask = geometry.boxes_to_mask(boxes, 128)
    for eye, box in zip((lm[36:42], lm[42:48]), boxes):
        x0, y0, x1, y1 = box
        assert (eye[:, 0] > x0).all() and (eye[:, 0] < x1).all()
        assert (eye[:, 1] > y0).all() and (eye[:, 1] < y1).all()
    # Inside the face outline (jaw x-range; between brows' top and nose tip), not touching each other.
    assert boxes[0][2] < boxes[1][0]
    assert boxes[0][0] > lm[0:17, 0].min() and boxes[1][2] < lm[0:17, 0].max()
    assert max(b[3] for b in boxes) < lm[30, 1]
    assert 0.03 < mask.mean() < 0.2


def test_jittered_boxes_vary_around_the_fixed_ones(powell_face):
    img, face = powell_face
    m = geometry.align_matrix(face.landmarks)
    lm = geometry.transform_points(face.landmarks, m)
    fixed = np.array(geometry.eye_boxes(lm))
    rng = np.random.default_rng(1)
    draws = np.array([geometry.eye_boxes(lm, rng=rng) for _ in range(200)])
    assert not np.allclose(draws[0], draws[1])
    assert np.abs(draws.mean(0) - fixed).max() < 1.5  # centred on the eyes
    width = fixed[0, 2] - fixed[0, 0]
    cfg = geometry.MaskConfig()
    limit = width * (cfg.jitter_clip * cfg.jitter_scale + 2 * cfg.jitter_clip * cfg.jitter_center) + 1e-6
    assert np.abs(draws - fixed).max() <= limit


def test_eye_band_holds_both_eye_boxes(powell_face):
    img, face = powell_face
    m = geometry.align_matrix(face.landmarks)
    boxes = geometry.eye_boxes(geometry.transform_points(face.landmarks, m))
    bx0, by0, bx1, by1 = geometry.eye_band(128)
    for x0, y0, x1, y1 in boxes:
        assert bx0 <= x0 and x1 <= bx1 and by0 <= y0 + 2 and y1 <= by1 + 2


def test_config_round_trip():
    a, mk = geometry.AlignConfig(resolution=64), geometry.MaskConfig(width_scale=2.0)
    assert geometry.AlignConfig.from_dict(a.to_dict()) == a
    assert geometry.MaskConfig.from_dict(mk.to_dict()) == mk
