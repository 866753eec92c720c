"""Training ExGAN: pairs of faces, the training loop, checkpoints, and export to a weights folder.

`train(cfg)` is the whole loop in one function, in the spirit of StyleGAN2-ADA's
training_loop: build the data and the networks, then per step one D update and one G update
(G's in-painting of jittered eye boxes against the real eyes: masked L1 + adversarial, plus in
code mode the code loss and the eye auto-encoder that trains C), an EMA copy of G, and every N
steps a log line, a validation score, a sample grid and a checkpoint.

Data. The cache (dataset.py) holds every aligned face of a one-folder-per-person data set.
Usable faces are open-eyed (not `closed`, and both eye aspect ratios at least `min_ear`, so
squints are out too); persons with fewer than two usable faces are dropped. Whole persons are
held out for validation (dataset.split_persons; by default by a hash of their names, so that a
data folder that gains persons keeps its split). A training pair is drawn as: a target face
uniformly among the usable training faces, then a reference uniformly among the *other*
usable faces of its person. That visits every ordered pair of the paper's Cartesian
product, but a person weighs in proportion to their photos, not their photos squared: LFW's
George W. Bush (459 usable training faces) is 7.5% of the targets rather than 64% of the
pairs. The target's eye boxes jitter (geometry.eye_boxes with an rng); the reference's mask is
the deterministic one that inference uses. A pair may be mirrored (image, landmarks with
left/right swapped).

Run folder (`cfg.out`):

    config.json              the TrainConfig (with its ModelConfig and MaskConfig) and AlignConfig
    log.jsonl                one JSON object per log interval: step, losses, images/s, val L1, time
    samples/step_XXXXXX.png  rows of masked input | reference | EMA G output | truth (val pairs)
    checkpoint.safetensors   every tensor: G, D, EMA G, C, C's decoder, EMA C, both Adam states
    checkpoint.json          the rest: step, images seen, wall time, all RNG states, commands run

Checkpoints are safetensors + JSON (no pickle), each file written to a temporary name and
moved into place with os.replace; the step is in both, and a mismatch (a crash between the two
renames) is refused on resume. Resuming restores the networks, the optimizers and every RNG, so
on CPU a resumed run is bit-for-bit the run that never stopped.

Under torchrun (RANK / WORLD_SIZE set) it trains with DistributedDataParallel (NCCL on CUDA,
gloo on CPU); each rank draws its own batches, rank 0 alone logs, evaluates and writes.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import json
import os
import platform
import random
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from exgan_cli.training.dataset import SPLITS, FaceDataset, default_cache_path, load_dataset, prepare_dataset, split_persons
from exgan_cli.errors import DataError, ExganError, OutputError, WeightsError
from exgan_cli.stages.geometry import AlignConfig, MaskConfig, boxes_to_mask, eye_boxes
from exgan_cli.files.images import atomic_write_bytes
from exgan_cli.model.config import ModelConfig

if TYPE_CHECKING:
    import torch

RUN_FORMAT = "exgan-run-1"
CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"
SAMPLES_DIR = "samples"
N_SAMPLES = 8  # rows in a sample grid

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
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of both optimizers (beta1 0.5 as usual for GANs)
    ema_decay: float = 0.999  # EMA G: ema <- d*ema + (1-d)*G after each step; d ramps up as (1+s)/(10+s)
    ae_weight: float = 1.0  # code mode: weight of the eye auto-encoder's L1 (what makes C's code meaningful)
    min_ear: float = 0.2  # usable faces: both eye aspect ratios at least this (open, not squinting)
    flip: bool = True  # mirror half of the pairs (pixels, landmarks, left/right eyes swapped)
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
        for name in ("augment_iris", "augment_cast"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {getattr(self, name)}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
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


# --------------------------------------------------------------------------------------------
# Data: usable faces, pairs, masks, mirroring


def _mirror_permutation() -> np.ndarray:
    """dlib's 68 points after a horizontal flip: point k of the mirrored face is point perm[k]
    of the original (jaw, brows, nose, eyes and mouth reversed left <-> right)."""
    perm = list(range(68))
    perm[0:17] = range(16, -1, -1)  # jaw
    perm[17:27] = range(26, 16, -1)  # brows: 17..21 <-> 26..22
    perm[31:36] = range(35, 30, -1)  # nose bottom
    perm[36:42] = [45, 44, 43, 42, 47, 46]  # image-left eye <- mirrored image-right eye
    perm[42:48] = [39, 38, 37, 36, 41, 40]
    perm[48:60] = [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    perm[60:68] = [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
    return np.array(perm)


MIRROR = _mirror_permutation()


def mirror_landmarks(landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """68 crop landmarks of the horizontally flipped crop (pixel centres at integers: x -> R-1-x)."""
    lm = np.asarray(landmarks)[..., MIRROR, :].copy()
    lm[..., 0] = (resolution - 1) - lm[..., 0]
    return lm


def usable_faces(ds: FaceDataset, min_ear: float) -> np.ndarray:
    """Boolean (N,): open-eyed faces (not closed, both EARs >= min_ear) of persons with 2+ of them."""
    ok = ~ds.closed & (ds.ear.min(axis=1) >= min_ear)
    counts = np.bincount(ds.person[ok], minlength=len(ds.persons))
    return ok & (counts[ds.person] >= 2)


def read_person_list(path: str | Path) -> set[str]:
    """Person names, one a line (blank lines ignored), from a file of train/."""
    try:
        return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}
    except OSError as e:
        raise DataError(f"{path}: cannot read the person list: {e}") from None


def split_faces(
    ds: FaceDataset, min_ear: float, val_fraction: float, seed: int, method: str = "hash",
    val_persons: set[str] | None = None, exclude_persons: set[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into ds of usable faces, validation persons held out whole.

    ``val_persons`` names the validation persons outright (a list kept in train/, so that a cache
    whose eye-state flags differ cannot move the split); ``exclude_persons`` are in neither set
    (persons kept for another evaluation)."""
    idx = np.nonzero(usable_faces(ds, min_ear))[0]
    if exclude_persons:  # a validation person stays one, even when listed for another evaluation too
        drop = set(exclude_persons) - set(val_persons or ())
        idx = idx[np.array([ds.persons[ds.person[i]] not in drop for i in idx], dtype=bool)] if len(idx) else idx
    if len(idx) == 0:
        return idx, idx
    if val_persons is not None:
        is_val = np.array([ds.persons[ds.person[i]] in val_persons for i in idx], dtype=bool)
        return idx[~is_val], idx[is_val]
    if val_fraction <= 0:
        return idx, idx[:0]
    tr, va = split_persons(ds.subset(idx), val_fraction, seed, method)
    return idx[tr], idx[va]


