"""The training loop: `train(cfg)` as headed phases, in the spirit of StyleGAN2-ADA's training_loop.

Phases: read the resume point; load the data (the face cache, prepared once); start the device
(and, under torchrun, the process group); open the run folder; build the networks (steps.py);
restore a checkpoint or start from weights; then the steps, each followed by its hooks (log
line, validation score, sample grid, checkpoint); then finish (export, leave together).

Under torchrun (RANK / WORLD_SIZE set) it trains with DistributedDataParallel (NCCL on CUDA,
gloo on CPU); each rank draws its own batches, rank 0 alone logs, evaluates and writes.
"""

from __future__ import annotations

import io
import json
import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from exgan_cli.errors import DataError, ExganError, OutputError
from exgan_cli.files.images import atomic_write_bytes
from exgan_cli.training.checkpoint import (
    init_from_weights, load_module, optimizer_from_flat, read_checkpoint, rng_state, save_checkpoint, set_rng_state, trim_log,
)
from exgan_cli.training.config import (
    CHECKPOINT_META, CONFIG_FILE, LOG_FILE, RUN_FORMAT, SAMPLES_DIR, LogFn, ProgressFn, TrainConfig, TrainResult,
    dist_env, read_run_config,
)
from exgan_cli.training.dataset import FaceDataset, load_dataset
from exgan_cli.training.export import export_run
from exgan_cli.training.pairs import (
    Augment, PairSampler, cache_path, data_summary, ensure_cache, make_batch, person_lists, split_faces, validation_pairs, wait_for_file,
)
from exgan_cli.training.runtime import StopFlag, agree_stop_reason, hardware_description, start_device, wrap_for_ddp
from exgan_cli.training.steps import Networks, build_networks, evaluate_l1, sample_grid, to_tensors, train_step, update_ema

if TYPE_CHECKING:
    import torch

N_SAMPLES = 8  # rows in a sample grid


@dataclass
class _Resume:
    """The checkpoint a resumed run continues from (None, None for a new run)."""

    meta: Optional[dict] = None
    tensors: Optional[dict] = None  # dropped once loaded into the networks


@dataclass
class _Data:
    ds: FaceDataset
    cache: Path
    train_idx: np.ndarray
    val_pairs: tuple[np.ndarray, np.ndarray]
    show: tuple[np.ndarray, np.ndarray]  # the sample grid's pairs
    summary: dict  # data_summary: for the log, the checkpoint and the card


@dataclass
class _State:
    """What changes as the run goes, and what a checkpoint records of it."""

    sampler_rng: np.random.Generator
    step: int = 0
    images_seen: int = 0
    wall_before: float = 0.0  # training seconds of the runs this one resumes
    val_l1: Optional[float] = None
    commands: list = field(default_factory=list)
    hardware: list = field(default_factory=list)


@dataclass
class _Run:
    """What stays fixed while the run trains."""

    cfg: TrainConfig
    rank: int
    world: int
    device: Any
    run_dir: Path
    data: _Data
    nets: Networks
    say: Callable[[str], None]


# --------------------------------------------------------------------------------------------
# train(cfg)


