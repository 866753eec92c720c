"""Losses of ExGAN training: adversarial (hinge or non-saturating), L1 reconstruction, code.

All return a scalar averaged over the batch; weighting them is the trainer's job
(ModelConfig.l1_weight, adversarial_weight, code_weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """D's loss. hinge: E[relu(1 - D(real))] + E[relu(1 + D(fake))];
    nsgan: E[softplus(-D(real))] + E[softplus(D(fake))] (= BCE with labels 1 and 0)."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "nsgan":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}")


def g_adv_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """G's adversarial loss. hinge: -E[D(fake)]; nsgan: E[softplus(-D(fake))], i.e. -log sigmoid,
    which keeps strong gradients while D still wins (unlike the saturating log(1 - D))."""
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "nsgan":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}")


def masked_l1(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean absolute error over the holes only (mask: (B, 1, H, W), 1 = hole).

    Normalised by the masked area (times channels), so the loss is a per-pixel error that does
    not shrink when the eye boxes are small; this is the paper's reconstruction loss.
    """
    mask = mask.expand_as(out)
    return ((out - target).abs() * mask).sum() / (mask.sum() + eps)


def l1(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the whole image."""
    return (out - target).abs().mean()


def code_loss(code_fake: torch.Tensor, code_ref: torch.Tensor) -> torch.Tensor:
    """||C(G(z, c)) - c||: the generated eyes should encode to the reference's code.
    Mean squared error, averaged over the batch and the code's dimensions."""
    return F.mse_loss(code_fake, code_ref)


def smoothness(flow: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of a displacement field (B, 2, H, W) between neighbouring pixels:
    a warp that bends the reference's eye as a whole, not pixel by pixel (which would tear lashes
    and catchlights into streaks)."""
    return (flow[:, :, 1:] - flow[:, :, :-1]).abs().mean() + (flow[:, :, :, 1:] - flow[:, :, :, :-1]).abs().mean()