def person_lists(cfg: "TrainConfig") -> tuple[set[str] | None, set[str] | None]:
    """cfg's validation and excluded persons, read from their files (None where not given)."""
    return (
        read_person_list(cfg.val_persons) if cfg.val_persons else None,
        read_person_list(cfg.exclude_persons) if cfg.exclude_persons else None,
    )


def _groups(ds: FaceDataset, indices: np.ndarray) -> dict[int, np.ndarray]:
    by: dict[int, list[int]] = {}
    for i in indices:
        by.setdefault(int(ds.person[i]), []).append(int(i))
    return {p: np.array(m) for p, m in by.items() if len(m) >= 2}


class PairSampler:
    """(target, reference) index pairs: a target uniform among `indices`, then a reference
    uniform among the other faces of the same person in `indices`. Never the face itself."""

    def __init__(self, ds: FaceDataset, indices: np.ndarray, rng: np.random.Generator):
        self.rng = rng
        groups = _groups(ds, indices)
        self.targets = np.array(sorted(i for m in groups.values() for i in m), dtype=np.int64)
        self._members = {int(i): m for m in groups.values() for i in m}
        if len(self.targets) == 0:
            raise DataError("no person has two usable (open-eyed) faces to train on")

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        targets = self.targets[self.rng.integers(len(self.targets), size=n)]
        refs = np.empty(n, dtype=np.int64)
        for k, t in enumerate(targets):
            members = self._members[int(t)]
            j = int(self.rng.integers(len(members) - 1))
            pos = int(np.searchsorted(members, t))  # members are sorted (they come from sorted indices)
            refs[k] = members[j + (j >= pos)]
        return targets, refs


