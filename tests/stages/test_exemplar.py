"""The exemplar's eyes (exemplar.py) and the iris colour measure (eye_colour.py), on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from exgan_cli.stages import exemplar, faces, geometry
from exgan_cli.stages.eye_colour import colour_distance, colour_eyes, iris_colour
from exgan_cli.files.images import load_image
from exgan_cli.model.config import ModelConfig

from conftest import CHAVEZ_OPEN


def _aligned(path):
    rgb = load_image(path).pixels
    face = faces.central_face(faces.detect_faces(rgb), (rgb.shape[1], rgb.shape[0]))
    crop, m = geometry.align_face(rgb, face.landmarks)
    return crop, geometry.transform_points(face.landmarks, m)


@pytest.fixture(scope="module")
def pair():
    return _aligned(CHAVEZ_OPEN[0]), _aligned(CHAVEZ_OPEN[1])


def _boxes(lm):
    boxes = geometry.eye_boxes(lm)
    return boxes, geometry.boxes_to_mask(boxes, 128)


def test_a_reference_warped_onto_itself_is_itself(pair):
    (crop, lm), _ = pair
    boxes, _ = _boxes(lm)
    eyes, valid = exemplar.warp_eyes(crop, lm, lm, boxes, 128)
    v = valid > 0.5
    assert v.sum() > 2 * 200  # both eyes' grown boxes
    assert np.abs(eyes[v] - crop[v]).max() < 1e-3


def test_a_shifted_reference_lands_on_the_target_eyes(pair):
    """The reference is the target moved by (5, -3) px and its landmarks with it: the warp must
    put its eyes back exactly where the target's are."""
    (crop, lm), _ = pair
    shifted = np.roll(crop, (-3, 5), axis=(0, 1))
    boxes, _ = _boxes(lm)
    eyes, valid = exemplar.warp_eyes(shifted, lm + [5, -3], lm, boxes, 128)
    v = valid > 0.5
    assert np.abs(eyes[v] - crop[v]).mean() < 0.5


def test_relight_carries_colour_relative_to_the_skin(pair):
    """A reference that is the target under a colour cast is brought back to the target's colours."""
    (crop, lm), _ = pair
    cast = np.clip(crop.astype(np.float32) * [1.25, 1.0, 0.75], 0, 255).astype(np.uint8)
    relit = exemplar.relight(cast, lm, crop, lm)
    cheeks = exemplar.cheek_mask(lm, 128)
    before = np.abs(cast[cheeks].astype(np.float32) - crop[cheeks]).mean()
    after = np.abs(relit[cheeks] - crop[cheeks]).mean()
    assert after < 0.2 * before


def test_the_target_holes_are_never_read(pair):
    (crop, lm), (ref, ref_lm) = pair
    boxes, hole = _boxes(lm)
    cfg = ModelConfig(mode="reference", ref_input="eyes", relight=True)
    a = exemplar.pair_inputs(cfg, crop, lm, hole, boxes, ref, ref_lm, _boxes(ref_lm)[1])
    other = crop.copy()
    other[hole > 0.5] = np.random.default_rng(0).integers(0, 256, size=(int((hole > 0.5).sum()), 3))
    b = exemplar.pair_inputs(cfg, other, lm, hole, boxes, ref, ref_lm, _boxes(ref_lm)[1])
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert a["eyes_valid"].sum() > 0 and not np.array_equal(a["ref"], ref.astype(np.float32))  # relit


def test_the_generator_reads_warped_eyes_only_in_eyes_mode(pair):
    import torch

    valid = torch.ones(1, 1, 4, 4)
    valid[..., 2:] = 0  # the right half undefined: the warped eyes there must reach G as zeros
    x = {"ref": torch.ones(1, 3, 4, 4), "ref_mask": torch.zeros(1, 1, 4, 4), "eyes": torch.full((1, 3, 4, 4), 0.5),
         "eyes_valid": valid}
    eyes = exemplar.generator_exemplar(ModelConfig(mode="reference", ref_input="eyes"), x)
    face = exemplar.generator_exemplar(ModelConfig(mode="reference", ref_input="face"), x)
    assert torch.equal(eyes["ref"][..., :2], x["eyes"][..., :2]) and (eyes["ref"][..., 2:] == 0).all()
    assert torch.equal(eyes["ref_mask"], valid) and torch.equal(face["ref"], x["ref"])
    assert exemplar.generator_exemplar(ModelConfig(mode="none"), x) == {}


def test_recoloured_irises_change_the_measured_eye_colour_and_nothing_else(pair):
    (crop, lm), _ = pair
    blue = exemplar.recolour_irises(crop, lm, (25.0, -5.0, -25.0))
    changed = np.abs(blue.astype(int) - crop.astype(int)).max(axis=-1) > 0
    ys, xs = np.nonzero(changed)
    assert len(ys) > 10
    eye_pts = lm[36:48]
    assert xs.min() >= eye_pts[:, 0].min() - 1 and xs.max() <= eye_pts[:, 0].max() + 1
    assert ys.min() >= eye_pts[:, 1].min() - 1 and ys.max() <= eye_pts[:, 1].max() + 1
    before, after = iris_colour(crop, lm), iris_colour(blue, lm)
    assert after.lab[2] < before.lab[2] - 8 and after.lab[0] > before.lab[0]  # bluer and lighter
    assert colour_eyes(blue, crop, lm) > 8
    assert colour_eyes(crop, crop, lm) == 0.0


def test_eye_colour_is_relative_to_the_skin(pair):
    """The same face under another white balance keeps (nearly) the same relative iris colour."""
    (crop, lm), _ = pair
    warm = np.clip(crop.astype(np.float32) * [1.15, 1.0, 0.85], 0, 255).astype(np.uint8)
    assert colour_distance(iris_colour(warm, lm), iris_colour(crop, lm)) < 4.0
    assert iris_colour(crop, lm[:, :] + 1000) is None  # eyes outside the image: unknown, not a number
