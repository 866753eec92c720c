"""The warp model: its field at 128 px (torch and numpy agree) and at full resolution (warp.py).

Full resolution is tested on a real high-resolution pair of one person: tests/data/photos/img4.jpg
(2500 x 1728, face ~720 px) repainted from img6.jpg (face ~390 px). The models are the tiny
random reference model of conftest with a warp head set by hand: weight 1 with no displacement
(the reference's real eyes placed by their corners), a constant displacement, and weight 0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from exgan_cli.apps.retouch import retouch
from exgan_cli.files.images import load_image, luminance
from exgan_cli.model.config import ModelConfig
from exgan_cli.options import RetouchOptions
from exgan_cli.stages import faces as facelib
from exgan_cli.stages.blend import BlendConfig
from exgan_cli.stages.generate import align_for_model, exemplar_batch, generate_crops
from exgan_cli.stages.references import load_candidates
from exgan_cli.stages.selfcheck import SelfCheckConfig
from exgan_cli.stages.warp import render_warp, warp_source

from conftest import DATA, HIGHRES

HIGHRES_REF = DATA / "photos" / "img6.jpg"


def _warp_model(tmp: Path, name: str, bias: tuple[float, float, float], engine: str = "numpy", fullres: bool = True):
    """A tiny random warp model whose head outputs the constant raw fields ``bias`` (dx, dy, logit);
    ``fullres``: its config's warp_fullres."""
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import load_pretrained, save_pretrained
    from exgan_cli.stages.geometry import AlignConfig, MaskConfig

    torch.manual_seed(0)
    cfg = ModelConfig(mode="reference", base_channels=8, n_blocks=1, d_channels=8, ref_input="eyes", relight=True,
                      skips=True, warp=True, warp_fullres=fullres)
    g = Generator(cfg)
    with torch.no_grad():
        g.warp_head.bias.copy_(torch.tensor(bias))
    folder = tmp / name
    save_pretrained(folder, g, None, cfg, AlignConfig(), MaskConfig(), card="random warp test model")
    return load_pretrained(folder, engine=engine)


@pytest.fixture(scope="module")
def pair():
    rgb = load_image(HIGHRES).pixels
    found = facelib.detect_faces(rgb, detector="hog")
    cands, _ = load_candidates([HIGHRES_REF], detector="hog")
    return rgb, found, facelib.largest_face(found), max(cands, key=lambda c: c.width)


def _run(pair, model, warp: bool = True):
    rgb, found, face, cand = pair
    opts = RetouchOptions(faces="all", face_index=found.index(face), detector="hog",
                          blend=BlendConfig(warp=warp), self_check=SelfCheckConfig(enabled=False))
    return retouch(rgb, [cand], model, opts, faces=found)


def _fields(pair, model):
    rgb, _, face, cand = pair
    prep = align_for_model(rgb, face.landmarks, model)
    ref = align_for_model(cand.pixels, cand.face.landmarks, model)
    out = generate_crops(model, prep.crop[None], prep.mask[None], exemplar_batch(model, [prep], [ref])).item(0)
    return prep, ref, out


def test_torch_and_numpy_engines_give_the_same_field(tmp_path, pair):
    """The numpy engine runs the warp head and the differentiable resampling as torch does."""
    fields = {}
    for engine in ("numpy", "torch"):
        model = _warp_model(tmp_path, f"w-{engine}", (1.5, -0.7, 0.3), engine)
        with torch.no_grad():  # random but not constant fields: perturb the head's weights
            w = model.generator.t["warp_head.weight"] if engine == "numpy" else model.generator.warp_head.weight
            noise = np.random.default_rng(0).normal(0, 0.05, w.shape).astype(np.float32)
            if engine == "numpy":
                w += noise
            else:
                w += torch.from_numpy(noise)
        fields[engine] = _fields(pair, model)[2]
    a, b = fields["numpy"], fields["torch"]
    assert a.flow is not None and b.flow is not None
    assert np.abs(a.flow - b.flow).max() < 1e-3 and a.flow.std() > 0.01
    assert np.abs(a.weight - b.weight).max() < 1e-4 and a.weight.max() > 0.3
    assert np.abs(a.raw - b.raw).max() < 0.05


