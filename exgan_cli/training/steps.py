"""One training step and what it needs: the networks, the G and D updates, EMA, evaluation.

Per step: G's forward once (in code mode with C encoding the reference's eye band and C's
decoder rebuilding it); one D update on real and (detached) fake; one G update (masked L1 +
adversarial through the updated D, + iris L1, + a warp model's displacement smoothness, + in code mode the code loss and the eye
auto-encoder that trains C); then the EMA copies of G (and C) follow.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from exgan_cli.stages.geometry import MaskConfig
from exgan_cli.training.config import TrainConfig
from exgan_cli.training.dataset import FaceDataset
from exgan_cli.training.pairs import make_batch

if TYPE_CHECKING:
    import torch


def to_tensors(batch: dict[str, np.ndarray], device: "torch.device", channels_last: bool = True) -> dict:
    """uint8 / float 0..255 images -> float [-1, 1] (B, 3, R, R); masks -> (B, 1, R, R)."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = {}
    for k in ("image", "ref", "eyes"):
        if k in batch:
            t = torch.from_numpy(np.ascontiguousarray(batch[k])).to(device, non_blocking=True)
            out[k] = (t.permute(0, 3, 1, 2).float() / 127.5 - 1.0).contiguous(memory_format=fmt)
    for k in ("mask", "ref_mask", "eyes_valid", "iris"):
        if k in batch:
            t = torch.from_numpy(np.ascontiguousarray(batch[k])).to(device, non_blocking=True)
            out[k] = t[:, None].float().contiguous(memory_format=fmt)
    return out


def generator_step_module(g, enc, dec):
    """G, and in code mode C and its decoder, as one module whose forward does everything the G
    side computes in a step, so that DistributedDataParallel sees one forward per backward."""
    import torch.nn as nn
    from torch.func import functional_call

    from exgan_cli.stages.exemplar import generator_exemplar
    from exgan_cli.model.encoder import crop_eye_band
    from exgan_cli.model.generator import composite

    class GeneratorStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.g, self.enc, self.dec = g, enc, dec

        def forward(self, image, mask, ref, ref_mask, eyes, eyes_valid):
            out = {}
            code = None
            if self.enc is not None:
                band = crop_eye_band(ref)
                code = self.enc.encode_band(band)
                out["band"], out["recon"] = band, self.dec(code)
            exemplar = generator_exemplar(g.cfg, {"ref": ref, "ref_mask": ref_mask, "eyes": eyes, "eyes_valid": eyes_valid})
            g_out = self.g.outputs(image * (1 - mask), mask, code=code, **exemplar)
            fake = composite(g_out["raw"], image, mask)
            if "flow" in g_out:  # a warp model: its displacement (smoothness), moved reference (alignment), weight (logged)
                for k in ("flow", "weight", "moved", "moved_valid"):
                    out[k] = g_out[k]
            out["fake"], out["code"] = fake, code
            if self.enc is not None:
                # C(fake) with C's weights held fixed: the code loss teaches G to make eyes with the
                # reference's code; it must not teach C to map anything onto that code.
                frozen = {k: v.detach() for k, v in self.enc.named_parameters()}
                out["code_fake"] = functional_call(self.enc, frozen, (fake,))
            return out

    return GeneratorStep()


def _d_inputs(mode: str, ref, code) -> dict:
    """D's exemplar inputs for the mode (code detached: D's judgement does not train C)."""
    if mode == "reference":
        return {"ref": ref}
    if mode == "code":
        return {"code": code.detach()}
    return {}


def _ema_beta(step: int, decay: float) -> float:
    # early on G moves fast and an EMA over 1000 steps would average random init into it
    return min(decay, (1.0 + step) / (10.0 + step))


def _update_ema(ema, live, beta: float) -> None:
    import torch

    with torch.no_grad():
        for pe, p in zip(ema.parameters(), live.parameters()):
            pe.lerp_(p, 1.0 - beta)
        for be, b in zip(ema.buffers(), live.buffers()):
            be.copy_(b)

# --------------------------------------------------------------------------------------------
# Networks and optimizers


@dataclass
class Networks:
    """Everything a checkpoint holds of a run's networks (enc, dec and ema_enc in code mode only)."""

    g: Any
    d: Any
    enc: Any
    dec: Any
    ema_g: Any
    ema_enc: Any
    opt_g: Any
    opt_d: Any

    @property
    def modules(self) -> dict:
        # the order of the checkpoint's "modules" list
        return {"g": self.g, "d": self.d, "ema_g": self.ema_g, "enc": self.enc, "dec": self.dec, "ema_enc": self.ema_enc}

    @property
    def optimizers(self) -> dict:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}