def validation_pairs(ds: FaceDataset, indices: np.ndarray, max_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed set of (target, reference) pairs: every face of `indices` whose person has another
    one, with a seeded choice of reference; at most max_pairs of them (a seeded subset)."""
    groups = _groups(ds, indices)
    rng = np.random.default_rng([seed, 1])
    targets = np.array(sorted(i for m in groups.values() for i in m), dtype=np.int64)
    if max_pairs and len(targets) > max_pairs:
        targets = np.sort(rng.choice(targets, size=max_pairs, replace=False))
    refs = np.empty(len(targets), dtype=np.int64)
    for k, t in enumerate(targets):
        members = groups[int(ds.person[t])]
        others = members[members != t]
        refs[k] = others[rng.integers(len(others))]
    return targets, refs


def make_batch(
    ds: FaceDataset,
    targets: np.ndarray,
    refs: np.ndarray,
    mask_cfg: MaskConfig,
    rng: np.random.Generator | None = None,
    flip: bool = False,
    model_cfg: ModelConfig | None = None,
    augment: "Augment | None" = None,
) -> dict[str, np.ndarray]:
    """Arrays for G and D: image (B, R, R, 3) uint8; mask (B, R, R) float32, 1 = hole; and the
    exemplar inputs of exemplar.pair_inputs for ``model_cfg``: ref, eyes (B, R, R, 3) float32
    0..255, ref_mask, eyes_valid (B, R, R).

    With `rng` (training) the target's eye boxes jitter and, with `flip`, each pair is mirrored
    with probability 1/2 (target and reference together, so a person's asymmetries stay on the
    same side); ``augment`` adds the colour augmentations. Without (validation) the masks are
    inference's deterministic ones.
    """
    from exgan_cli.stages.exemplar import colour_cast, pair_inputs, random_iris_colour, recolour_irises

    model_cfg = model_cfg or ModelConfig()
    r = ds.align.resolution
    n = len(targets)
    flips = rng.random(n) < 0.5 if (rng is not None and flip) else np.zeros(n, dtype=bool)
    image = ds.crops[targets].copy()
    ref = ds.crops[refs].copy()
    lm_t = ds.landmarks[targets].astype(np.float64)
    lm_r = ds.landmarks[refs].astype(np.float64)
    if flips.any():
        image[flips] = image[flips, :, ::-1]
        ref[flips] = ref[flips, :, ::-1]
        lm_t[flips] = mirror_landmarks(lm_t[flips], r)
        lm_r[flips] = mirror_landmarks(lm_r[flips], r)
    need_iris = model_cfg.iris_weight > 0 or (augment is not None and augment.iris > 0)
    iris_t = _iris_weights(ds, targets, flips) if need_iris else None
    if augment is not None and rng is not None:
        iris_r = _iris_weights(ds, refs, flips) if augment.iris > 0 else None
        for k in range(n):
            # a draw only when the augmentation is on: runs without it keep their batches (and exact resume)
            if augment.iris > 0 and rng.random() < augment.iris:  # one iris colour for both: only the reference can tell it
                colour = random_iris_colour(rng)
                image[k] = recolour_irises(image[k], lm_t[k], colour, iris_t[k])
                ref[k] = recolour_irises(ref[k], lm_r[k], colour, iris_r[k])
            if augment.cast > 0 and rng.random() < augment.cast:  # independent casts: colour must be read relative to the skin
                image[k] = colour_cast(image[k], rng)
                ref[k] = colour_cast(ref[k], rng)
    boxes = [eye_boxes(lm, mask_cfg, rng=rng) for lm in lm_t]
    mask = np.stack([boxes_to_mask(b, r) for b in boxes])
    ref_mask = np.stack([boxes_to_mask(eye_boxes(lm, mask_cfg), r) for lm in lm_r])
    ex = [pair_inputs(model_cfg, image[k], lm_t[k], mask[k], boxes[k], ref[k], lm_r[k], ref_mask[k]) for k in range(n)]
    batch = {"image": image, "mask": mask}
    if model_cfg.iris_weight > 0:
        batch["iris"] = iris_t * mask
    for key in ("ref", "ref_mask", "eyes", "eyes_valid"):
        batch[key] = np.stack([e[key] for e in ex])
    return batch


def _iris_weights(ds: FaceDataset, indices: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """exemplar.iris_weight of the dataset's faces (B, R, R), mirrored where flipped. Computed once
    per face from the real crop, before any augmentation, and kept on the dataset object."""
    from exgan_cli.stages.exemplar import iris_weight

    store = ds.__dict__.setdefault("_iris_weights", {})
    out = []
    for i, f in zip(indices, flips):
        w = store.get(int(i))
        if w is None:
            w = store[int(i)] = iris_weight(ds.crops[i], ds.landmarks[i].astype(np.float64)).astype(np.float16)
        out.append(w[:, ::-1] if f else w)
    return np.stack(out).astype(np.float32)


@dataclass(frozen=True)
class Augment:
    """Training-only colour augmentations (exemplar.py), as probabilities per pair."""

    iris: float = 0.0  # paint one random iris colour into both the target's and the reference's irises
    cast: float = 0.0  # give target and reference independent random white balance and exposure


def _to_tensors(batch: dict[str, np.ndarray], device: "torch.device", channels_last: bool = True) -> dict:
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


# --------------------------------------------------------------------------------------------
# Networks


def _generator_step_module(g, enc, dec):
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
            raw = self.g(image * (1 - mask), mask, code=code, **exemplar)
            fake = composite(raw, image, mask)
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
# Evaluation and samples


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
        x = _to_tensors(b, device)
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
    x = _to_tensors(b, device)
    with _autocast(device):
        out = generate(g, enc, mode, x)
    masked = x["image"] * (1 - x["mask"])  # holes at 0: mid grey
    cols = [masked, x["ref"], out, x["image"]]
    grid = [(c.float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()) for c in cols]
    rows = [np.concatenate([col[i] for col in grid], axis=1) for i in range(len(targets))]
    return np.concatenate(rows, axis=0)


# --------------------------------------------------------------------------------------------
# Checkpoints (safetensors for tensors, JSON for everything else; no pickle)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rng_state(sampler_rng: np.random.Generator, device: "torch.device") -> dict:
    import torch

    np_global = np.random.get_state()
    state = {
        "numpy": sampler_rng.bit_generator.state,
        "numpy_global": [np_global[0], np_global[1].tolist(), int(np_global[2]), int(np_global[3]), float(np_global[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "torch": _b64(torch.get_rng_state().numpy().tobytes()),
    }
    if device.type == "cuda":
        state["cuda"] = _b64(torch.cuda.get_rng_state(device).numpy().tobytes())
    return state


def _set_rng_state(state: dict, sampler_rng: np.random.Generator, device: "torch.device") -> None:
    import torch

    sampler_rng.bit_generator.state = state["numpy"]
    g = state["numpy_global"]
    np.random.set_state((g[0], np.array(g[1], dtype=np.uint32), g[2], g[3], g[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["cuda"])), dtype=torch.uint8), device)


def _optimizer_to_flat(opt, prefix: str) -> tuple[dict, dict]:
    """An optimizer's state_dict as (tensors for safetensors, JSON-able rest)."""
    import torch

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.state.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "state_ids": sorted(sd["state"]), "scalars": scalars}