def train(
    cfg: TrainConfig,
    progress: ProgressFn | None = None,
    log: LogFn | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train (or, with cfg.resume, continue training) ExGAN as cfg says; see the module doc.

    progress(stage, done, total, info) is called while preparing the cache and after each step;
    log(message) gets one-line messages (rank 0 only). `command` (the command line) is recorded
    in the checkpoint and the model card. Returns when cfg.steps are done, the time limit is
    reached, or on SIGINT/SIGTERM (after writing a checkpoint).
    """
    import torch.distributed as dist

    rank, world, local_rank = dist_env()
    say = log if (log and rank == 0) else (lambda msg: None)
    cfg, resume = _resume_point(cfg)
    data = _load_data(cfg, rank, local_rank, progress, say)
    device = start_device(cfg, world, local_rank)
    try:
        run_dir = _open_run_dir(cfg, rank, world, resume)
        nets = build_networks(cfg, device)
        state = _start_state(cfg, rank, device, nets, resume, say)
        if command:
            state.commands.append(command)
        state.hardware.append(f"{world} x {hardware_description(device)}")
        run = _Run(cfg, rank, world, device, run_dir, data, nets, say)
        stopped, wall = _train_steps(run, state, progress)
        return _finish(run, state, resume, stopped, wall)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# ---- configuration and resume state ----------------------------------------------------------


def _resume_point(cfg: TrainConfig) -> tuple[TrainConfig, _Resume]:
    """cfg.resume's checkpoint, checked against cfg (the model, the mask and the validation
    split cannot change), and cfg with the run folder filled in."""
    if not cfg.resume:
        return cfg, _Resume()
    resume_dir = Path(cfg.resume)
    saved = TrainConfig.from_dict(read_run_config(resume_dir))
    if saved.model != cfg.model or saved.mask != cfg.mask:
        raise ExganError(f"{resume_dir}: the model and mask configs cannot change when resuming")
    if (saved.split, saved.seed, saved.val_fraction, saved.min_ear, saved.val_persons, saved.exclude_persons) != (
        cfg.split, cfg.seed, cfg.val_fraction, cfg.min_ear, cfg.val_persons, cfg.exclude_persons
    ):
        raise ExganError(f"{resume_dir}: the validation split (split, seed, val_fraction, min_ear, val_persons, exclude_persons) cannot change when resuming")
    if saved.model.warp and (saved.warp_lr_mult == 1.0) != (cfg.warp_lr_mult == 1.0):
        # the head has an optimizer group of its own exactly when it learns at another rate
        raise ExganError(f"{resume_dir}: warp_lr_mult can change when resuming, but not to or from 1 "
                         f"(the run's {saved.warp_lr_mult:g}, asked {cfg.warp_lr_mult:g}): the warp head's optimizer group would change")
    meta, tensors = read_checkpoint(resume_dir)
    if not cfg.out:
        cfg = replace(cfg, out=str(resume_dir))
    return cfg, _Resume(meta, tensors)


# ---- data (prepared once, by local rank 0, before the process group exists) -----------------


def _load_data(cfg: TrainConfig, rank: int, local_rank: int, progress: ProgressFn | None, say: LogFn) -> _Data:
    if local_rank == 0:
        cache = ensure_cache(cfg, progress if rank == 0 else None, say)
    else:
        cache = cache_path(cfg)
        wait_for_file(cache)
    ds = load_dataset(cache)
    if ds.align != cfg.align:
        raise DataError(f"{cache}: faces aligned at {ds.align.resolution} px, the model wants {cfg.align.resolution}")
    train_idx, val_idx = split_faces(ds, cfg.min_ear, cfg.val_fraction, cfg.seed, cfg.split, *person_lists(cfg))
    if len(train_idx) == 0:
        raise DataError(f"{cache}: no training person has two usable (open-eyed, min EAR {cfg.min_ear}) faces")
    summary = data_summary(ds, cfg)
    val_pairs = validation_pairs(ds, val_idx, cfg.val_max, cfg.seed)
    # the sample grid shows validation pairs (train pairs when no person is held out)
    show = val_pairs if len(val_pairs[0]) else validation_pairs(ds, train_idx, 0, cfg.seed)
    show = (show[0][:N_SAMPLES], show[1][:N_SAMPLES])
    return _Data(ds, cache, train_idx, val_pairs, show, summary)


# ---- run folder ------------------------------------------------------------------------------


def _open_run_dir(cfg: TrainConfig, rank: int, world: int, resume: _Resume) -> Path:
    """The run folder, named by rank 0; rank 0 writes its config.json and trims its log to the
    checkpoint it resumes from."""
    import torch.distributed as dist

    mcfg = cfg.model
    run_dir = Path(cfg.out) if cfg.out else Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{mcfg.mode}-{mcfg.resolution}"
    if world > 1:  # the ranks' clocks may straddle a second: rank 0 names the run
        box = [str(run_dir)]
        dist.broadcast_object_list(box, src=0)
        run_dir = Path(box[0])
    if rank == 0:
        if (run_dir / CHECKPOINT_META).exists() and Path(cfg.resume or "").resolve() != run_dir.resolve():
            raise OutputError(f"{run_dir}: already holds a run (continue it with --resume {run_dir}, or pick another --out)")
        (run_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        config = {"format": RUN_FORMAT, **cfg.to_dict(), "align": cfg.align.to_dict()}
        atomic_write_bytes(run_dir / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
        trim_log(run_dir / LOG_FILE, int(resume.meta["step"]) if resume.meta is not None and (run_dir / CHECKPOINT_META).exists() else 0)
    return run_dir


# ---- counters and RNGs: fresh, from the checkpoint, or from weights ----------------------------


def _start_state(cfg: TrainConfig, rank: int, device: "torch.device", nets: Networks, resume: _Resume, say: LogFn) -> _State:
    state = _State(np.random.default_rng([cfg.seed, rank]))
    random.seed(cfg.seed + rank)
    np.random.seed((cfg.seed + rank) % 2**32)
    if resume.meta is not None:
        _restore(cfg, rank, device, nets, resume, state)
        say(f"resumed {cfg.resume} at step {state.step}")
    elif cfg.init:
        init_from_weights(Path(cfg.init), nets.g, nets.enc)
        nets.ema_g.load_state_dict(nets.g.state_dict())
        if nets.enc is not None:
            nets.ema_enc.load_state_dict(nets.enc.state_dict())
        say(f"generator{' and eye encoder' if nets.enc is not None else ''} initialised from {cfg.init}")
    return state


def _restore(cfg: TrainConfig, rank: int, device: "torch.device", nets: Networks, resume: _Resume, state: _State) -> None:
    """Networks, optimizers, counters and this rank's RNGs from the checkpoint."""
    meta, tensors = resume.meta, resume.tensors
    for name, m in nets.modules.items():
        if m is not None:
            load_module(m, tensors, name)
    for name, opt in nets.optimizers.items():
        optimizer_from_flat(opt, tensors, meta["optimizers"][name], name)
    # a resumed run may change these; G's second group, when there is one, is the warp head (steps.build_networks)
    for opt, lrs in ((nets.opt_g, (cfg.lr, cfg.lr * cfg.warp_lr_mult)), (nets.opt_d, (cfg.d_lr,))):
        for k, group in enumerate(opt.param_groups):
            group["lr"], group["betas"] = lrs[min(k, len(lrs) - 1)], cfg.betas
    state.step, state.images_seen = int(meta["step"]), int(meta["images_seen"])
    state.wall_before, state.val_l1 = float(meta["wall_time"]), meta.get("val_l1")
    state.commands, state.hardware = list(meta.get("commands", [])), list(meta.get("hardware", []))
    ranks = meta["rng"]
    if rank < len(ranks):
        set_rng_state(ranks[rank], state.sampler_rng, device)
    else:  # more processes than the checkpoint had: a fresh, distinct stream for this one
        state.sampler_rng = np.random.default_rng([cfg.seed, rank, state.step])
    resume.tensors = None  # the networks hold them now


