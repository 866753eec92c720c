"""The discriminator D: a global branch over the whole face and a local one over the eyes.

As in Iizuka et al. (2017), which ExGAN builds on, the global branch judges whether the
in-painted eyes fit the face and the local branch whether the eyes themselves look real. Both
see the exemplar too, so D can reject eyes that are real-looking but not this person's:
in reference mode the reference face is concatenated as extra channels (its eye band on the
local branch), in code mode the code enters through a projection (Miyato & Koyama 2018):
logit += <embed(code), features>. Every conv and linear is spectrally normalised, which keeps
D Lipschitz and the hinge/NS losses from exploding without a gradient penalty.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from exgan_cli.model.config import ModelConfig
from exgan_cli.model.config import band_size
from exgan_cli.model.encoder import crop_eye_band


def _branch(c_in: int, widths: list[int]) -> nn.Sequential:
    """Stride-2 4x4 convolutions (spectral-normalised), each followed by LeakyReLU."""
    layers = []
    for c_out in widths:
        layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        c_in = c_out
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """forward(image, ref=None, code=None) -> one logit per sample, shape (B,).

    The two branches' features are concatenated and read out by one linear layer (plus the
    projection term in code mode), so a single logit judges face and eyes together.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_channels
        c_in = 6 if cfg.mode == "reference" else 3
        # global: R -> 4x4 (5 halvings at 128); widths double and stop at 8d to bound the cost
        n_global = max(1, (cfg.resolution // 4).bit_length() - 1)
        gw = [min(d * 2**i, 8 * d) for i in range(n_global)]
        self.global_branch = _branch(c_in, gw)
        # local: the eye band (32x64 at 128) -> 4x8 after three halvings
        lw = [d * 2**i for i in range(3)]
        self.local_branch = _branch(c_in, lw)
        bh, bw = band_size(cfg.resolution)
        features = gw[-1] * 16 + lw[-1] * (bh // 8) * (bw // 8)
        # flatten, not pool: a 4x4 (and 4x8) grid keeps where things are, and it is cheap
        self.fc = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Linear(cfg.code_dim, features)) if cfg.mode == "code" else None

    def forward(
        self, image: torch.Tensor, ref: torch.Tensor | None = None, code: torch.Tensor | None = None
    ) -> torch.Tensor:
        """image: (B, 3, R, R) real or composited face; ref: reference face (reference mode);
        code: (B, code_dim) of the reference (code mode)."""
        mode = self.cfg.mode
        x = image
        if mode == "reference":
            if ref is None:
                raise ValueError("a reference-mode discriminator needs ref")
            x = torch.cat([image, ref], dim=1)
        if mode == "code" and code is None:
            raise ValueError("a code-mode discriminator needs code")
        g = self.global_branch(x)
        g = F.adaptive_avg_pool2d(g, 4) if g.shape[-1] != 4 else g  # other resolutions: still 4x4
        h = torch.cat([g.flatten(1), self.local_branch(crop_eye_band(x)).flatten(1)], dim=1)
        logit = self.fc(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(code) * h).sum(dim=1)
        return logit
