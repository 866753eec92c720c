"""A training run's settings (TrainConfig), where they come from, and the run folder's layout.

Settings are read from a JSON recipe (train/*.json) or a run's own config.json and merged field
by field (commands/train.py adds the flags on top). A run folder (`cfg.out`) holds:

    config.json              the TrainConfig (with its ModelConfig and MaskConfig) and AlignConfig
    log.jsonl                one JSON object per log interval: step, losses, images/s, val L1, time
    samples/step_XXXXXX.png  rows of masked input | reference | EMA G output | truth (val pairs)
    checkpoint.safetensors   every tensor: G, D, EMA G, C, C's decoder, EMA C, both Adam states
    checkpoint.json          the rest: step, images seen, wall time, all RNG states, commands run
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional

from exgan_cli.errors import ExganError
from exgan_cli.model.config import ModelConfig
from exgan_cli.stages.geometry import AlignConfig, MaskConfig
from exgan_cli.training.dataset import SPLITS

RUN_FORMAT = "exgan-run-1"
CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"
SAMPLES_DIR = "samples"

# progress(stage, done, total, info): stage "prepare" (photos) or "train" (steps); info holds the
# latest losses and images/s while training
ProgressFn = Callable[[str, int, int, dict], None]
LogFn = Callable[[str], None]


@dataclass
class TrainConfig:
    data: Optional[str] = None  # data folder: one sub-folder of photos per person (LFW's layout)
    cache: Optional[str] = None  # aligned-face cache (.npz); default dataset.default_cache_path(data, align)
    out: Optional[str] = None  # run folder; default runs/<date>-<time>-<mode>-<resolution>, or --resume's
    resume: Optional[str] = None  # run folder whose checkpoint this run continues
    model: ModelConfig = field(default_factory=ModelConfig)  # mode, resolution, widths, loss kind and weights
    mask: MaskConfig = field(default_factory=MaskConfig)  # eye boxes and their training jitter
    batch_size: int = 16  # faces per step and per process (the global batch is this x world size)
    steps: int = 50_000  # G steps in all (a resumed run continues up to this count)
    minutes: float = 0.0  # also stop, with a checkpoint, once the run has trained this many minutes in all (across resumes); 0: no limit
    lr: float = 1e-4  # Adam learning rate of G (and, in code mode, of C and its decoder)
    d_lr: float = 1e-4  # Adam learning rate of D
    warp_lr_mult: float = 1.0  # a warp model's head (displacement and blend weight) learns this many times faster
    # than the rest of G: it starts from nothing on a trained body, and at lr it moves its blend weight's logit
    # by at most lr a step (Adam), which takes thousands of steps to open up where the reference should be taken
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of both optimizers (beta1 0.5 as usual for GANs)
    ema_decay: float = 0.999  # EMA G: ema <- d*ema + (1-d)*G after each step; d ramps up as (1+s)/(10+s)
    ae_weight: float = 1.0  # code mode: weight of the eye auto-encoder's L1 (what makes C's code meaningful)
    min_ear: float = 0.2  # usable faces: both eye aspect ratios at least this (open, not squinting)
    flip: bool = True  # mirror half of the pairs (pixels, landmarks, left/right eyes swapped)
    augment_self: float = 0.0  # share of pairs whose reference is the target photo itself, moved by a random
    # similarity and softened (pairs.self_reference): there taking the reference, bent into place, is the right
    # answer, which real pairs (another gaze, another lid) rarely show a warp model
    augment_iris: float = 0.0  # share of pairs whose target and reference irises get one random colour (exemplar.recolour_irises)
    augment_cast: float = 0.0  # share of pairs whose target and reference get independent colour casts (exemplar.colour_cast)
    val_persons: Optional[str] = None  # a file naming the validation persons (one a line); overrides split/val_fraction
    exclude_persons: Optional[str] = None  # a file naming persons kept out of training and validation
    init: Optional[str] = None  # a weights folder whose generator (and eye encoder) start this run; tensors
    # new to this config start at their init (see init_from_weights); recorded in the card
    val_fraction: float = 0.05  # persons held out whole for validation (of those with 2+ usable faces)
    split: str = "hash"  # how they are drawn (dataset.split_persons): "hash" (stable as persons come and go) or "shuffle" (older runs)
    val_max: int = 256  # at most this many validation pairs are scored (a fixed, seeded subset)
    log_every: int = 50  # steps between log.jsonl lines (losses averaged over the interval)
    eval_every: int = 1000  # steps between validation masked L1 scores (EMA G, deterministic masks); 0: end only
    sample_every: int = 1000  # steps between sample grids; 0: end only
    checkpoint_every: int = 1000  # steps between checkpoints; 0: end only (and on Ctrl-C / time limit)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda means cuda:LOCAL_RANK)
    seed: int = 0  # seeds the networks' init, the person split and the pair sampling
    threads: int = 0  # torch CPU threads (torch.set_num_threads); 0: torch's default (cores / processes under torchrun)
    workers: int = 0  # processes that prepare the cache (0: all cores)
    export: Optional[str] = None  # when training ends, export the EMA model to this weights folder

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.mask, dict):
            self.mask = MaskConfig.from_dict(self.mask)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in ("batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("log_every", "eval_every", "sample_every", "checkpoint_every", "threads", "workers", "val_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("augment_iris", "augment_cast", "augment_self"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {getattr(self, name)}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if self.warp_lr_mult <= 0:
            raise ValueError(f"warp_lr_mult must be positive, not {self.warp_lr_mult}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")

    @property
    def align(self) -> AlignConfig:
        """The alignment the cache and the model use: the default template at the model's resolution."""
        return AlignConfig(resolution=self.model.resolution)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["model"] = self.model.to_dict()
        d["mask"] = self.mask.to_dict()
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From a recipe or a run's config.json. Unknown keys are an error (a typo must not be
        ignored); "align" and "format" are accepted: they follow from the rest."""
        if not isinstance(d, dict):
            raise ValueError(f"a training config must be a JSON object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"align", "format"})
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        kwargs = {k: v for k, v in d.items() if k in known}
        if "model" in kwargs:
            kwargs["model"] = ModelConfig.from_dict(kwargs["model"])
        if "mask" in kwargs:
            mask = kwargs["mask"]
            bad = sorted(set(mask) - set(MaskConfig.__dataclass_fields__)) if isinstance(mask, dict) else ["(not an object)"]
            if bad:
                raise ValueError(f"unknown mask config keys: {', '.join(bad)}")
            kwargs["mask"] = MaskConfig.from_dict(mask)
        return cls(**kwargs)


def read_config_file(path: Path) -> dict:
    """A JSON recipe or a run's config.json as a dict; errors name the file."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExganError(f"{path}: cannot read training config: {e}") from None
    if not isinstance(d, dict):
        raise ExganError(f"{path}: a training config must be a JSON object")
    return d


def read_run_config(run_dir: Path) -> dict:
    """A run folder's config.json as a dict. A run written before the split method was recorded
    (no "split") drew its validation persons with the seeded shuffle: that is filled in, so a
    resumed, exported or evaluated run keeps its own split."""
    d = read_config_file(Path(run_dir) / CONFIG_FILE)
    d.setdefault("split", "shuffle")
    return d


def merge_config(base: TrainConfig, overrides: dict) -> TrainConfig:
    """base with `overrides` applied; nested "model" / "mask" dicts override field by field."""
    d = base.to_dict()
    for k, v in overrides.items():
        if k in ("model", "mask") and isinstance(v, dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return TrainConfig.from_dict(d)


@dataclass
class TrainResult:
    run_dir: Path
    step: int  # G steps done (in all, across resumes)
    images_seen: int  # real target faces shown to G (in all, all processes)
    wall_time: float  # seconds of training in all (across resumes)
    val_l1: Optional[float]  # the last validation masked L1 (None without validation persons)
    stopped: str  # "done" | "time limit" | "interrupted"
    export_dir: Optional[Path] = None



def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