# ---- the steps ---------------------------------------------------------------------------------


def _train_steps(run: _Run, state: _State, progress: ProgressFn | None) -> tuple[str, float]:
    """Step until cfg.steps, the time limit or a signal; returns (why it stopped, training seconds in all)."""
    cfg, data = run.cfg, run.data
    sampler = PairSampler(data.ds, data.train_idx, state.sampler_rng)
    augment = Augment(iris=cfg.augment_iris, cast=cfg.augment_cast, self_ref=cfg.augment_self)
    gen_step, d_step = wrap_for_ddp(run.nets, run.world, run.device)
    global_batch = cfg.batch_size * run.world
    run.say(
        f"run {run.run_dir}: {cfg.model.mode} model at {cfg.model.resolution} px, {data.summary['train_faces']} training faces of "
        f"{data.summary['train_persons']} persons, {len(data.val_pairs[0])} validation pairs of {data.summary['val_persons']} persons; "
        f"{run.world} x {run.device}, batch {global_batch}"
    )
    stopped = "done"
    interval = _Interval()
    info: dict = {}
    limit = cfg.minutes * 60.0
    t_start = time.perf_counter()  # training time: preparing the data and building the networks are not counted
    with StopFlag() as stop:
        while state.step < cfg.steps:
            targets, refs = sampler.sample(cfg.batch_size)
            batch = make_batch(data.ds, targets, refs, cfg.mask, state.sampler_rng, cfg.flip, cfg.model, augment)
            stats = train_step(run.nets, gen_step, d_step, to_tensors(batch, run.device), cfg)
            state.step += 1
            state.images_seen += global_batch
            update_ema(run.nets, state.step, cfg.ema_decay)
            interval.add(stats, global_batch)

            train_time = state.wall_before + time.perf_counter() - t_start
            reason = stop.reason or ("time limit" if limit and train_time >= limit else "")
            reason = agree_stop_reason(reason, state.step, cfg.steps, run.world, run.device)
            last = state.step >= cfg.steps or bool(reason)
            info = _after_step(run, state, interval, last, train_time, t_start, info)
            if progress and run.rank == 0:
                progress("train", state.step, cfg.steps, {**info, "val_l1": state.val_l1})
            if reason:
                stopped = reason
                break
    return stopped, state.wall_before + time.perf_counter() - t_start