def test_full_weight_puts_the_references_real_eye_in_place(tmp_path, pair):
    """Weight 1, no displacement: inside the eyes the result is the reference photo's own pixels,
    sampled at the target's resolution (as sharp as a real eye), where the corner similarity puts them."""
    from exgan_cli.stages.detail import sharpness_ratio

    model = _warp_model(tmp_path, "full", (0.0, 0.0, 12.0))
    rgb, _, face, cand = pair
    res = _run(pair, model)
    assert res.faces[0].status == "retouched"
    out = res.pixels
    prep, ref, gen = _fields(pair, model)
    assert gen.weight[prep.mask > 0.5].min() > 0.99
    # the rendered content in the face's ROI, against an independent sampling of the reference photo
    src = warp_source(model, prep, ref, cand.pixels, gen.flow, gen.weight)
    lm = face.landmarks
    x0, y0 = int(lm[36:48, 0].min()) - 20, int(lm[36:48, 1].min()) - 20
    x1, y1 = int(lm[36:48, 0].max()) + 20, int(lm[36:48, 1].max()) + 20
    content = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    rendered = render_warp(content, (x0, y0, x1, y1), prep.matrix, src)
    assert src.info["weight_max"] > 0.99 and src.info["displacement_max"] < 1e-3
    # the reference eye's own corners land on the target's corners: rendered eye and reference
    # share their dark iris where the reference has it
    ref_eye = luminance(rendered)[rendered.sum(-1) > 0]
    assert ref_eye.std() > 20  # real structure, not a flat fill
    # the retouched photo's eyes are as sharp as real eyes (R of real open eyes: 1.4 to 10)
    assert sharpness_ratio(out, lm) > 1.4
    plain = _run(pair, model, warp=False).pixels
    assert sharpness_ratio(out, lm) > sharpness_ratio(plain, lm)


def test_a_model_without_warp_fullres_pastes_only_its_128_px_output(tmp_path, pair):
    """warp_fullres false in a model's config: open-eyes does not take the reference photo's pixels
    through the field (no warp record), and the result is what BlendConfig(warp=False) gives; the same
    weights with it true do take them."""
    on = _warp_model(tmp_path, "on", (0.0, 0.0, 12.0))
    off = _warp_model(tmp_path, "off128", (0.0, 0.0, 12.0), fullres=False)
    assert off.model_cfg.warp_fullres is False and on.model_cfg.warp_fullres is True
    res_off = _run(pair, off)
    sc = res_off.faces[0].self_check
    assert res_off.faces[0].status == "retouched" and "warp" not in sc["attempts"][sc["kept"]]
    assert np.array_equal(res_off.pixels, _run(pair, on, warp=False).pixels)
    res_on = _run(pair, on)
    sc = res_on.faces[0].self_check
    assert sc["attempts"][sc["kept"]]["warp"]["weight_max"] > 0.99
    assert not np.array_equal(res_on.pixels, res_off.pixels)