def _optimizer_from_flat(opt, tensors: dict, meta: dict, prefix: str) -> None:
    state: dict[int, dict] = {int(pid): {} for pid in meta["state_ids"]}
    head = f"{prefix}.state."
    for key, v in tensors.items():
        if key.startswith(head):
            pid, name = key[len(head) :].split(".", 1)
            state[int(pid)][name] = v
    for pid, d in meta["scalars"].items():
        state[int(pid)].update(d)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run_dir: Path, modules: dict, optimizers: dict, meta: dict) -> None:
    """checkpoint.safetensors (module tensors under "<name>.", optimizer tensors under
    "<opt>.state.<param>.<key>") and checkpoint.json (meta + optimizer hyper-parameters)."""
    from safetensors.torch import save

    tensors, opt_meta = {}, {}
    for name, m in modules.items():
        if m is not None:
            tensors.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
    for name, opt in optimizers.items():
        t, rest = _optimizer_to_flat(opt, name)
        tensors.update(t)
        opt_meta[name] = rest
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {**meta, "format": RUN_FORMAT, "optimizers": opt_meta, "modules": [k for k, m in modules.items() if m is not None]}
    atomic_write_bytes(run_dir / CHECKPOINT_TENSORS, save(tensors, metadata={"format": "pt", "step": str(meta["step"])}))
    atomic_write_bytes(run_dir / CHECKPOINT_META, (json.dumps(meta) + "\n").encode("utf-8"))


def read_checkpoint(run_dir: Path) -> tuple[dict, dict]:
    """(meta from checkpoint.json, tensors from checkpoint.safetensors) of a run folder, checked
    to be the same step."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    meta_path, tensor_path = run_dir / CHECKPOINT_META, run_dir / CHECKPOINT_TENSORS
    if not meta_path.is_file() or not tensor_path.is_file():
        raise WeightsError(f"{run_dir}: no checkpoint ({CHECKPOINT_META} and {CHECKPOINT_TENSORS})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with safe_open(str(tensor_path), "pt") as f:
            step = (f.metadata() or {}).get("step")
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError, SafetensorError) as e:
        raise WeightsError(f"{run_dir}: unreadable checkpoint: {e}") from None
    if meta.get("format") != RUN_FORMAT:
        raise WeightsError(f"{meta_path}: not an {RUN_FORMAT} checkpoint")
    if str(meta.get("step")) != step:
        raise WeightsError(f"{run_dir}: {CHECKPOINT_META} (step {meta.get('step')}) and {CHECKPOINT_TENSORS} (step {step}) differ")
    return meta, tensors


def init_from_weights(folder: Path, g, enc=None) -> None:
    """Start G (and the eye encoder C) from an exported model folder of the same mode: every
    tensor whose name and shape match is copied. A reference generator's input convolution is
    copied for the target's channels only when the exemplar channels changed meaning (a "face"
    model starting an "eyes" one); those start at zero, so the warm start is the old in-painter
    and the exemplar's weight grows from there. New modules (G's skips) keep their own init."""
    import torch
    from safetensors.torch import load_file

    from exgan_cli.model.weights import CONFIG_FILE as MODEL_CONFIG, _read_config

    folder = Path(folder)
    old_cfg = _read_config(folder / MODEL_CONFIG, str(folder))[0]
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError) as e:
        raise WeightsError(f"{folder}: cannot start from these weights: {e}") from None
    if old_cfg.mode != g.cfg.mode:
        raise WeightsError(f"{folder}: a {old_cfg.mode} model cannot start a {g.cfg.mode} run")
    same_exemplar = old_cfg.ref_input == g.cfg.ref_input
    copied = 0
    with torch.no_grad():
        for prefix, module in (("generator.", g), ("encoder.", enc)):
            if module is None:
                continue
            for name, p in module.state_dict().items():
                src = tensors.get(prefix + name)
                if src is None or src.shape != p.shape:
                    continue
                if prefix == "generator." and name == "inp.weight" and g.cfg.mode == "reference" and not same_exemplar:
                    p.zero_()
                    p[:, :4].copy_(src[:, :4])
                else:
                    p.copy_(src)
                copied += 1
    if copied < len([k for k in tensors if k.startswith("generator.")]):
        raise WeightsError(f"{folder}: only {copied} of its tensors fit this run's networks (other widths or depth?)")


def _load_module(module, tensors: dict, prefix: str) -> None:
    got = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(got, strict=True)


# --------------------------------------------------------------------------------------------
# Environment


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


def _dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _training_device(name: str, world: int, local_rank: int) -> "torch.device":
    import torch

    from exgan_cli.model.weights import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)  # one GPU per process
    return device


def cache_path(cfg: TrainConfig) -> Path:
    """Where cfg's face cache is: cfg.cache, or the default for cfg.data at the model's resolution."""
    if cfg.cache:
        return Path(cfg.cache).expanduser()
    if cfg.data:
        return default_cache_path(Path(cfg.data), cfg.align)
    raise DataError("no data: give a data folder (--data) or a prepared cache (--cache)")


def ensure_cache(cfg: TrainConfig, progress: ProgressFn | None = None, log: LogFn | None = None) -> Path:
    """The cache file for cfg, prepared from cfg.data first when it is not there."""
    cache = cache_path(cfg)
    if cache.is_file():
        return cache
    if not cfg.data:
        raise DataError(f"{cache}: no such cache, and no data folder (--data) to prepare it from")
    if log:
        log(f"preparing {cfg.data} -> {cache} (once; later runs reuse it)")
    cb = (lambda done, total: progress("prepare", done, total, {})) if progress else None
    return prepare_dataset(Path(cfg.data), cache, cfg.align, workers=cfg.workers, progress=cb)


def _wait_for_file(path: Path, poll: float = 2.0) -> None:
    """Other ranks wait while local rank 0 prepares the cache (written atomically)."""
    while not path.is_file():
        time.sleep(poll)


def data_summary(ds: FaceDataset, cfg: TrainConfig) -> dict:
    """Counts for the log, the card and `--prepare-only`."""
    ok = ~ds.closed & (ds.ear.min(axis=1) >= cfg.min_ear)
    usable = usable_faces(ds, cfg.min_ear)
    tr, va = split_faces(ds, cfg.min_ear, cfg.val_fraction, cfg.seed, cfg.split, *person_lists(cfg))
    return {
        "data_dir": ds.meta.get("data_dir"),
        "photos": int(ds.meta.get("photos_seen", len(ds))),
        "faces": len(ds),
        "persons": int(len(np.unique(ds.person))),
        "closed": int(ds.closed.sum()),
        "squinting": int((~ds.closed & ~ok).sum()),
        "usable": int(usable.sum()),
        "usable_persons": int(len(np.unique(ds.person[usable]))),
        "train_faces": int(len(tr)),
        "train_persons": int(len(np.unique(ds.person[tr]))),
        "val_faces": int(len(va)),
        "val_persons": int(len(np.unique(ds.person[va]))),
    }


def _trim_log(path: Path, step: int) -> None:
    """Keep the log lines up to `step` (those after the checkpoint a run resumes from belong to
    steps that will be done again); step 0: start a fresh log."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode("utf-8"))