class _Interval:
    """The losses of the steps since the last log line, and their training time (hooks excluded)."""

    def __init__(self) -> None:
        self.sums: dict = {}
        self.n, self.images, self.t0, self.paused = 0, 0, time.perf_counter(), 0.0

    def add(self, stats: dict, images: int) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.n += 1
        self.images += images

    def flush(self) -> dict:
        """Mean losses and images/s of the interval; starts the next one."""
        info = {k: float(v) / self.n for k, v in self.sums.items()}
        # training speed: the time spent evaluating and saving is not counted
        info["images_per_s"] = self.images / max(time.perf_counter() - self.t0 - self.paused, 1e-9)
        self.__init__()
        return info


# ---- after a step: log line, validation, samples, checkpoint -----------------------------------


def _after_step(run: _Run, state: _State, interval: _Interval, last: bool, train_time: float, t_start: float, info: dict) -> dict:
    """The step's hooks, as cfg's intervals (and the last step) ask; returns the latest log info."""
    cfg, step = run.cfg, state.step
    do_log = last or (cfg.log_every and step % cfg.log_every == 0)
    evaluate = last or bool(cfg.eval_every and step % cfg.eval_every == 0)
    sample = last or bool(cfg.sample_every and step % cfg.sample_every == 0)
    save = last or bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
    entry: dict = {}
    if do_log:
        info = interval.flush()
        entry = {k: round(v, 6) for k, v in info.items()}
    t_hooks = time.perf_counter()
    if evaluate or sample:
        _snapshot(run, state, evaluate, sample)
        if evaluate and state.val_l1 is not None:
            entry["val_l1"] = round(state.val_l1, 6)
    if entry and run.rank == 0:
        with open(run.run_dir / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "images": state.images_seen, "time": round(train_time, 3), **entry}) + "\n")
    if save:
        _checkpoint(run, state, state.wall_before + time.perf_counter() - t_start)
    interval.paused += time.perf_counter() - t_hooks
    return info


def _snapshot(run: _Run, state: _State, evaluate: bool, sample: bool) -> None:
    """Rank 0: the validation masked L1 and / or a sample grid of the EMA generator."""
    if run.rank != 0:
        return
    cfg, nets, data, mode = run.cfg, run.nets, run.data, run.cfg.model.mode
    if evaluate:
        state.val_l1 = evaluate_l1(nets.ema_g, nets.ema_enc, mode, data.ds, data.val_pairs, cfg.mask, run.device)
    if sample:
        from PIL import Image

        grid = sample_grid(nets.ema_g, nets.ema_enc, mode, data.ds, data.show, cfg.mask, run.device)
        buf = io.BytesIO()
        Image.fromarray(grid).save(buf, format="PNG")
        atomic_write_bytes(run.run_dir / SAMPLES_DIR / f"step_{state.step:06d}.png", buf.getvalue())


def _checkpoint(run: _Run, state: _State, wall: float) -> None:
    """Every rank's RNG state gathered, rank 0 writes the checkpoint."""
    import torch
    import torch.distributed as dist

    rng = [rng_state(state.sampler_rng, run.device)]
    if run.world > 1:
        gathered: list = [None] * run.world
        dist.all_gather_object(gathered, rng[0])
        rng = gathered
    if run.rank == 0:
        meta = {
            "step": state.step, "images_seen": state.images_seen, "wall_time": wall, "val_l1": state.val_l1,
            "world_size": run.world, "rng": rng, "commands": state.commands, "hardware": state.hardware,
            "data": run.data.summary, "cache": str(Path(run.data.cache).resolve()), "torch": torch.__version__,
        }
        save_checkpoint(run.run_dir, run.nets.modules, run.nets.optimizers, meta)


# ---- finish --------------------------------------------------------------------------------------


def _finish(run: _Run, state: _State, resume: _Resume, stopped: str, wall: float) -> TrainResult:
    import torch.distributed as dist

    cfg = run.cfg
    if state.step >= cfg.steps and resume.meta is not None and int(resume.meta["step"]) >= cfg.steps:
        run.say(f"{run.run_dir} is already at step {state.step} (of {cfg.steps}): nothing to do")
    result = TrainResult(run.run_dir, state.step, state.images_seen, wall, state.val_l1, stopped)
    if cfg.export and run.rank == 0 and stopped == "done":
        result.export_dir = export_run(run.run_dir, Path(cfg.export))  # the command is in the checkpoint
    if run.world > 1:
        # Leave together: a rank that tore down its gloo group while rank 0 was still writing
        # the checkpoint aborted now and then ("terminate called without an active exception").
        dist.barrier()
    return result
