"""The eye code of code-mode ExGAN: C maps the eye band of an aligned face to a vector.

The paper trains C as the encoder of an auto-encoder of eye regions and then uses it twice:
its code of the reference conditions G (and D), and ||C(G(z, c)) - c|| is a perceptual loss
that asks the generated eyes to have the reference's code. `EyeDecoder` is the other half of
that auto-encoder; it is only used in training.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from exgan_cli.stages.geometry import eye_band
from exgan_cli.model.config import ModelConfig, band_grid, band_size


def crop_eye_band(faces: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Crop the fixed eye band (geometry.eye_band) from aligned faces (B, C, R, R) and resize it
    to `size` (default band_size(R)). Differentiable, so losses can flow through it."""
    r = faces.shape[-1]
    x0, y0, x1, y1 = eye_band(r)
    band = faces[..., y0:y1, x0:x1]
    return F.interpolate(band, size=size or band_size(r), mode="bilinear", align_corners=False)


class EyeEncoder(nn.Module):
    """faces (B, 3, R, R) -> code (B, code_dim), from the eye band only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.base_channels
        self.convs = nn.Sequential(
            nn.Conv2d(3, c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        gh, gw = band_grid(cfg.resolution)
        # flatten rather than average-pool: where a feature is (which eye, lid or iris) matters
        self.fc = nn.Linear(4 * c * gh * gw, cfg.code_dim)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        r = self.cfg.resolution
        if tuple(faces.shape[-2:]) != (r, r):  # a band passed here would be cropped again, silently
            raise ValueError(f"EyeEncoder expects aligned faces (B, 3, {r}, {r}), got {tuple(faces.shape)}; "
                             "use encode_band for a cropped eye band")
        return self.encode_band(crop_eye_band(faces))

    def encode_band(self, band: torch.Tensor) -> torch.Tensor:
        """The code of an already cropped band (B, 3, *band_size(R))."""
        if tuple(band.shape[-2:]) != band_size(self.cfg.resolution):
            raise ValueError(f"EyeEncoder.encode_band expects (B, 3, *{band_size(self.cfg.resolution)}), "
                             f"got {tuple(band.shape)}")
        return self.fc(self.convs(band).flatten(1))


class EyeDecoder(nn.Module):
    """code (B, code_dim) -> eye band (B, 3, *band_size(R)) in [-1, 1]; trains C as an auto-encoder."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.base_channels
        self.grid = band_grid(cfg.resolution)
        self.fc = nn.Linear(cfg.code_dim, 4 * c * self.grid[0] * self.grid[1])
        layers = []
        for c_in, c_out in ((4 * c, 2 * c), (2 * c, c), (c, c)):
            # nearest upsampling + conv instead of transposed conv: no checkerboard
            up = nn.Upsample(scale_factor=2.0, mode="nearest")
            layers += [up, nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers, nn.Conv2d(c, 3, 3, padding=1), nn.Tanh())

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(code), 0.2).view(code.shape[0], -1, *self.grid)
        return self.convs(h)