class _StopFlag:
    """SIGINT / SIGTERM set a flag that the loop checks after each step (a checkpoint mid-step
    would not be a state the run ever was in). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.reason = ""
        self._old: dict = {}

    def __enter__(self) -> "_StopFlag":
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


# --------------------------------------------------------------------------------------------
# The training loop


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
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from exgan_cli.model import losses
    from exgan_cli.model.discriminator import Discriminator
    from exgan_cli.model.encoder import EyeDecoder, EyeEncoder
    from exgan_cli.model.generator import Generator

    rank, world, local_rank = _dist_env()
    say = log if (log and rank == 0) else (lambda msg: None)

    # ---- configuration, run folder, resume state ------------------------------------------
    resume_meta, resume_tensors = None, None
    if cfg.resume:
        resume_dir = Path(cfg.resume)
        saved = TrainConfig.from_dict(read_run_config(resume_dir))
        if saved.model != cfg.model or saved.mask != cfg.mask:
            raise ExganError(f"{resume_dir}: the model and mask configs cannot change when resuming")
        if (saved.split, saved.seed, saved.val_fraction, saved.min_ear, saved.val_persons, saved.exclude_persons) != (
            cfg.split, cfg.seed, cfg.val_fraction, cfg.min_ear, cfg.val_persons, cfg.exclude_persons
        ):
            raise ExganError(f"{resume_dir}: the validation split (split, seed, val_fraction, min_ear, val_persons, exclude_persons) cannot change when resuming")
        resume_meta, resume_tensors = read_checkpoint(resume_dir)
        if not cfg.out:
            cfg = replace(cfg, out=str(resume_dir))
    mcfg, mode = cfg.model, cfg.model.mode

    # ---- data (prepared once, by local rank 0, before the process group exists) -------------
    if local_rank == 0:
        cache = ensure_cache(cfg, progress if rank == 0 else None, say)
    else:
        cache = cache_path(cfg)
        _wait_for_file(cache)
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

    # ---- device, threads, process group ------------------------------------------------------
    device = _training_device(cfg.device, world, local_rank)
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
    try:
        run_dir = Path(cfg.out) if cfg.out else Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{mode}-{mcfg.resolution}"
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
            _trim_log(run_dir / LOG_FILE, int(resume_meta["step"]) if resume_meta is not None and (run_dir / CHECKPOINT_META).exists() else 0)

        # ---- networks and optimizers (same seed on every rank: identical initial weights) -----
        torch.manual_seed(cfg.seed)
        # channels_last (NHWC) everywhere: tensor cores' layout on CUDA, and oneDNN's faster
        # convolutions on CPU (~1.35x, benchmarks/train_speed.py)
        fmt = torch.channels_last
        g = Generator(mcfg).to(device, memory_format=fmt)
        d = Discriminator(mcfg).to(device, memory_format=fmt)
        enc = EyeEncoder(mcfg).to(device, memory_format=fmt) if mode == "code" else None
        dec = EyeDecoder(mcfg).to(device, memory_format=fmt) if mode == "code" else None
        ema_g = Generator(mcfg).to(device, memory_format=fmt).eval().requires_grad_(False)
        ema_g.load_state_dict(g.state_dict())
        ema_enc = None
        if enc is not None:
            ema_enc = EyeEncoder(mcfg).to(device, memory_format=fmt).eval().requires_grad_(False)
            ema_enc.load_state_dict(enc.state_dict())
        g_params = list(g.parameters()) + ([*enc.parameters(), *dec.parameters()] if enc is not None else [])
        opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(d.parameters(), lr=cfg.d_lr, betas=cfg.betas)
        modules = {"g": g, "d": d, "ema_g": ema_g, "enc": enc, "dec": dec, "ema_enc": ema_enc}
        optimizers = {"opt_g": opt_g, "opt_d": opt_d}

        sampler_rng = np.random.default_rng([cfg.seed, rank])
        random.seed(cfg.seed + rank)
        np.random.seed((cfg.seed + rank) % 2**32)
        step, images_seen, wall_before, val_l1 = 0, 0, 0.0, None
        commands, hardware = [], []
        if resume_meta is not None:
            for name, m in modules.items():
                if m is not None:
                    _load_module(m, resume_tensors, name)
            for name, opt in optimizers.items():
                _optimizer_from_flat(opt, resume_tensors, resume_meta["optimizers"][name], name)
            for opt, lr in ((opt_g, cfg.lr), (opt_d, cfg.d_lr)):  # a resumed run may change these
                for group in opt.param_groups:
                    group["lr"], group["betas"] = lr, cfg.betas
            step, images_seen = int(resume_meta["step"]), int(resume_meta["images_seen"])
            wall_before, val_l1 = float(resume_meta["wall_time"]), resume_meta.get("val_l1")
            commands, hardware = list(resume_meta.get("commands", [])), list(resume_meta.get("hardware", []))
            ranks = resume_meta["rng"]
            if rank < len(ranks):
                _set_rng_state(ranks[rank], sampler_rng, device)
            else:  # more processes than the checkpoint had: a fresh, distinct stream for this one
                sampler_rng = np.random.default_rng([cfg.seed, rank, step])
            del resume_tensors
            say(f"resumed {cfg.resume} at step {step}")
        elif cfg.init:
            init_from_weights(Path(cfg.init), g, enc)
            ema_g.load_state_dict(g.state_dict())
            if enc is not None:
                ema_enc.load_state_dict(enc.state_dict())
            say(f"generator{' and eye encoder' if enc is not None else ''} initialised from {cfg.init}")
        if command:
            commands.append(command)
        hardware.append(f"{world} x {hardware_description(device)}")
        sampler = PairSampler(ds, train_idx, sampler_rng)
        augment = Augment(iris=cfg.augment_iris, cast=cfg.augment_cast)

        gen_step = _generator_step_module(g, enc, dec)
        d_step = d
        if world > 1:
            ids = [device.index] if cuda else None
            gen_step = DDP(gen_step, device_ids=ids)
            # D's spectral-norm vectors are buffers updated by every forward, identically on every
            # rank (same weights): no need to broadcast them, which would also clash with the
            # second, un-synchronised forward in G's step
            no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters else {"broadcast_buffers": False}
            d_step = DDP(d, device_ids=ids, **no_sync)

        kind = mcfg.adversarial
        use_d = mcfg.adversarial_weight > 0
        global_batch = cfg.batch_size * world
        say(
            f"run {run_dir}: {mode} model at {mcfg.resolution} px, {summary['train_faces']} training faces of "
            f"{summary['train_persons']} persons, {len(val_pairs[0])} validation pairs of {summary['val_persons']} persons; "
            f"{world} x {device}, batch {global_batch}"
        )

        def write_log(entry: dict) -> None:
            if rank == 0:
                with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")

        def checkpoint(wall: float) -> None:
            rng = [_rng_state(sampler_rng, device)]
            if world > 1:
                gathered: list = [None] * world
                dist.all_gather_object(gathered, rng[0])
                rng = gathered
            if rank == 0:
                meta = {
                    "step": step, "images_seen": images_seen, "wall_time": wall, "val_l1": val_l1,
                    "world_size": world, "rng": rng, "commands": commands, "hardware": hardware,
                    "data": summary, "cache": str(Path(cache).resolve()), "torch": torch.__version__,
                }
                save_checkpoint(run_dir, modules, optimizers, meta)

        def snapshot(evaluate: bool, sample: bool) -> None:
            nonlocal val_l1
            if rank != 0:
                return
            if evaluate:
                val_l1 = evaluate_l1(ema_g, ema_enc, mode, ds, val_pairs, cfg.mask, device)
            if sample:
                from PIL import Image

                grid = sample_grid(ema_g, ema_enc, mode, ds, show, cfg.mask, device)
                path = run_dir / SAMPLES_DIR / f"step_{step:06d}.png"
                buf = io.BytesIO()
                Image.fromarray(grid).save(buf, format="PNG")
                atomic_write_bytes(path, buf.getvalue())

        # ---- the loop ----------------------------------------------------------------------
        stopped = "done"
        sums: dict[str, torch.Tensor] = {}
        n_sum, t_interval, img_interval, paused = 0, time.perf_counter(), 0, 0.0
        info: dict = {}
        limit = cfg.minutes * 60.0
        t_start = time.perf_counter()  # training time: preparing the data and building the networks are not counted
        with _StopFlag() as stop:
            while step < cfg.steps:
                targets, refs = sampler.sample(cfg.batch_size)
                x = _to_tensors(make_batch(ds, targets, refs, cfg.mask, sampler_rng, cfg.flip, mcfg, augment), device)

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
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
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
                    d.requires_grad_(False)  # gradients to G only; D's forward here is outside DDP
                    with _autocast(device):
                        adv = losses.g_adv_loss(d(fake, **cond).float(), kind)
                    d.requires_grad_(True)
                    loss_g = loss_g + mcfg.adversarial_weight * adv
                    stats["adv"] = adv.detach()
                if mode == "code":
                    code_l = losses.code_loss(out["code_fake"].float(), out["code"].float().detach())
                    ae = losses.l1(out["recon"].float(), out["band"].float())
                    loss_g = loss_g + mcfg.code_weight * code_l + cfg.ae_weight * ae
                    stats.update(code=code_l.detach(), ae=ae.detach())
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                stats["loss_g"] = loss_g.detach()

                step += 1
                images_seen += global_batch
                beta = _ema_beta(step, cfg.ema_decay)
                _update_ema(ema_g, g, beta)
                if enc is not None:
                    _update_ema(ema_enc, enc, beta)
                for k, v in stats.items():
                    sums[k] = sums[k] + v if k in sums else v
                n_sum += 1
                img_interval += global_batch

                # stop? (time limit, Ctrl-C / SIGTERM); under DDP every rank must agree
                train_time = wall_before + time.perf_counter() - t_start
                reason = stop.reason or ("time limit" if limit and train_time >= limit else "")
                if world > 1:  # every step on CPU; every 10 on GPUs, where .item() stalls the queue
                    if step % (10 if cuda else 1) == 0 or step >= cfg.steps:
                        flag = torch.tensor([2.0 if reason == "interrupted" else 1.0 if reason else 0.0], device=device)
                        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                        reason = {0: "", 1: "time limit", 2: "interrupted"}[int(flag.item())]
                    else:
                        reason = ""
                last = step >= cfg.steps or bool(reason)

                do_log = last or (cfg.log_every and step % cfg.log_every == 0)
                evaluate = last or bool(cfg.eval_every and step % cfg.eval_every == 0)
                sample = last or bool(cfg.sample_every and step % cfg.sample_every == 0)
                save = last or bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
                entry: dict = {}
                if do_log:
                    info = {k: float(v) / n_sum for k, v in sums.items()}
                    # training speed: the time spent evaluating and saving is not counted
                    info["images_per_s"] = img_interval / max(time.perf_counter() - t_interval - paused, 1e-9)
                    entry = {k: round(v, 6) for k, v in info.items()}
                    sums, n_sum, img_interval, t_interval, paused = {}, 0, 0, time.perf_counter(), 0.0
                t_hooks = time.perf_counter()
                if evaluate or sample:
                    snapshot(evaluate, sample)
                    if evaluate and val_l1 is not None:
                        entry["val_l1"] = round(val_l1, 6)
                if entry:
                    write_log({"step": step, "images": images_seen, "time": round(train_time, 3), **entry})
                if save:
                    checkpoint(wall_before + time.perf_counter() - t_start)
                paused += time.perf_counter() - t_hooks
                if progress and rank == 0:
                    progress("train", step, cfg.steps, {**info, "val_l1": val_l1})
                if reason:
                    stopped = reason
                    break
        wall = wall_before + time.perf_counter() - t_start
        if step >= cfg.steps and resume_meta is not None and int(resume_meta["step"]) >= cfg.steps:
            say(f"{run_dir} is already at step {step} (of {cfg.steps}): nothing to do")
        result = TrainResult(run_dir, step, images_seen, wall, val_l1, stopped)
        if cfg.export and rank == 0 and stopped == "done":
            result.export_dir = export_run(run_dir, Path(cfg.export))  # the command is in the checkpoint
        if world > 1:
            # Leave together: a rank that tore down its gloo group while rank 0 was still writing
            # the checkpoint aborted now and then ("terminate called without an active exception").
            dist.barrier()
        return result
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# Export


def _fmt_duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def model_card(cfg: TrainConfig, meta: dict, commands: list[str], extra: str = "") -> str:
    """The README.md of an exported model: what it is, how it was trained, how well."""
    m = cfg.model
    data = meta.get("data", {})
    val = meta.get("val_l1")
    val_txt = f"{val:.4f} (pixels in [-1, 1]; {val * 127.5:.2f} in 0..255)" if val is not None else "n/a (no validation persons)"
    cmd_lines = "\n".join(commands) if commands else "(not recorded)"
    mode_txt = {
        "reference": (
            "reference mode: G sees the same person's open eyes, each relit to this face's skin and warped "
            "onto this face's eye by the eye corners (exemplar.py)"
            if m.ref_input == "eyes" else "reference mode: G sees an aligned photo of the same person with open eyes"
        ),
        "code": "code mode: G sees a code of the reference's eyes from the eye encoder C (exported with it)",
        "none": "no exemplar: the baseline in-painter",
    }[m.mode]
    lines = [
        "---",
        "license: mit",
        "library_name: exgan",
        "tags: [exgan, gan, inpainting, eyes, faces]",
        "---",
        "",
        f"# ExGAN {m.mode} model, {m.resolution} px",
        "",
        "An Exemplar GAN (Dolhansky & Canton Ferrer, CVPR 2018) generator that in-paints the eye "
        f"regions of an aligned {m.resolution} x {m.resolution} face; {mode_txt}. "
        "Use it with `exgan open-eyes PHOTO --ref REF --weights THIS_FOLDER`.",
        "",
        "## Training",
        "",
        "```",
        cmd_lines,
        "```",
        "",
        # names only: the absolute paths are the training machine's, of no use to a reader
        f"- data: `{Path(cfg.data or data.get('data_dir') or '?').name}` (aligned-face cache `{Path(meta.get('cache', '?')).name}`): "
        f"{data.get('photos', '?')} photos, "
        f"{data.get('faces', '?')} faces found, {data.get('closed', '?')} closed and {data.get('squinting', '?')} "
        f"squinting (min EAR {cfg.min_ear}) left out; {data.get('train_faces', '?')} training faces of "
        f"{data.get('train_persons', '?')} persons",
        f"- validation: {data.get('val_persons', '?')} person(s) held out ({data.get('val_faces', '?')} faces); "
        f"masked L1 of the EMA generator on {'up to ' + str(cfg.val_max) if cfg.val_max else 'all'} pairs, "
        f"deterministic eye masks: {val_txt}",
        f"- steps: {meta.get('step')} at batch {cfg.batch_size} x {meta.get('world_size', 1)} process(es); "
        f"images seen: {meta.get('images_seen')}",
        f"- wall time: {_fmt_duration(float(meta.get('wall_time', 0)))}",
        f"- hardware: {'; '.join(dict.fromkeys(meta.get('hardware', []))) or '?'}",
        f"- optimiser: Adam lr G {cfg.lr}, D {cfg.d_lr}, betas {tuple(cfg.betas)}; EMA decay {cfg.ema_decay}",
        f"- losses: masked L1 x {m.l1_weight} + {m.adversarial} adversarial x {m.adversarial_weight}"
        + (f" + code x {m.code_weight} + eye auto-encoder x {cfg.ae_weight}" if m.mode == "code" else ""),
        f"- networks: base channels {m.base_channels}, {m.n_blocks} dilated blocks, D channels {m.d_channels}"
        + (f", code {m.code_dim}" if m.mode == "code" else ""),
        (f"- exemplar design: reference input {m.ref_input!r}, " if m.mode == "reference" else "- design: ")
        + (f"relit to the target's cheeks: {m.relight}, " if m.mode != "none" else "")
        + f"G skips: {m.skips}; iris L1 x {m.iris_weight}; augmentations: one random iris colour painted into target and "
        f"reference on {cfg.augment_iris:.0%} of the pairs, independent colour casts on {cfg.augment_cast:.0%}",
        f"- started from: `{cfg.init}` (its generator{' and eye encoder' if m.mode == 'code' else ''}; new tensors at their init)"
        if cfg.init else "- started from: random initialisation",
        f"- validation persons: `{cfg.val_persons}`" + (f"; never trained on: `{cfg.exclude_persons}`" if cfg.exclude_persons else "")
        if cfg.val_persons else f"- validation split: {cfg.split}, seed {cfg.seed}, {cfg.val_fraction:.0%} of the persons",
        f"- torch {meta.get('torch', '?')}",
        "",
        "The weights are the exponential moving average of the generator"
        + (" and of the eye encoder" if m.mode == "code" else "")
        + "; `config.json` carries the alignment and eye-mask settings the model was trained with.",
        "",
        "## Limitations",
        "",
        "Trained on aligned, roughly frontal faces; expect poor results on profiles, sunglasses and "
        "faces much smaller than the model's resolution. It paints plausible eyes for the person, not "
        "the eyes they had when the photo was taken.",
    ]
    if extra.strip():
        lines += ["", extra.strip()]
    return "\n".join(lines) + "\n"


def export_run(
    run_dir: Path, out: Path, card_extra: str = "", command: str | None = None, overwrite: bool = True
) -> Path:
    """Write the run's EMA generator (and EMA eye encoder in code mode) as a weights folder
    (weights.save_pretrained): model.safetensors, config.json and a README.md model card."""
    from exgan_cli.model.encoder import EyeEncoder
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import save_pretrained

    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / CONFIG_FILE).is_file():
        raise WeightsError(f"{run_dir}: not a training run folder (no {CONFIG_FILE})")
    if not overwrite and out.exists() and any(out.iterdir()):
        raise OutputError(f"{out}: exists and is not empty (use --overwrite)")
    try:
        cfg = TrainConfig.from_dict(read_run_config(run_dir))
    except ValueError as e:
        raise WeightsError(f"{run_dir / CONFIG_FILE}: {e}") from None
    meta, tensors = read_checkpoint(run_dir)
    g = Generator(cfg.model)
    _load_module(g, tensors, "ema_g")
    enc = None
    if cfg.model.mode == "code":
        enc = EyeEncoder(cfg.model)
        _load_module(enc, tensors, "ema_enc")
    commands = list(meta.get("commands", []))
    if command:
        commands.append(command)
    training = {
        "run": run_dir.name,
        "commands": commands,
        "data": cfg.data,
        "data_summary": meta.get("data", {}),
        "steps": meta.get("step"),
        "images_seen": meta.get("images_seen"),
        "wall_time_s": round(float(meta.get("wall_time", 0.0)), 1),
        "hardware": meta.get("hardware", []),
        "val_l1": meta.get("val_l1"),
        "batch_size": cfg.batch_size,
        "world_size": meta.get("world_size", 1),
        "config": cfg.to_dict(),
    }
    card = model_card(cfg, meta, commands, card_extra)
    return save_pretrained(out, g, enc, cfg.model, cfg.align, cfg.mask, card, training)


def command_line() -> str:
    """This process's command line as a user would type it (exgan ..., or torchrun ...)."""
    _, world, _ = _dist_env()
    torchrun = world > 1 and "TORCHELASTIC_RUN_ID" in os.environ
    name = Path(sys.argv[0]).name
    if name == "__main__.py":  # python -m exgan_cli
        prog = ["-m", "exgan_cli"] if torchrun else ["python", "-m", "exgan_cli"]
    else:
        prog = ["exgan"] if name == "exgan" or not torchrun else [sys.argv[0]]
    head = ["torchrun", "--nproc_per_node", str(world)] if torchrun else []
    return shlex.join([*head, *prog, *sys.argv[1:]])