def build_networks(cfg: TrainConfig, device: "torch.device") -> Networks:
    """G, D (and C, its decoder), their EMA copies and both Adams, seeded with cfg.seed (the
    same on every rank: identical initial weights). The construction order fixes the init."""
    import torch

    from exgan_cli.model.discriminator import Discriminator
    from exgan_cli.model.encoder import EyeDecoder, EyeEncoder
    from exgan_cli.model.generator import Generator

    mcfg, code = cfg.model, cfg.model.mode == "code"
    torch.manual_seed(cfg.seed)
    # channels_last (NHWC) everywhere: tensor cores' layout on CUDA, and oneDNN's faster
    # convolutions on CPU (~1.35x, benchmarks/train_speed.py)
    fmt = torch.channels_last
    g = Generator(mcfg).to(device, memory_format=fmt)
    d = Discriminator(mcfg).to(device, memory_format=fmt)
    enc = EyeEncoder(mcfg).to(device, memory_format=fmt) if code else None
    dec = EyeDecoder(mcfg).to(device, memory_format=fmt) if code else None
    ema_g = Generator(mcfg).to(device, memory_format=fmt).eval().requires_grad_(False)
    ema_g.load_state_dict(g.state_dict())
    ema_enc = None
    if enc is not None:
        ema_enc = EyeEncoder(mcfg).to(device, memory_format=fmt).eval().requires_grad_(False)
        ema_enc.load_state_dict(enc.state_dict())
    # the warp head in a group of its own when it learns faster (one group otherwise, as before: runs resume)
    head = list(g.warp_head.parameters()) if mcfg.warp and cfg.warp_lr_mult != 1.0 else []
    g_params = [p for p in g.parameters() if all(p is not h for h in head)]
    g_params += [*enc.parameters(), *dec.parameters()] if enc is not None else []
    groups = [{"params": g_params}] + ([{"params": head, "lr": cfg.lr * cfg.warp_lr_mult}] if head else [])
    opt_g = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.d_lr, betas=cfg.betas)
    return Networks(g, d, enc, dec, ema_g, ema_enc, opt_g, opt_d)


# --------------------------------------------------------------------------------------------
# The step


def train_step(nets: Networks, gen_step: Any, d_step: Any, x: dict, cfg: TrainConfig) -> dict:
    """One D update and one G (+ C) update on the batch x (to_tensors); returns the detached
    losses. gen_step and d_step are generator_step_module and D, DDP-wrapped under torchrun."""
    import torch

    from exgan_cli.model import losses

    mcfg, mode, device = cfg.model, cfg.model.mode, x["image"].device
    kind, use_d = mcfg.adversarial, mcfg.adversarial_weight > 0
    # G's forward, once: its output feeds D's step (detached) and G's own losses
    with _autocast(device):
        out = gen_step(x["image"], x["mask"], x["ref"], x["ref_mask"], x["eyes"], x["eyes_valid"])
    fake = out["fake"]
    cond = _d_inputs(mode, x["ref"], out["code"])
    stats: dict[str, torch.Tensor] = {}

    # D: real and fake in one batch (D has no batch statistics, so this is the same
    # as two calls, and one forward per backward is what DDP wants)
    if use_d:
        with _autocast(device):
            both = {k: torch.cat([v, v]) for k, v in cond.items()}
            logits = d_step(torch.cat([x["image"], fake.detach()]), **both).float()
        real_logits, fake_logits = logits[: cfg.batch_size], logits[cfg.batch_size :]
        loss_d = losses.d_loss(real_logits, fake_logits, kind)
        nets.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        nets.opt_d.step()
        stats.update(loss_d=loss_d.detach(), d_real=real_logits.detach().mean(), d_fake=fake_logits.detach().mean())

    # G (+ C): masked L1 + adversarial through the updated D (+ code + auto-encoder)
    fake32 = fake.float()
    l1 = losses.masked_l1(fake32, x["image"], x["mask"])
    loss_g = mcfg.l1_weight * l1
    stats["l1"] = l1.detach()
    if "iris" in x:
        iris = losses.masked_l1(fake32, x["image"], x["iris"])
        loss_g = loss_g + mcfg.iris_weight * iris
        stats["iris"] = iris.detach()
    if use_d:
        nets.d.requires_grad_(False)  # gradients to G only; D's forward here is outside DDP
        with _autocast(device):
            adv = losses.g_adv_loss(nets.d(fake, **cond).float(), kind)
        nets.d.requires_grad_(True)
        loss_g = loss_g + mcfg.adversarial_weight * adv
        stats["adv"] = adv.detach()
    if "flow" in out:
        smooth = losses.smoothness(out["flow"].float())
        align = losses.masked_l1(out["moved"].float(), x["image"], x["mask"] * out["moved_valid"].float())
        loss_g = loss_g + mcfg.warp_smooth * smooth + mcfg.warp_align * align
        w = out["weight"].float()
        area = x["mask"].sum().clamp(min=1.0)
        if mcfg.warp_decisive > 0:  # w(1 - w): zero where the field takes the reference or leaves it
            decisive = (w * (1.0 - w) * x["mask"]).sum() / area
            loss_g = loss_g + mcfg.warp_decisive * decisive
            stats["decisive"] = decisive.detach()
        stats.update(smooth=smooth.detach(), align=align.detach(), weight=(w.detach() * x["mask"]).sum() / area)
    if mode == "code":
        code_l = losses.code_loss(out["code_fake"].float(), out["code"].float().detach())
        ae = losses.l1(out["recon"].float(), out["band"].float())
        loss_g = loss_g + mcfg.code_weight * code_l + cfg.ae_weight * ae
        stats.update(code=code_l.detach(), ae=ae.detach())
    nets.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    nets.opt_g.step()
    stats["loss_g"] = loss_g.detach()
    return stats


