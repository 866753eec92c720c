"""The three bundled generators: each loads strictly and in-paints the eyes of a real face far better than OpenCV."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from exgan_cli.stages import faces

from exgan_cli.evaluation import metrics
from exgan_cli.files.images import load_image
from exgan_cli.stages.generate import align_for_model, exemplar_batch, inpaint_crops
from exgan_cli.model.weights import load_pretrained

from conftest import CHAVEZ_OPEN, ROOT

WEIGHTS = ROOT / "weights"


def _face(path):
    rgb = load_image(path).pixels
    return rgb, faces.central_face(faces.detect_faces(rgb), (rgb.shape[1], rgb.shape[0]))


@pytest.mark.parametrize("folder,mode", [("exgan-reference-128", "reference"), ("exgan-code-128", "code"), ("exgan-none-128", "none")])
def test_bundled_model_inpaints_real_eyes(folder, mode):
    model = load_pretrained(WEIGHTS / folder, device="cpu")
    assert model.model_cfg.mode == mode and model.align_cfg.resolution == 128
    (rgb, face), (ref_rgb, ref_face) = _face(CHAVEZ_OPEN[0]), _face(CHAVEZ_OPEN[1])
    target, ref = align_for_model(rgb, face.landmarks, model), align_for_model(ref_rgb, ref_face.landmarks, model)
    out = inpaint_crops(model, target.crop[None], target.mask[None], exemplar_batch(model, [target], [ref]))[0]
    assert out.shape == (128, 128, 3) and np.isfinite(out).all()
    hole = target.mask > 0.5
    result = target.crop.astype(np.float64)
    result[hole] = out[hole]
    truth = target.crop
    # OpenCV's in-painting of the same hole: the blind baseline every model must beat clearly
    telea = cv2.inpaint(truth, hole.astype(np.uint8) * 255, 3.0, cv2.INPAINT_TELEA)
    l1_model, l1_telea = metrics.l1(result, truth, hole), metrics.l1(telea, truth, hole)
    assert l1_model < 0.8 * l1_telea, (l1_model, l1_telea)
    assert metrics.detail_ratio(result, truth, hole) > 0.4  # eyes, not a smooth fill
