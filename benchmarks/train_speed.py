"""How fast are the default networks? Prints G inference faces/s and G+D training images/s.

    python benchmarks/train_speed.py [--mode reference] [--batch 16] [--steps 5] [--device auto]
                                     [--threads N] [--contiguous] [--set n_blocks=6 base_channels=32]

The training step is the one a trainer runs: G forward, D on real and (detached) fake with
its loss, then G's masked L1 + adversarial (+ code) loss through D, both with Adam. Inputs
are random: speed does not depend on the pixels. Tensors are channels_last (NHWC): on CPU
oneDNN's NHWC convolutions are ~1.35x faster than NCHW here, on CUDA it is the tensor-core
layout. On CUDA the step runs under bf16 autocast; on CPU in float32.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not
from exgan_cli.model import Discriminator, EyeEncoder, Generator, ModelConfig, losses
from exgan_cli.model.weights import resolve_device


def _inputs(cfg: ModelConfig, batch: int, device: torch.device, memory_format: torch.memory_format) -> dict:
    r = cfg.resolution
    face = torch.rand(batch, 3, r, r, device=device) * 2 - 1
    mask = torch.zeros(batch, 1, r, r, device=device)
    mask[..., r * 30 // 128 : r * 60 // 128, r * 25 // 128 : r * 103 // 128] = 1  # roughly both eye boxes
    ref = torch.rand(batch, 3, r, r, device=device) * 2 - 1
    return {
        k: v.contiguous(memory_format=memory_format)
        for k, v in dict(face=face, mask=mask, ref=ref, ref_mask=mask.clone()).items()
    }


def _time(fn, steps: int, device: torch.device) -> tuple[float, float]:
    """(best, median) seconds per call over `steps` calls, after one warm-up call (allocator,
    oneDNN/cuDNN algorithm choice). The best is the figure to compare: other processes on a
    shared machine only ever make a call slower."""
    fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def _report(what: str, unit: str, batch: int, times: tuple[float, float]) -> None:
    best, median = times
    print(f"{what}: {batch / best:.1f} {unit}/s (batch {batch}: best {best * 1000:.0f} ms, median {median * 1000:.0f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="reference", choices=["reference", "code", "none"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="override ModelConfig fields")
    ap.add_argument("--contiguous", action="store_true", help="NCHW tensors instead of channels_last")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    fmt = torch.contiguous_format if args.contiguous else torch.channels_last
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    if cuda:
        torch.backends.cudnn.benchmark = True

    overrides = dict(kv.split("=", 1) for kv in args.set)
    cfg = ModelConfig.from_dict({"mode": args.mode, **{k: json.loads(v) for k, v in overrides.items()}})
    g = Generator(cfg).to(device, memory_format=fmt)
    d = Discriminator(cfg).to(device, memory_format=fmt)
    enc = EyeEncoder(cfg).to(device, memory_format=fmt).eval().requires_grad_(False) if cfg.mode == "code" else None
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(f"device {device} ({torch.get_num_threads()} CPU threads), mode {cfg.mode}, resolution {cfg.resolution}")
    print(f"parameters: G {n(g) / 1e6:.2f}M, D {n(d) / 1e6:.2f}M" + (f", C {n(enc) / 1e6:.2f}M" if enc else ""))

    x = _inputs(cfg, args.batch, device, fmt)
    code = enc(x["ref"]) if enc is not None else None
    g_ref = dict(ref=x["ref"], ref_mask=x["ref_mask"], code=code)
    d_ref = dict(ref=x["ref"], code=code)

    g.eval()

    @torch.no_grad()
    def infer():
        with autocast():
            g.inpaint(x["face"], x["mask"], **g_ref)

    _report("G inference", "faces", args.batch, _time(infer, args.steps, device))

    g.train()
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.5, 0.999))
    kind = cfg.adversarial

    def train_step():
        with autocast():
            fake = g.inpaint(x["face"], x["mask"], **g_ref)
            loss_d = losses.d_loss(d(x["face"], **d_ref), d(fake.detach(), **d_ref), kind)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            loss_g = cfg.l1_weight * losses.masked_l1(fake, x["face"], x["mask"])
            loss_g = loss_g + cfg.adversarial_weight * losses.g_adv_loss(d(fake, **d_ref), kind)
            if enc is not None:
                loss_g = loss_g + cfg.code_weight * losses.code_loss(enc(fake), code)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    _report("G+D training step", "images", args.batch, _time(train_step, args.steps, device))


if __name__ == "__main__":
    main()