def update_ema(nets: Networks, step: int, decay: float) -> None:
    """EMA G (and EMA C) follow the live networks after `step` steps."""
    beta = _ema_beta(step, decay)
    _update_ema(nets.ema_g, nets.g, beta)
    if nets.enc is not None:
        _update_ema(nets.ema_enc, nets.enc, beta)


# --------------------------------------------------------------------------------------------
# Evaluation and samples (EMA G, inference's deterministic masks)


def _autocast(device: "torch.device"):
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def generate(g, enc, mode: str, x: dict) -> "torch.Tensor":
    """Composited output of G for tensors from _to_tensors (no grad)."""
    import torch

    from exgan_cli.stages.exemplar import generator_exemplar
    from exgan_cli.model.generator import composite

    with torch.no_grad():
        code = enc(x["ref"]) if (mode == "code" and enc is not None) else None
        raw = g(x["image"] * (1 - x["mask"]), x["mask"], code=code, **generator_exemplar(g.cfg, x))
        return composite(raw.float(), x["image"], x["mask"])


def evaluate_l1(
    g, enc, mode: str, ds: FaceDataset, pairs: tuple[np.ndarray, np.ndarray], mask_cfg: MaskConfig,
    device: "torch.device", batch_size: int = 32,
) -> Optional[float]:
    """Masked L1 (pixels in [-1, 1], averaged over all hole pixels) of G's in-painting of the
    pairs' targets, with the deterministic masks of inference. None when there are no pairs."""
    targets, refs = pairs
    if len(targets) == 0:
        return None
    err = holes = 0.0
    for s in range(0, len(targets), batch_size):
        b = make_batch(ds, targets[s : s + batch_size], refs[s : s + batch_size], mask_cfg, model_cfg=g.cfg)
        x = to_tensors(b, device)
        with _autocast(device):
            out = generate(g, enc, mode, x)
        m = x["mask"].expand_as(out)
        err += float(((out - x["image"]).abs() * m).sum())
        holes += float(m.sum())
    return err / max(holes, 1.0)


def sample_grid(g, enc, mode: str, ds: FaceDataset, pairs, mask_cfg: MaskConfig, device) -> np.ndarray:
    """(rows*R, 4*R, 3) uint8: per pair, masked input | reference | output | truth."""
    targets, refs = pairs
    b = make_batch(ds, targets, refs, mask_cfg, model_cfg=g.cfg)
    x = to_tensors(b, device)
    with _autocast(device):
        out = generate(g, enc, mode, x)
    masked = x["image"] * (1 - x["mask"])  # holes at 0: mid grey
    cols = [masked, x["ref"], out, x["image"]]
    grid = [(c.float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()) for c in cols]
    rows = [np.concatenate([col[i] for col in grid], axis=1) for i in range(len(targets))]
    return np.concatenate(rows, axis=0)
