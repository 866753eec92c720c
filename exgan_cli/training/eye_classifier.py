"""Training the eye-state classifier (stages/eye_classifier.py): the loop, the thresholds, the card.

    python -m exgan_cli.training.eye_classifier --data-root DATA --review train/lfw_eye_review.json

(train/eye_state.md). DATA holds closed_eyes/ (CEW's closed faces) and lfw/; the data
(training/eye_data.py) are cached in two aligned-face caches. Balanced batches of augmented eye
bands train the CNN with AdamW; the best validation step is kept, its P(closed) threshold is the
best closed recall that flags at most `max_open_flagged` of the validation open faces, and the
EAR cut `ear_below` is chosen on the reviewed LFW faces of training and validation persons (the
largest EAR under which at least 60% of them are closed and at most 10% clearly open). Adding
LFW's own closed faces to the closed class instead was tried (LFW_CLOSED_SHARE): with only ~50
of them the network learned "older man, glasses" and flagged 8 to 25% of LFW.

No path is built in: the data folder and the review file are arguments.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from exgan_cli.stages.eye_classifier import CARD_FILE, CONFIG_FILE, FORMAT, EyeNetConfig, band_matrix, build_net, default_folder
from exgan_cli.stages.geometry import AlignConfig
from exgan_cli.training.eye_data import (
    LFW_CLOSED_SHARE, OPEN_MIN_EAR, OPEN_MIN_MAX_EAR, REVIEWED_BELOW, TEST_PERCENT, VAL_PERCENT, EyeData, augment_batch,
    load_eye_data, pick_ear_below, plain_inputs, prepare_closed_cache,
)


def rates(p_closed: np.ndarray, closed: np.ndarray, threshold: float) -> tuple[float, float]:
    """(closed recall, open flagged) at a threshold on P(closed)."""
    flag = p_closed >= threshold
    recall = float(flag[closed].mean()) if closed.any() else float("nan")
    flagged = float(flag[~closed].mean()) if (~closed).any() else float("nan")
    return recall, flagged


def pick_threshold(p_closed: np.ndarray, closed: np.ndarray, max_open_flagged: float) -> float:
    """The threshold with the best closed recall while flagging at most max_open_flagged of the open
    faces (ties: the one in the middle of the best range, away from both sides)."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    scored = [(t, *rates(p_closed, closed, t)) for t in grid]
    ok = [s for s in scored if s[2] <= max_open_flagged] or [max(scored, key=lambda s: s[0])]
    best = max(s[1] for s in ok)
    tied = [s[0] for s in ok if s[1] == best]
    return float(tied[len(tied) // 2])


@dataclass
class EyeTrainConfig:
    closed_cache: Path  # dataset cache of the CEW closed crops (prepare_closed_cache)
    lfw_cache: Path  # dataset cache of LFW (dataset.prepare_dataset), 128 px
    out: Path  # weights folder to write
    net: EyeNetConfig = field(default_factory=EyeNetConfig)
    steps: int = 3000  # optimiser steps
    batch_size: int = 64  # half closed, half open (the classes are 1:12)
    lr: float = 3e-3  # AdamW, cosine decay to 0
    weight_decay: float = 1e-3
    eval_every: int = 250  # steps between validation checks (the best one is kept)
    max_open_flagged: float = 0.01  # threshold choice on the validation split
    open_min_ear: float = OPEN_MIN_EAR  # LFW cleaning
    review: Optional[Path] = None  # reviewed LFW faces (train/lfw_eye_review.json; None: no review)
    lfw_closed_share: float = LFW_CLOSED_SHARE  # of the closed samples, from reviewed LFW faces
    states: Optional[Path] = None  # eye states labelled by a person (train/eye_state_labels.json, issue #24)
    hard_open_share: float = 0.0  # of the open samples, from labelled open/narrow LFW faces with a low EAR
    synthetic_share: float = 0.0  # of the closed samples, from open LFW faces shut by eye_data.close_eyes
    seed: int = 0
    threads: int = 1  # torch CPU threads (the machine is shared)


def train_classifier(cfg: EyeTrainConfig, log: Callable[[str], None] = print, command: str = "") -> dict:
    """Train, choose the threshold on the validation split, and save the weights with a card."""
    import torch

    from exgan_cli.training.dataset import load_dataset

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    data, counts = load_eye_data(cfg.closed_cache, cfg.lfw_cache, cfg.open_min_ear, cfg.review, cfg.states,
                                 synthetic=cfg.synthetic_share > 0)
    align = load_dataset(cfg.closed_cache).align
    train = data.take(data.split == "train")
    val = data.take(data.split == "val")
    log(f"data: {counts} ({time.time() - t0:.0f} s)")
    val_x = torch.from_numpy(plain_inputs(val, align, cfg.net))[:, None]
    val_e = torch.from_numpy(val.ear)
    net, best_step, history = _fit(cfg, train, val, val_x, val_e, band_matrix(align, cfg.net), rng, log, t0)

    with torch.inference_mode():
        p = torch.sigmoid(net(val_x, val_e)).numpy()
    threshold = pick_threshold(p, val.closed, cfg.max_open_flagged)
    recall, flagged = rates(p, val.closed, threshold)
    ear_below, ear_table = pick_ear_below(cfg.lfw_cache, cfg.review)
    both = (p >= threshold) | (val.ear.max(axis=1) < ear_below)
    recall2, flagged2 = float(both[val.closed].mean()), float(both[~val.closed].mean())
    seconds = time.time() - t0
    training = {
        "command": command,
        "data": counts,
        "steps": cfg.steps,
        "best_step": best_step,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "seed": cfg.seed,
        "threads": cfg.threads,
        "lfw_closed_share": cfg.lfw_closed_share,
        "hard_open_share": cfg.hard_open_share,
        "synthetic_share": cfg.synthetic_share,
        "seconds": round(seconds, 1),
        "parameters": sum(v.numel() for v in net.parameters()),
        "val": {"closed_recall": round(recall, 4), "open_flagged": round(flagged, 4), "threshold": threshold,
                "max_open_flagged": cfg.max_open_flagged,
                "with_ear_below": {"closed_recall": round(recall2, 4), "open_flagged": round(flagged2, 4)}},
        "ear_below": ear_below,
        "ear_below_review": ear_table,
        "history": history,
        "splits": f"sha256(name) % 100: < {TEST_PERCENT} test, < {TEST_PERCENT + VAL_PERCENT} val, else train; "
                  "CEW by file name, LFW by person name",
    }
    card = eye_card(cfg.net, counts, training, threshold)
    save_classifier(cfg.out, net, cfg.net, align, threshold, card, training, ear_below=ear_below)
    log(f"saved {cfg.out}: val closed recall {recall:.1%}, open flagged {flagged:.1%} at P(closed) >= {threshold:.2f}"
        f" ({recall2:.1%}, {flagged2:.1%} with EAR < {ear_below:.2f}); {seconds:.0f} s")
    return training


def _fit(
    cfg: EyeTrainConfig, train: EyeData, val: EyeData, val_x: Any, val_e: Any, base: np.ndarray,
    rng: np.random.Generator, log: Callable[[str], None], t0: float,
) -> tuple[Any, int, list]:
    """The optimiser steps on balanced, augmented batches; every eval_every steps the validation
    check. Returns the network at its best step (eval mode), that step, and the checks."""
    import torch
    import torch.nn.functional as F

    ci = np.nonzero(train.closed & ~train.lfw_closed & ~train.synthetic)[0]
    # the hard open faces are a pool of their own only when a share of the batch is drawn from them;
    # with hard_open_share 0 they are ordinary open examples, as before the option existed
    hard_pool = train.hard_open if cfg.hard_open_share > 0 else np.zeros_like(train.hard_open)
    li, oi = np.nonzero(train.lfw_closed)[0], np.nonzero(~train.closed & ~hard_pool)[0]
    hi, si = np.nonzero(hard_pool)[0], np.nonzero(train.synthetic)[0]
    net = build_net(cfg.net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    half = cfg.batch_size // 2
    best: tuple[float, int, dict] | None = None
    history = []
    for step in range(1, cfg.steps + 1):
        n_lfw = int(rng.binomial(half, cfg.lfw_closed_share)) if len(li) else 0
        n_syn = min(half - n_lfw, int(rng.binomial(half, cfg.synthetic_share))) if len(si) else 0
        n_hard = int(rng.binomial(cfg.batch_size - half, cfg.hard_open_share)) if len(hi) else 0
        idx = np.concatenate([rng.choice(ci, half - n_lfw - n_syn), rng.choice(li, n_lfw) if n_lfw else np.zeros(0, int),
                              rng.choice(si, n_syn) if n_syn else np.zeros(0, int),
                              rng.choice(oi, cfg.batch_size - half - n_hard), rng.choice(hi, n_hard) if n_hard else np.zeros(0, int)])
        x = torch.from_numpy(augment_batch(train.grey[idx], base, cfg.net, rng))[:, None]
        e = torch.from_numpy(train.ear[idx] + rng.normal(0, 0.02, size=(len(idx), 2)).astype(np.float32))
        y = torch.from_numpy(train.closed[idx].astype(np.float32))
        net.train()
        loss = F.binary_cross_entropy_with_logits(net(x, e), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            net.eval()
            with torch.inference_mode():
                p = torch.sigmoid(net(val_x, val_e)).numpy()
            t = pick_threshold(p, val.closed, cfg.max_open_flagged)
            recall, flagged = rates(p, val.closed, t)
            # the criterion: recall at the flagged cap, then a lower mean P(closed) on open faces
            key = recall - 5.0 * max(0.0, flagged - cfg.max_open_flagged) - 0.1 * float(p[~val.closed].mean())
            history.append({"step": step, "loss": round(float(loss.detach()), 4), "threshold": t, "val_recall": round(recall, 4), "val_flagged": round(flagged, 4)})
            log(f"step {step}: loss {float(loss.detach()):.3f}, val closed recall {recall:.1%}, open flagged {flagged:.1%} at {t:.2f} ({time.time() - t0:.0f} s)")
            if best is None or key > best[0]:
                best = (key, step, {k: v.detach().clone() for k, v in net.state_dict().items()})
    assert best is not None
    net.load_state_dict(best[2])
    net.eval()
    return net, best[1], history


def save_classifier(
    folder: str | Path, net: Any, cfg: EyeNetConfig, align: AlignConfig, threshold: float, card: str,
    training: dict | None = None, ear_below: float = 0.0,
) -> Path:
    """Write model.safetensors, config.json and README.md (weights.write_model_folder, as the generator's)."""
    from exgan_cli.model.weights import write_model_folder

    tensors = {f"net.{k}": v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    config = {"format": FORMAT, "model": cfg.to_dict(), "align": align.to_dict(), "threshold": float(threshold),
              "ear_below": float(ear_below), "training": training or {}}
    return write_model_folder(folder, tensors, config, card)


def eye_card(cfg: EyeNetConfig, counts: dict, training: dict, threshold: float) -> str:
    """The README.md of an eye-state weights folder (weights.card: front matter, no absolute paths)."""
    from exgan_cli.model.weights import card as weights_card

    v = training["val"]
    eb = training.get("ear_below", 0.0)
    rev = counts.get("lfw_reviewed", {})
    text = f"""
# exgan eye-state classifier

Are a face's eyes closed? A small CNN ({training['parameters']:,} parameters) over the fixed eye band of
the face aligned by exgan's five-point similarity (`geometry.align_face`, 128 px; `geometry.eye_band`
scaled by {list(cfg.band_scale)}), grey, {cfg.width} x {cfg.height} px, standardised per image{', plus the two eye aspect ratios' if cfg.use_ear else ''}.
Output: P(closed). **Decision as trained: closed when P(closed) >= {threshold:.2f}, or when both eyes' aspect ratio
(EAR, from dlib's landmarks) is below {eb:.2f}**; benchmarks/eye_blinks.py --write then fits the shipped decision on
persons never trained on (config.json "decision": the EAR cut only where the network is unsure). Loaded by `exgan_cli.stages.eye_classifier`; `eye_state.assess` uses it
whenever this folder is present and reports both scores; without it exgan falls back to the EAR rule.

Architecture: {len(cfg.channels)} stages of 3x3 conv (no bias) + BatchNorm + ReLU, widths {', '.join(map(str, cfg.channels))},
2x2 max-pooling between stages, global average pooling, dropout 0.2, one linear layer to the logit.

## Data

- Closed: CEW "ClosedFace" crops (`closed_eyes/`, {counts['closed_files']} files, {counts['closed_faces']} faces found with
  `detect_faces(detector="auto")`: HOG, then dlib's CNN for the faces HOG misses).
- Open: LFW faces of the aligned-face cache (`exgan train --prepare-only`), cleaned of LFW's own closed eyes: faces
  whose larger EAR is below {OPEN_MIN_MAX_EAR} are left out ({counts['lfw_dropped_closed_or_squinting']} of {counts['lfw_faces']}), except
  those a person reviewed as open. Squints stay in (as open).
- Review (`train/lfw_eye_review.json`, train/eye_state.md): LFW faces looked at on contact sheets, every one
  whose larger EAR is below {REVIEWED_BELOW} and, for the benchmark, more held-out test faces; of training and validation
  persons: {rev.get('closed', 0)} closed, {rev.get('open', 0)} open, {rev.get('unsure', 0)} unsure. It sets the EAR cut ({eb:.2f}: the largest under which at least 60% of
  the reviewed training/validation faces are closed and at most 10% open).
- Splits fixed by sha256 of the name (CEW: file, LFW: person) modulo 100: < {TEST_PERCENT} test (never seen in
  training; `benchmarks/eye_state.py`), < {TEST_PERCENT + VAL_PERCENT} validation (best step, threshold), else training.
  Train: {counts['train_closed'] - counts.get('train_closed_lfw', 0)} CEW closed / {counts['train_open']} LFW open; validation: {counts['val_closed']} closed / {counts['val_open']} open.
- Augmentation: alignment jitter (shift, scale, rotation), horizontal flip, gamma, lower resolution, noise, photo
  edges inside the band; balanced batches of {training['batch_size']}.

## Training

{training['steps']} AdamW steps (one-cycle lr {training['lr']}, weight decay {training['weight_decay']}), seed {training['seed']},
{training['threads']} CPU thread(s), {training['seconds'] / 60:.1f} min on a shared 2-core CPU; best validation step {training['best_step']}.
Command (train/eye_state.md): `{training['command']}`

Validation (cached aligned faces): closed recall {v['closed_recall']:.1%}, open faces flagged {v['open_flagged']:.1%} at
P(closed) >= {threshold:.2f} (the best recall flagging at most {v['max_open_flagged']:.0%} of validation open faces); with the
EAR cut too: {v['with_ear_below']['closed_recall']:.1%} and {v['with_ear_below']['open_flagged']:.1%}.
Held-out test figures, through the whole photo -> detection -> classifier path, against the EAR rule:
docs/eye_state.md (`python benchmarks/eye_state.py`).

## Limits

Trained on near-frontal news and web photos (LFW, CEW). Sunglasses hide the eyes. A wink (one eye closed) is in
neither class. The closed training faces are mostly young women; closed eyes of other faces rely more on the EAR
cut. LFW and CEW are research data sets.
"""
    return weights_card(text, "image-classification", ["exgan", "eye-state", "blink-detection"])


def rewrite_card(folder: Path) -> Path:
    """Write README.md again from the folder's config.json (the card text as training writes it)."""
    config = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    tr = config["training"]
    text = eye_card(EyeNetConfig.from_dict(config["model"]), tr["data"], tr, float(config["threshold"]))
    (Path(folder) / CARD_FILE).write_text(text, encoding="utf-8")
    return Path(folder) / CARD_FILE


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m exgan_cli.training.eye_classifier`: prepare the caches when missing, train, save."""
    import sys

    args = _parser().parse_args(argv)
    from exgan_cli.training.dataset import prepare_dataset

    if not args.closed_cache.is_file():
        prepare_closed_cache(args.data_root / "closed_eyes", args.closed_cache, workers=args.workers)
    if not args.lfw_cache.is_file():
        prepare_dataset(args.data_root / "lfw", args.lfw_cache, workers=args.workers)
    cfg = EyeTrainConfig(
        closed_cache=args.closed_cache, lfw_cache=args.lfw_cache, out=args.out or default_folder(),
        net=EyeNetConfig(use_ear=args.use_ear, band_scale=tuple(args.band_scale)), steps=args.steps, seed=args.seed,
        threads=args.threads, review=None if args.no_review else args.review, open_min_ear=args.open_min_ear,
        lfw_closed_share=args.lfw_closed_share, states=args.states, hard_open_share=args.hard_open_share,
        synthetic_share=args.synthetic_share,
    )
    command = "python -m exgan_cli.training.eye_classifier " + " ".join(sys.argv[1:] if argv is None else argv)
    train_classifier(cfg, command=command.strip())
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m exgan_cli.training.eye_classifier", description="Train the eye-state classifier (weights/eye-state).")
    ap.add_argument("--data-root", type=Path, required=True, help="folder with closed_eyes/ and lfw/")
    review = ap.add_mutually_exclusive_group(required=True)
    review.add_argument("--review", type=Path, help="reviewed LFW faces (train/lfw_eye_review.json)")
    review.add_argument("--no-review", action="store_true", help="train without a review")
    ap.add_argument("--lfw-cache", type=Path, default=Path(".cache/lfw-128.npz"), help="LFW aligned-face cache (exgan train --prepare-only); made when missing")
    ap.add_argument("--closed-cache", type=Path, default=Path(".cache/cew-closed-128.npz"), help="CEW cache; made when missing")
    ap.add_argument("--out", type=Path, default=None, help="weights folder [default: weights/eye-state]")
    ap.add_argument("--steps", type=int, default=EyeTrainConfig.steps)
    ap.add_argument("--use-ear", action="store_true", help="also feed the two EARs to the network")
    ap.add_argument("--band-scale", type=float, nargs=2, default=(1.0, 1.0), metavar=("W", "H"),
                    help="size of the region cut, relative to geometry.eye_band")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--open-min-ear", type=float, default=OPEN_MIN_EAR, help="LFW open examples: both EARs at least this")
    ap.add_argument("--lfw-closed-share", type=float, default=LFW_CLOSED_SHARE, help="share of closed samples from reviewed LFW faces")
    ap.add_argument("--states", type=Path, default=None,
                    help="eye states labelled by a person (train/eye_state_labels.json): override the review, set the tune split aside")
    ap.add_argument("--hard-open-share", type=float, default=0.0,
                    help="share of open samples from labelled open/narrow LFW faces with a low EAR")
    ap.add_argument("--synthetic-share", type=float, default=0.0,
                    help="share of closed samples from open LFW faces with their eyes shut (eye_data.close_eyes)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="processes preparing the caches")
    return ap


if __name__ == "__main__":
    raise SystemExit(main())
