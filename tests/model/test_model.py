"""The networks and losses at a tiny size: shapes, compositing, conditioning, hand-checked losses."""

from __future__ import annotations

import math

import pytest
import torch

from exgan_cli.stages.geometry import eye_band
from exgan_cli.model import (
    Discriminator,
    EyeDecoder,
    EyeEncoder,
    Generator,
    ModelConfig,
    band_size,
    composite,
    crop_eye_band,
    losses,
)

R = 64  # tiny: every test here runs in well under a second on 2 cores
B = 2


def tiny(mode: str, **kw) -> ModelConfig:
    return ModelConfig(mode=mode, resolution=R, base_channels=8, n_blocks=2, code_dim=16, d_channels=8, **kw)


def batch(cfg: ModelConfig, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    face = torch.rand(B, 3, R, R, generator=gen) * 2 - 1
    mask = torch.zeros(B, 1, R, R)
    mask[..., 16:30, 10:54] = 1
    ref = torch.rand(B, 3, R, R, generator=gen) * 2 - 1
    code = torch.randn(B, cfg.code_dim, generator=gen)
    return dict(face=face, mask=mask, ref=ref, ref_mask=mask.clone(), code=code)


def g_kwargs(x: dict) -> dict:
    return dict(ref=x["ref"], ref_mask=x["ref_mask"], code=x["code"])


@pytest.mark.parametrize("mode", ["reference", "code", "none"])
def test_generator_shapes_and_range(mode):
    cfg = tiny(mode)
    x = batch(cfg)
    raw = Generator(cfg)(x["face"] * (1 - x["mask"]), x["mask"], **g_kwargs(x))
    assert raw.shape == (B, 3, R, R)
    assert raw.abs().max() <= 1


@pytest.mark.parametrize("mode", ["reference", "code", "none"])
def test_inpaint_keeps_unmasked_pixels_exactly(mode):
    cfg = tiny(mode)
    x = batch(cfg)
    out = Generator(cfg).inpaint(x["face"], x["mask"], **g_kwargs(x))
    keep = x["mask"].expand_as(out) == 0
    assert torch.equal(out[keep], x["face"][keep])
    assert not torch.equal(out[~keep], x["face"][~keep])


def test_composite():
    raw, image = torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), -0.25)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1
    out = composite(raw, image, mask)
    assert torch.equal(out[..., 1:3, 1:3], raw[..., 1:3, 1:3])
    assert out.sum().item() == pytest.approx(3 * (4 * 0.5 + 12 * -0.25))


def test_generator_requires_its_exemplar():
    x = batch(tiny("reference"))
    with pytest.raises(ValueError, match="ref"):
        Generator(tiny("reference"))(x["face"], x["mask"])
    with pytest.raises(ValueError, match="code"):
        Generator(tiny("code"))(x["face"], x["mask"])


@pytest.mark.parametrize("mode", ["reference", "code"])
def test_output_depends_on_exemplar_and_gradient_reaches_it(mode):
    cfg = tiny(mode, code_at_input=True)
    g = Generator(cfg)
    # the residual gains start at 0; open them so the whole network takes part
    for b in g.blocks:
        b.gain.data.fill_(1.0)
    x = batch(cfg)
    exemplar = x["ref"] if mode == "reference" else x["code"]
    exemplar.requires_grad_(True)
    out = g.inpaint(x["face"], x["mask"], **g_kwargs(x))
    out.sum().backward()
    assert exemplar.grad is not None and exemplar.grad.abs().sum() > 0
    other = batch(cfg, seed=1)
    swapped = {**x, "ref": other["ref"], "code": other["code"]}
    with torch.no_grad():
        out2 = g.inpaint(x["face"], x["mask"], **g_kwargs(swapped))
    assert not torch.allclose(out.detach(), out2)


def test_none_mode_has_no_exemplar_inputs():
    cfg = tiny("none")
    x = batch(cfg)
    g = Generator(cfg).eval()
    with torch.no_grad():
        a = g(x["face"], x["mask"])
        b = g(x["face"], x["mask"], ref=batch(cfg, 1)["ref"], code=batch(cfg, 1)["code"])
    assert torch.equal(a, b)


def test_default_generator_size():
    n = sum(p.numel() for p in Generator(ModelConfig()).parameters())
    assert 1.5e6 < n < 2.5e6, n  # ~2M: the CPU training budget (see ModelConfig.base_channels)


