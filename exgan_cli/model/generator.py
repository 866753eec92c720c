"""The in-painting generator G of Exemplar GANs (Dolhansky & Canton Ferrer, CVPR 2018).

G sees the aligned face with the eye boxes blanked out, the mask of those boxes and, depending
on the mode, an exemplar of the same person: the aligned reference photo with its own eye mask
("reference"), or a code of the reference's eyes ("code"). The network is the usual
in-painting shape (Iizuka et al. 2017): strided convolutions down to 1/4 resolution, residual
blocks with growing dilation so that the receptive field spans the whole face, and nearest
upsampling + convolution back up (no transposed convolutions, hence no checkerboard).

The warp variant (``warp: true``) adds a head beside the pixel output: per pixel a displacement
(dx, dy) that moves the warped reference eyes further, and a blend weight between that moved
reference and G's own pixels. G then decides where the person's real eye is taken and how it is
bent into place, and where it paints; open-eyes applies the same field to the reference photo at
its own resolution (stages/warp.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from exgan_cli.model.config import ModelConfig


def composite(raw: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the photo outside the holes and take only the holes from G (mask: 1 = hole)."""
    return mask * raw + (1 - mask) * image


def shift_sample(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of ``image`` (B, C, H, W) at every pixel (x, y) moved by ``flow`` (B, 2, H, W:
    dx, dy in pixels); zero outside the image. Pixel centres are at integer coordinates, as in
    OpenCV's remap and numpy_nets.shift_sample."""
    b, _, h, w = image.shape
    ys = torch.arange(h, device=image.device, dtype=flow.dtype)
    xs = torch.arange(w, device=image.device, dtype=flow.dtype)
    # grid_sample with align_corners=False: normalised x = (2x + 1) / W - 1
    gx = (2 * (xs[None, None, :] + flow[:, 0]) + 1) / w - 1
    gy = (2 * (ys[None, :, None] + flow[:, 1]) + 1) / h - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def blend_warped(pixels: torch.Tensor, ref: torch.Tensor, ref_valid: torch.Tensor, fields: torch.Tensor,
                 warp_max: float) -> dict[str, torch.Tensor]:
    """The warp head's output applied: ``fields`` (B, 3, H, W) raw -> displacement (tanh-bounded to
    ``warp_max`` pixels) and blend weight (sigmoid); the reference (zero where invalid) moved by the
    displacement, renormalised by its moved validity; the weight limited to where it is valid."""
    flow = warp_max * torch.tanh(fields[:, :2])
    moved = shift_sample(torch.cat([ref * ref_valid, ref_valid], dim=1), flow)
    valid = moved[:, 3:4].clamp(0, 1)
    moved_ref = moved[:, :3] / valid.clamp(min=1e-3)
    weight = torch.sigmoid(fields[:, 2:3]) * valid
    raw = weight * moved_ref + (1 - weight) * pixels
    return {"raw": raw, "flow": flow, "weight": weight, "pixels": pixels, "moved": moved_ref, "moved_valid": valid}


class ResBlock(nn.Module):
    """x + g * conv(act(dilated conv(act(x)))), with g a learned gain that starts at zero.

    There are no normalisation layers: batch or instance statistics would be skewed by the
    zeroed holes and make a face's result depend on its batch. Starting every residual branch
    at zero (SkipInit/ReZero) is what keeps the un-normalised stack trainable from step 0.
    """

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(x, 0.2))
        h = self.conv2(F.leaky_relu(h, 0.2))
        return x + self.gain * h


