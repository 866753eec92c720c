"""The process a run lives in: its device and threads, torchrun's process group and DDP, signals.

Under torchrun (RANK / WORLD_SIZE set) training uses DistributedDataParallel (NCCL on CUDA,
gloo on CPU), one process per GPU.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import platform
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exgan_cli.training.config import TrainConfig
from exgan_cli.training.steps import Networks, generator_step_module

if TYPE_CHECKING:
    import torch


def hardware_description(device: "torch.device") -> str:
    """"<GPU name>" or "<CPU model> (<n> threads)" for the model card."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    n = torch.get_num_threads()
    return f"{cpu} ({n} CPU thread{'s' if n != 1 else ''})"


def training_device(name: str, world: int, local_rank: int) -> "torch.device":
    import torch

    from exgan_cli.model.weights import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)  # one GPU per process
    return device


class StopFlag:
    """SIGINT / SIGTERM set a flag that the loop checks after each step (a checkpoint mid-step
    would not be a state the run ever was in). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.reason = ""
        self._old: dict = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.reason = "interrupted"
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def start_device(cfg: TrainConfig, world: int, local_rank: int) -> "torch.device":
    import torch
    import torch.distributed as dist

    device = training_device(cfg.device, world, local_rank)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")  # TF32 for what runs outside bf16 autocast
    threads = cfg.threads or (max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))) if world > 1 else 0)
    if threads:
        torch.set_num_threads(threads)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    return device


def wrap_for_ddp(nets: Networks, world: int, device: "torch.device") -> tuple[Any, Any]:
    """(G's step module, D) as the step calls them: DDP-wrapped under torchrun."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    gen_step = generator_step_module(nets.g, nets.enc, nets.dec)
    d_step = nets.d
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        gen_step = DDP(gen_step, device_ids=ids)
        # D's spectral-norm vectors are buffers updated by every forward, identically on every
        # rank (same weights): no need to broadcast them, which would also clash with the
        # second, un-synchronised forward in G's step
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters else {"broadcast_buffers": False}
        d_step = DDP(nets.d, device_ids=ids, **no_sync)
    return gen_step, d_step


def agree_stop_reason(reason: str, step: int, steps: int, world: int, device: "torch.device") -> str:
    """This rank's reason to stop ("", "time limit", "interrupted"); under DDP every rank must agree."""
    if world == 1:
        return reason
    import torch
    import torch.distributed as dist

    cuda = device.type == "cuda"
    # every step on CPU; every 10 on GPUs, where .item() stalls the queue
    if step % (10 if cuda else 1) == 0 or step >= steps:
        flag = torch.tensor([2.0 if reason == "interrupted" else 1.0 if reason else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return {0: "", 1: "time limit", 2: "interrupted"}[int(flag.item())]
    return ""