def test_a_displacement_moves_the_sampled_eye(tmp_path, pair):
    """A displacement d (crop pixels) samples the reference where the undisplaced field samples
    it d further on: with d = 10 photo pixels to the right, moved(x) = base(x + 10)."""
    model = _warp_model(tmp_path, "full", (0.0, 0.0, 12.0))
    rgb, _, face, cand = pair
    prep, ref, gen = _fields(pair, model)
    lm = face.landmarks
    x0, y0 = int(lm[36:42, 0].min()), int(lm[36:42, 1].mean()) - 15
    roi = (x0, y0, x0 + 120, y0 + 30)
    content = np.zeros((30, 120, 3), np.float32)
    base = render_warp(content, roi, prep.matrix, warp_source(model, prep, ref, cand.pixels, gen.flow, gen.weight))
    d = prep.matrix[:, :2] @ np.array([10.0, 0.0])  # ten photo pixels to the right, in crop pixels
    shifted = gen.flow + d.astype(np.float32)
    moved = render_warp(content, roi, prep.matrix, warp_source(model, prep, ref, cand.pixels, shifted, gen.weight))
    la, lb = luminance(base), luminance(moved)
    errs = {s: float(np.abs(lb[5:25, 20:90] - la[5:25, 20 + s : 90 + s]).mean()) for s in range(0, 21)}
    assert min(errs, key=errs.get) == 10 and errs[10] < 2.0 and errs[0] > 4 * errs[10]


def test_zero_weight_changes_nothing_that_the_plain_model_would_not(tmp_path, pair):
    """Weight ~0 everywhere: the warp stage leaves the content as it was."""
    model = _warp_model(tmp_path, "none", (0.0, 0.0, -30.0))
    rgb, _, face, cand = pair
    prep, ref, gen = _fields(pair, model)
    src = warp_source(model, prep, ref, cand.pixels, gen.flow, gen.weight)
    content = np.random.default_rng(1).uniform(0, 255, (50, 80, 3)).astype(np.float32)
    x0, y0 = int(face.landmarks[36, 0]), int(face.landmarks[36, 1]) - 25
    out = render_warp(content, (x0, y0, x0 + 80, y0 + 50), prep.matrix, src)
    assert np.array_equal(out, content) and src.info["weight_mean"] == 0.0


def test_a_warp_run_started_from_a_plain_model_begins_as_that_model(tiny_model, pair):
    """init_from_weights: every tensor of the plain reference model is copied, the warp head keeps
    its init (no displacement, weight sigmoid(warp_bias)), so G's own pixels are the plain model's
    output and the blend takes under 2% of the reference."""
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import load_pretrained
    from exgan_cli.training.checkpoint import init_from_weights

    plain = load_pretrained(tiny_model, engine="torch")
    cfg = replace(plain.model_cfg, warp=True)
    g = Generator(cfg).eval()
    init_from_weights(tiny_model, g)
    rgb, _, face, cand = pair
    prep, ref, want = _fields(pair, plain)
    warp_model = replace(plain, generator=g, model_cfg=cfg)
    got = _fields(pair, warp_model)[2]
    hole = prep.mask > 0.5
    assert np.abs(got.flow).max() == 0.0
    assert np.allclose(got.weight[hole].max(), 1 / (1 + np.exp(4.0)), atol=1e-4)
    # raw = w * moved reference + (1 - w) * G's pixels, with G's pixels the plain model's
    diff = np.abs(got.raw - want.raw)[hole]
    assert diff.mean() < 0.02 * 255 and diff.max() <= 0.018 * 255 + 1


def test_the_report_says_how_much_of_the_reference_was_mixed_half_and_half(tmp_path, pair):
    """A field that takes the reference outright mixes almost nothing; one that blends it half and
    half with G mixes everything it reaches (a ghost risk): the kept attempt's report says which."""
    def mixed(model) -> float:
        sc = _run(pair, model).faces[0].self_check
        info = sc["attempts"][sc["kept"]]["warp"]
        assert info["weight_max"] > 0.4 and info["taken"] >= 0
        return info["mixed"]

    assert mixed(_warp_model(tmp_path, "full", (0.0, 0.0, 12.0))) < 0.1
    assert mixed(_warp_model(tmp_path, "half", (0.0, 0.0, 0.0))) > 0.9
    plain = _run(pair, _warp_model(tmp_path, "off", (0.0, 0.0, 0.0)), warp=False).faces[0].self_check
    assert "warp" not in plain["attempts"][plain["kept"]]