class Up(nn.Module):
    """Nearest-neighbour x2 upsampling then a 3x3 convolution: every output pixel gets the same
    number of kernel taps, unlike a transposed convolution (no checkerboard artefacts)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest")), 0.2)


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.base_channels
        # masked image (3) + mask (1), and in reference mode the reference (3) + a mask (1): the
        # aligned face and its eye mask (ref_input "face") or the warped eyes and where they are
        # defined (ref_input "eyes")
        in_channels = 4 + (4 if cfg.mode == "reference" else 0)
        self.inp = nn.Conv2d(in_channels, c, 5, padding=2)
        # 4x4 stride-2 kernels: even size, so each input pixel is covered equally often
        self.down1 = nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1)
        if cfg.mode == "code":
            # The paper tiles the code over the image and concatenates it. A convolution over a
            # spatially constant input is a per-channel constant, so adding a linear projection
            # of the code is the same thing (up to border effects) without a 256-channel input.
            self.code_in = nn.Linear(cfg.code_dim, c) if cfg.code_at_input else None
            # At the bottleneck the code scales and shifts every channel (FiLM): the shift is the
            # concatenation above again, the scale lets the code switch features on and off.
            self.code_film = nn.Linear(cfg.code_dim, 2 * 4 * c)
        self.blocks = nn.Sequential(*[ResBlock(4 * c, 2 ** (i % 4)) for i in range(cfg.n_blocks)])
        self.up1 = Up(4 * c, 2 * c)
        self.up2 = Up(2 * c, c)
        if cfg.skips:
            # Zero-initialised: a network warm-started from one without skips starts as that
            # network, and the skips grow only as far as copying detail pays.
            self.skip1 = nn.Conv2d(2 * c, 2 * c, 1)
            self.skip0 = nn.Conv2d(c, c, 1)
            for conv in (self.skip1, self.skip0):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.out = nn.Conv2d(c, 3, 3, padding=1)
        if cfg.warp:
            # displacement (2) and blend-weight logit (1): zero weights, so a warm-started network
            # begins with no displacement and weight sigmoid(warp_bias) ~ 0, i.e. as its plain self
            self.warp_head = nn.Conv2d(c, 3, 3, padding=1)
            nn.init.zeros_(self.warp_head.weight)
            with torch.no_grad():
                self.warp_head.bias.copy_(torch.tensor([0.0, 0.0, cfg.warp_bias]))

    def forward(self, *args, **kwargs) -> torch.Tensor:
        """Raw output (B, 3, H, W) in [-1, 1] for the whole face (``outputs``' "raw"); use
        `composite` (or `inpaint`) to keep the pixels outside the holes."""
        return self.outputs(*args, **kwargs)["raw"]

    def outputs(
        self,
        image_masked: torch.Tensor,
        mask: torch.Tensor,
        ref: torch.Tensor | None = None,
        ref_mask: torch.Tensor | None = None,
        code: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Everything G computes: "raw", the output in [-1, 1] for the whole face, and for a warp
        model its "flow" (B, 2, H, W, pixels), blend "weight" (B, 1, H, W), its own "pixels", and the
        "moved" reference with its "moved_valid"ity (blend_warped).

        image_masked: (B, 3, H, W) in [-1, 1], holes set to 0. mask: (B, 1, H, W), 1 = hole.
        ref, ref_mask: reference mode, the aligned reference face and its eye mask (ref_input
        "face"), or the reference's warped eyes and their validity (ref_input "eyes",
        exemplar.pair_inputs and generator_exemplar), in [-1, 1] and 0..1.
        code: code mode, (B, code_dim) from the EyeEncoder applied to the reference.
        """
        mode = self.cfg.mode
        x = [image_masked, mask]
        if mode == "reference":
            if ref is None or ref_mask is None:
                raise ValueError("a reference-mode generator needs ref and ref_mask")
            x += [ref, ref_mask]
        if mode == "code" and code is None:
            raise ValueError("a code-mode generator needs code")
        h = self.inp(torch.cat(x, dim=1))
        if mode == "code" and self.code_in is not None:
            h = h + self.code_in(code)[:, :, None, None]
        h0 = F.leaky_relu(h, 0.2)
        h1 = F.leaky_relu(self.down1(h0), 0.2)
        h = F.leaky_relu(self.down2(h1), 0.2)
        if mode == "code":
            scale, shift = self.code_film(code)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.up1(self.blocks(h))
        if self.cfg.skips:
            h = h + self.skip1(h1)
        h = self.up2(h)
        if self.cfg.skips:
            h = h + self.skip0(h0)
        pixels = torch.tanh(self.out(h))
        if not self.cfg.warp:
            return {"raw": pixels}
        return blend_warped(pixels, ref, ref_mask, self.warp_head(h), self.cfg.warp_max)

    def inpaint(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        ref: torch.Tensor | None = None,
        ref_mask: torch.Tensor | None = None,
        code: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Blank the holes of `image`, run G and composite: only the holes change."""
        raw = self(image * (1 - mask), mask, ref, ref_mask, code)
        return composite(raw, image, mask)