@pytest.mark.parametrize("mode", ["reference", "code", "none"])
def test_discriminator_shapes_and_gradient(mode):
    cfg = tiny(mode)
    x = batch(cfg)
    d = Discriminator(cfg)
    image = x["face"].clone().requires_grad_(True)
    logits = d(image, ref=x["ref"], code=x["code"])
    assert logits.shape == (B,)
    logits.sum().backward()
    assert image.grad.abs().sum() > 0
    # the eye band reaches D twice (global and local branch): its gradient is there
    x0, y0, x1, y1 = eye_band(R)
    assert image.grad[..., y0:y1, x0:x1].abs().sum() > 0


def test_discriminator_is_spectrally_normalised():
    d = Discriminator(tiny("code"))
    parametrized = [m for m in d.modules() if hasattr(m, "parametrizations")]
    weighted = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert parametrized and len(parametrized) == len(weighted)


@pytest.mark.parametrize("resolution", [64, 128])
def test_eye_band_encoder_decoder(resolution):
    cfg = ModelConfig(mode="code", resolution=resolution, base_channels=8, code_dim=16)
    faces = torch.rand(B, 3, resolution, resolution) * 2 - 1
    band = crop_eye_band(faces)
    assert band.shape == (B, 3, *band_size(resolution))
    assert band_size(128) == (32, 64)
    enc = EyeEncoder(cfg)
    code = enc(faces)
    assert code.shape == (B, 16)
    assert torch.equal(enc.encode_band(band), code)
    with pytest.raises(ValueError, match="encode_band"):
        enc(band)  # a band is not a face: refuse rather than crop it again
    assert EyeDecoder(cfg)(code).shape == band.shape


def test_crop_eye_band_takes_the_band():
    faces = torch.zeros(1, 1, R, R)
    x0, y0, x1, y1 = eye_band(R)
    faces[..., y0:y1, x0:x1] = 1
    band = crop_eye_band(faces)
    assert torch.allclose(band, torch.ones_like(band))


def test_hinge_and_nsgan_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # hinge D: mean(relu(1 - real)) + mean(relu(1 + fake)) = (0 + 0.5)/2 + (0 + 1)/2
    assert losses.d_loss(real, fake, "hinge").item() == pytest.approx(0.75)
    assert losses.g_adv_loss(fake, "hinge").item() == pytest.approx(1.5)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus
    assert losses.d_loss(real, fake, "nsgan").item() == pytest.approx((sp(-2) + sp(-0.5)) / 2 + (sp(-3) + sp(0)) / 2)
    assert losses.g_adv_loss(fake, "nsgan").item() == pytest.approx((sp(3) + sp(0)) / 2)
    with pytest.raises(ValueError):
        losses.d_loss(real, fake, "wgan")


def test_masked_l1_is_normalised_by_the_hole():
    out, target = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    out[..., 0, 0] = 0.6  # inside the hole
    out[..., 3, 3] = 9.0  # outside: ignored
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0:2, 0:2] = 1  # 4 pixels x 3 channels
    assert losses.masked_l1(out, target, mask).item() == pytest.approx(3 * 0.6 / 12)
    assert losses.l1(out, target).item() == pytest.approx((3 * 0.6 + 3 * 9.0) / 48)
    # same error per pixel, bigger hole: same loss
    mask2 = torch.ones(1, 1, 4, 4)
    assert losses.masked_l1(torch.full_like(out, 0.5), target, mask2).item() == pytest.approx(0.5)
    assert losses.masked_l1(torch.full_like(out, 0.5), target, mask).item() == pytest.approx(0.5)


def test_code_loss():
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert losses.code_loss(a, b).item() == pytest.approx((1 + 4) / 2)


def test_config_round_trip_and_validation():
    cfg = ModelConfig(mode="code", n_blocks=3, adversarial="nsgan")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({"mode": "none"}) == ModelConfig(mode="none")
    with pytest.raises(ValueError, match="unknown model config keys: n_block"):
        ModelConfig.from_dict({"n_block": 3})
    with pytest.raises(ValueError, match="mode"):
        ModelConfig.from_dict({"mode": "exemplar"})
    with pytest.raises(ValueError, match="adversarial"):
        ModelConfig(adversarial="wgan")
    with pytest.raises(ValueError, match="integer"):
        ModelConfig.from_dict({"n_blocks": 2.5})
    with pytest.raises(ValueError, match="resolution"):
        ModelConfig(resolution=100)
