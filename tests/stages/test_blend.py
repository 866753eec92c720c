"""blend.py: feathered alpha, colour match and paste-back, with and without the detail layer.

Synthetic images only (fast): a noisy "photo", a face drawn where geometry's template puts it
(tests/_synthetic.py), and a similarity alignment between the photo and a 128 px crop.
"""

from __future__ import annotations

import numpy as np
import pytest

from exgan_cli.stages import geometry
from exgan_cli.stages.blend import BlendConfig, feather_alpha, match_colour, paste_back, photo_boxes
from exgan_cli.stages.detail import DetailConfig, DetailSource, Exemplar, sharpness_ratio

from _synthetic import synthetic_landmarks

RES = 128
SCALE = 4.0  # photo pixels per crop pixel: a ~500 px face


def _photo(seed: int = 0, size: int = 640) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured photo, its face landmarks (photo coordinates) and the photo->crop matrix."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(150, 30, (size, size, 3)).astype(np.float32), (0, 0), 8)
    grain = rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    photo = np.clip(base + grain, 0, 255).astype(np.uint8)
    lm = synthetic_landmarks(RES) * SCALE + 40.0  # the face at 4x the crop, a little inset
    lm[36:48] = synthetic_landmarks(RES, ear=0.3)[36:48] * SCALE + 40.0
    # dark eyes with a sharp edge: something for the detail to carry
    for eye in (geometry.LEFT_EYE, geometry.RIGHT_EYE):
        cv2.fillPoly(photo, [np.round(lm[eye]).astype(np.int32)], (40, 30, 30))
    return photo, lm, geometry.align_matrix(lm)


@pytest.fixture(scope="module")
def scene():
    photo, lm, matrix = _photo()
    boxes = geometry.eye_boxes(geometry.transform_points(lm, matrix))
    return photo, lm, matrix, boxes


def test_feather_alpha_is_one_inside_and_exactly_zero_far_away(scene):
    _, _, _, boxes = scene
    a = feather_alpha(boxes, RES)
    assert a.dtype == np.float32 and a.shape == (RES, RES)
    assert 0.0 <= a.min() and a.max() <= 1.0
    for x0, y0, x1, y1 in boxes:
        assert a[int((y0 + y1) / 2), int((x0 + x1) / 2)] > 0.95
    assert a[:10].max() == 0.0 and a[-10:].max() == 0.0  # forehead and chin: untouched


def test_match_colour_removes_the_offset_on_the_rim(scene):
    photo, lm, matrix, boxes = scene
    crop = geometry.warp_to_crop(photo, matrix, RES)
    shifted = crop.astype(np.float32) + np.array([12.0, -7.0, 3.0])
    out = match_colour(shifted, crop, boxes)
    assert np.allclose(out, crop.astype(np.float32), atol=1e-3)
    assert np.array_equal(match_colour(shifted, crop, boxes, BlendConfig(colour_match=False)), shifted)


def _support(photo: np.ndarray, alpha: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    import cv2

    h, w = photo.shape[:2]
    a = cv2.warpAffine(alpha, geometry.invert(matrix), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.dilate((a > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def test_paste_back_touches_only_the_alpha_support(scene):
    photo, lm, matrix, boxes = scene
    alpha = feather_alpha(boxes, RES)
    crop = np.full((RES, RES, 3), 200.0, dtype=np.float32)
    out, box = paste_back(photo, crop, alpha, matrix)
    assert out is not photo and box is not None
    support = _support(photo, alpha, matrix)
    assert np.array_equal(out[~support], photo[~support])
    x0, y0, x1, y1 = box
    assert not support[: max(0, y0 - 3)].any() and not support[y1 + 3 :].any()  # (support is dilated 2 px)
    # at an eye box centre (alpha ~1) the crop's value is what is there
    bx = photo_boxes(boxes, matrix)[0]
    cx, cy = int((bx[0] + bx[2]) / 2), int((bx[1] + bx[3]) / 2)
    assert np.abs(out[cy, cx].astype(int) - 200).max() <= 10


def test_paste_back_with_zero_alpha_changes_nothing(scene):
    photo, _, matrix, _ = scene
    out, box = paste_back(photo, np.zeros((RES, RES, 3), np.float32), np.zeros((RES, RES), np.float32), matrix)
    assert box is None and np.array_equal(out, photo)


def test_detail_paste_touches_the_same_pixels_and_is_sharper(scene):
    photo, lm, matrix, boxes = scene
    alpha = feather_alpha(boxes, RES)
    crop = geometry.warp_to_crop(photo, matrix, RES).astype(np.float32)  # a "perfect" 128 px generator
    plain, box_plain = paste_back(photo, crop, alpha, matrix)
    source = DetailSource(lm, Exemplar(photo, lm, matrix))  # the photo as its own reference
    new, box_new = paste_back(photo, crop, alpha, matrix, source)
    assert box_new == box_plain
    support = _support(photo, alpha, matrix)
    assert np.array_equal(new[~support], photo[~support])
    r_real, r_plain, r_new = (sharpness_ratio(x, lm) for x in (photo, plain, new))
    assert r_plain < 0.8 * r_real
    assert r_new == pytest.approx(r_real, rel=0.2)


def test_detail_without_exemplar_keeps_the_photo_grain(scene):
    photo, lm, matrix, boxes = scene
    alpha = feather_alpha(boxes, RES)
    flat = np.full((RES, RES, 3), 150.0, dtype=np.float32)
    new, _ = paste_back(photo, flat, alpha, matrix, DetailSource(lm, None))
    plain, _ = paste_back(photo, flat, alpha, matrix)
    # the grain in the eye boxes is as strong as on the photo's skin around them
    assert sharpness_ratio(plain, lm) < 0.5
    assert 0.7 < sharpness_ratio(new, lm) < 1.5


def test_config_defaults_and_dict():
    cfg = BlendConfig()
    assert cfg.detail is True and isinstance(cfg.detail_cfg, DetailConfig)
    d = cfg.to_dict()
    assert d["detail"] is True and d["detail_cfg"]["split"] == DetailConfig().split


def test_detail_leaves_small_faces_to_the_plain_paste():
    """A face whose 128 px crop is about as fine as the photo (LFW's ~100 px faces) lacks no
    detail: the paste is exactly the plain one."""
    photo, _, _ = _photo(size=200)
    lm = synthetic_landmarks(RES) * 1.2 + 20.0  # ~1.2 photo pixels per crop pixel
    matrix = geometry.align_matrix(lm)
    boxes = geometry.eye_boxes(geometry.transform_points(lm, matrix))
    alpha = feather_alpha(boxes, RES)
    crop = np.full((RES, RES, 3), 90.0, dtype=np.float32)
    source = DetailSource(lm, Exemplar(photo, lm, matrix))
    assert not source.applies(matrix)
    plain, _ = paste_back(photo, crop, alpha, matrix)
    new, _ = paste_back(photo, crop, alpha, matrix, source)
    assert np.array_equal(plain, new)
