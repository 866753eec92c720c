"""The eye-state classifier's training data: CEW closed crops, cleaned LFW open faces, the review.

Closed faces are the CEW crops of closed_eyes/ (split by file), open faces are LFW faces from
the aligned-face cache (split by person), cleaned of LFW's own closed and squinting eyes. Splits
are fixed by a hash of the file or person name (``split_of``), so the benchmark
(benchmarks/eye_state.py) finds the same held-out test split without any list. Nothing here
knows where the data or the review file live: callers pass them (train/eye_state.md).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from exgan_cli.stages.eye_classifier import EyeNetConfig, band_from_crop, standardise
from exgan_cli.stages.eye_state import CLOSED_EAR_THRESHOLD
from exgan_cli.stages.geometry import AlignConfig

# Held-out splits, by a hash of the name (a CEW file name, an LFW person name): bucket
# 0..99; below TEST_PERCENT: test (only the benchmark sees it), then VAL_PERCENT: validation
# (early stopping and the decision threshold), the rest: training.
TEST_PERCENT = 20
VAL_PERCENT = 10

# LFW cleaning: an LFW face is an "open" training example when its larger EAR is at least
# OPEN_MIN_MAX_EAR (below 0.19, LFW faces are mostly closed, blinking or looking down; between
# 0.19 and 0.22 a mix of narrow, squinting and open eyes: docs/eye_state.md) and both EARs are at
# least OPEN_MIN_EAR. At 0 (the default), squints and narrow eyes stay open examples: without
# them the network learns that narrow LFW eyes are closed and flags a quarter of LFW.
OPEN_MIN_MAX_EAR = 0.19
OPEN_MIN_EAR = 0.0
# Reviewed LFW faces (a review file, e.g. train/lfw_eye_review.json, always passed in): every LFW
# face whose larger EAR is below REVIEWED_BELOW (239), each looked at and labelled closed / open /
# unsure. Reviewed open ones (squints, looks down) join the open class; unsure ones are left out;
# closed ones are closed examples for validation, and in training only with LFW_CLOSED_SHARE > 0
# (their share of the closed samples; 0 by default, see training/eye_classifier.py); they choose
# ear_below (pick_ear_below).
LFW_CLOSED_SHARE = 0.0  # 0: see training/eye_classifier.py (ear_below instead)
REVIEWED_BELOW = 0.18  # the review covers every LFW face whose larger EAR is below this
# Issue #24: eye states labelled by a person (train/eye_state_labels.json: open / narrow / closed /
# hidden / unsure) override the review. With them, ``role_of`` sets a quarter of the training
# persons aside with the validation persons ("tune": the best step, the thresholds and the decision's
# cuts are chosen there), and LFW's own closed eyes train the network (``--lfw-closed-share``) with
# its narrow, smiling and squinting eyes as hard open examples (``--hard-open-share``).
TUNE_PERCENT = 25  # of the training persons, by sha256("tune:" + name)
NOT_CLOSED_STATES = ("open", "narrow", "hidden")  # labelled states that are open examples
# Synthetic blinks (``--synthetic-share``): LFW's ~50 real closed faces of training persons are too few
# to teach a smiling, narrowed blink from a smiling, narrowed open eye, and the network called several
# held-out blinks open with P(closed) under 0.001. Each training person's open face whose larger EAR is
# below SYNTH_MAX_EAR (narrow, smiling, squinting: the eyes that need least to close) gets a copy with
# its eyes shut (``close_eyes``): the same face, glasses and smile, only the iris and white gone, so that
# the iris is what tells the two apart.
SYNTH_MAX_EAR = 0.25


def split_of(name: str) -> str:
    """"test", "val" or "train" for a CEW file name or an LFW person name (fixed by its hash)."""
    bucket = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + VAL_PERCENT:
        return "val"
    return "train"


def role_of(name: str) -> str:
    """"test", "tune" or "train" for a CEW file name or an LFW person name (issue #24): the test split is
    split_of's; "tune" is the validation split plus TUNE_PERCENT of the training names (a second hash),
    never trained on; the rest trains."""
    split = split_of(name)
    if split != "train":
        return "test" if split == "test" else "tune"
    bucket = int(hashlib.sha256(f"tune:{name}".encode("utf-8")).hexdigest()[:8], 16) % 100
    return "tune" if bucket < TUNE_PERCENT else "train"


def read_states(path: Path) -> dict[str, str]:
    """{"<Person>/<file>.jpg": "open" | "narrow" | "closed" | "hidden" | "unsure"}: the LFW faces of an eye-state
    label file (train/eye_state_labels.json). A path that is not a file is an error: a mistyped
    --states must not train the old way unannounced."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: eye-state label file not found")
    return {k: v["state"] for k, v in json.loads(Path(path).read_text(encoding="utf-8"))["lfw"].items()}


# ---------------------------------------------------------------------------------------
# Training data


def _prepare_closed_one(args: tuple[str, dict]) -> Optional[tuple]:
    from exgan_cli.stages import eye_state as eyes, faces as facelib, geometry
    from exgan_cli.training.dataset import encode_crop
    from exgan_cli.errors import ExganError
    from exgan_cli.files.images import load_image

    path, align_dict = args
    align = AlignConfig.from_dict(align_dict)
    try:
        image = load_image(Path(path))
    except ExganError:
        return None
    found = facelib.detect_faces(image.pixels, detector="auto")
    face = facelib.central_face(found, image.size)
    if face is None:
        return None
    crop, matrix = geometry.align_face(image.pixels, face.landmarks, align)
    state = eyes.eye_state(face.landmarks)
    lm = geometry.transform_points(face.landmarks, matrix).astype(np.float32)
    return path, encode_crop(crop), lm, (state.left, state.right), face.detector


def prepare_closed_cache(closed_dir: Path, out_file: Path, align: AlignConfig = AlignConfig(), workers: int = 2,
                         log: Callable[[str], None] = print) -> Path:
    """Detect (auto: HOG, then CNN), align and cache every closed-eye crop of ``closed_dir`` in the
    dataset cache format (dataset.save_dataset; each file is its own "person", closed=True)."""
    from concurrent.futures import ProcessPoolExecutor

    from exgan_cli.training.dataset import IMAGE_SUFFIXES, save_dataset

    paths = sorted(str(p) for p in Path(closed_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".bmp"})
    jobs = [(p, align.to_dict()) for p in paths]
    t0 = time.time()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_prepare_closed_one, jobs, chunksize=8))
    else:
        rows = [_prepare_closed_one(j) for j in jobs]
    kept = [r for r in rows if r is not None]
    names = [Path(r[0]).name for r in kept]
    log(f"closed crops: {len(paths)} files, {len(kept)} faces ({sum(r[4] == 'cnn' for r in kept)} by the CNN), {time.time() - t0:.0f} s")
    return save_dataset(
        out_file, jpegs=[r[1] for r in kept], landmarks=np.stack([r[2] for r in kept]),
        ear=np.array([r[3] for r in kept], dtype=np.float32), closed=np.ones(len(kept), dtype=bool),
        person=np.arange(len(kept), dtype=np.int32), persons=names, paths=names, align=align,
        meta={"data_dir": str(Path(closed_dir).resolve()), "photos_seen": len(paths), "faces_kept": len(kept),
              "detectors": [r[4] for r in kept]},
    )


@dataclass
class EyeData:
    """Training/validation examples: grey aligned crops and labels, with where each came from."""

    grey: np.ndarray  # (N, R, R) uint8 grey aligned faces
    ear: np.ndarray  # (N, 2) float32 EARs (left, right)
    closed: np.ndarray  # (N,) bool label
    split: np.ndarray  # (N,) "train" | "val" | "test"
    source: list[str]  # "closed_eyes/<file>" or "lfw/<Person>/<file>"
    lfw_closed: np.ndarray = None  # type: ignore[assignment]  # (N,) bool: a reviewed closed LFW face
    hard_open: np.ndarray = None  # type: ignore[assignment]  # (N,) bool: an LFW face labelled open or narrow with a low EAR
    synthetic: np.ndarray = None  # type: ignore[assignment]  # (N,) bool: an open LFW face with its eyes shut by close_eyes

    def take(self, mask: np.ndarray) -> "EyeData":
        idx = np.nonzero(mask)[0]
        none = np.zeros(len(idx), bool)
        hard = self.hard_open[idx] if self.hard_open is not None else none
        synth = self.synthetic[idx] if self.synthetic is not None else none
        return EyeData(self.grey[idx], self.ear[idx], self.closed[idx], self.split[idx], [self.source[i] for i in idx],
                       self.lfw_closed[idx], hard, synth)


def close_eyes(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of an aligned face crop (R, R, 3) uint8 with both eyes shut: each eye's contour (its six
    landmarks, ``landmarks`` in crop coordinates, widened by a quarter to take the lashes and the
    white's rim) in-painted from the lids around it (OpenCV's Telea), then a soft dark lid line from
    corner to corner, a little below the middle of the lids (a closed upper lid rests on the lower)."""
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    mask = np.zeros(crop.shape[:2], np.uint8)
    lines = []
    for first in (36, 42):
        p = lm[first:first + 6]
        c = p.mean(axis=0)
        cv2.fillPoly(mask, [np.round((c + (p - c) * 1.25) * 4).astype(np.int32)], 1, shift=2)
        w = rng.uniform(0.55, 0.85)  # where the lid line sits between the upper (0) and lower (1) lid
        lines.append(np.array([p[0], w * p[5] + (1 - w) * p[1], w * p[4] + (1 - w) * p[2], p[3]]))
    shut = cv2.inpaint(np.ascontiguousarray(crop), cv2.dilate(mask, np.ones((2, 2), np.uint8)), 2, cv2.INPAINT_TELEA)
    dark = np.zeros(crop.shape[:2], np.float32)
    for line in lines:
        cv2.polylines(dark, [np.round(line * 4).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, shift=2)
    dark = cv2.GaussianBlur(dark, (0, 0), rng.uniform(0.5, 0.9))
    shade = 1.0 - rng.uniform(0.25, 0.55) * dark / max(float(dark.max()), 1e-6)
    return np.clip(shut.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)


def read_review(path: Path) -> dict[str, str]:
    """{"<Person>/<file>.jpg": "closed" | "open" | "unsure"} from a review file (empty if none)."""
    if not Path(path).is_file():
        return {}
    return dict(json.loads(Path(path).read_text(encoding="utf-8"))["labels"])


def load_eye_data(closed_cache: Path, lfw_cache: Path, open_min_ear: float, review: Path | None,
                  states: Path | None = None, synthetic: bool = False) -> tuple[EyeData, dict]:
    """Closed: every face of the CEW cache (split by file) and the LFW faces reviewed closed. Open:
    LFW faces whose larger EAR >= OPEN_MIN_MAX_EAR and both >= open_min_ear, and the ones reviewed open
    (LFW split by person). With ``states`` (an eye-state label file, issue #24) its labels override the
    review (open, narrow and hidden faces are open examples, unsure ones are left out) and the splits
    are role_of's ("tune" is the validation split). ``synthetic``: add a shut copy of every training
    person's open face whose larger EAR is below SYNTH_MAX_EAR (close_eyes). Returns the data and counts for the card."""
    import cv2

    from exgan_cli.training.dataset import load_dataset

    cew = load_dataset(closed_cache)
    lfw = load_dataset(lfw_cache)
    if cew.align != lfw.align:
        raise ValueError(f"{closed_cache} and {lfw_cache} are aligned differently")
    labels = read_review(review) if review is not None else {}
    labelled = read_states(states) if states is not None else {}
    labels = {**labels, **{k: ("open" if v in NOT_CLOSED_STATES else v) for k, v in labelled.items()}}
    verdict = np.array([labels.get(p, "") for p in lfw.paths])
    ear_open = (lfw.ear.max(axis=1) >= OPEN_MIN_MAX_EAR) & (lfw.ear.min(axis=1) >= open_min_ear)
    clean = (ear_open & (verdict == "")) | (verdict == "open")
    shut = verdict == "closed"
    # hard open examples: labelled open (narrow, smiling, squinting) where the EAR rule would say closed
    hard = (verdict == "open") & (lfw.ear.max(axis=1) < CLOSED_EAR_THRESHOLD)
    split_name = split_of if not labelled else (lambda n: {"tune": "val"}.get(role_of(n), role_of(n)))

    def grey(crops: np.ndarray) -> np.ndarray:
        return np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])

    c_split = np.array([split_name(p) for p in cew.paths])
    l_split = np.array([split_name(lfw.persons[k]) for k in lfw.person])
    keep = np.nonzero(clean | shut)[0]
    synth = np.nonzero(clean & (l_split == "train") & (lfw.ear.max(axis=1) < SYNTH_MAX_EAR))[0] if synthetic else keep[:0]
    rng = np.random.default_rng(0)
    shut_crops = [close_eyes(lfw.crops[i], lfw.landmarks[i], rng) for i in synth]
    n_cew, n_keep, n_syn = len(cew), len(keep), len(synth)
    data = EyeData(
        grey=np.concatenate([grey(cew.crops), grey(lfw.crops[keep])] + ([grey(np.stack(shut_crops))] if n_syn else [])),
        ear=np.concatenate([cew.ear, lfw.ear[keep], lfw.ear[synth]]).astype(np.float32),
        closed=np.concatenate([np.ones(n_cew, bool), shut[keep], np.ones(n_syn, bool)]),
        split=np.concatenate([c_split, l_split[keep], l_split[synth]]),
        source=[f"closed_eyes/{p}" for p in cew.paths] + [f"lfw/{lfw.paths[i]}" for i in keep]
        + [f"synthetic/lfw/{lfw.paths[i]}" for i in synth],
        lfw_closed=np.concatenate([np.zeros(n_cew, bool), shut[keep], np.zeros(n_syn, bool)]),
        hard_open=np.concatenate([np.zeros(n_cew, bool), hard[keep], np.zeros(n_syn, bool)]),
        synthetic=np.concatenate([np.zeros(n_cew + n_keep, bool), np.ones(n_syn, bool)]),
    )
    counts = {
        "closed_faces": len(cew),
        "closed_files": int(cew.meta.get("photos_seen", len(cew))),
        "lfw_faces": len(lfw),
        "lfw_dropped_closed_or_squinting": int((~clean & ~shut).sum()),
        "open_min_ear": open_min_ear,
        # training and validation persons' labels (the review also covers test faces, for the benchmark)
        "lfw_reviewed": {k: int(((verdict == k) & (l_split != "test")).sum()) for k in ("closed", "open", "unsure")},
    }
    if labelled:
        counts["eye_state_labels"] = {k: sum(1 for p, v in labelled.items() if v == k and role_of(p.split("/")[0]) != "test")
                                      for k in ("open", "narrow", "closed", "hidden", "unsure")}
        counts["splits"] = "role_of: test as split_of; validation = split_of's validation + a quarter of its training persons"
    for s in ("train", "val", "test"):
        counts[f"{s}_closed"] = int(((data.split == s) & data.closed).sum())
        counts[f"{s}_closed_lfw"] = int(((data.split == s) & data.lfw_closed).sum())
        counts[f"{s}_open"] = int(((data.split == s) & ~data.closed).sum())
        counts[f"{s}_hard_open"] = int(((data.split == s) & data.hard_open).sum())
    counts["train_synthetic_closed"] = n_syn
    return data, counts


def augment_batch(grey: np.ndarray, base: np.ndarray, cfg: EyeNetConfig, rng: np.random.Generator) -> np.ndarray:
    """Network inputs (B, H, W) from grey aligned crops (B, R, R), each with random alignment
    jitter (shift, scale, rotation), a horizontal flip, gamma, a lower resolution (small or blurred
    faces), and sensor noise: what differs between a 60 px CEW crop and a 250 px LFW photo."""
    import cv2

    out = np.empty((len(grey), cfg.height, cfg.width), np.float32)
    cx, cy = cfg.width / 2, cfg.height / 2
    for k, g in enumerate(grey):
        angle = np.deg2rad(rng.normal(0, 5))
        scale = float(np.exp(rng.normal(0, 0.07)))
        shift = rng.normal(0, [0.035 * cfg.width, 0.05 * cfg.height])
        flip = -1.0 if rng.random() < 0.5 else 1.0
        ca, sa = scale * np.cos(angle), scale * np.sin(angle)
        jitter = np.array([[flip * ca, -sa, 0.0], [flip * sa, ca, 0.0]])
        jitter[:, 2] = np.array([cx, cy]) + shift - jitter[:, :2] @ np.array([cx, cy])
        m = jitter @ np.vstack([base, [0, 0, 1]])
        img = g
        if rng.random() < 0.5:  # gamma: lighting that a linear standardisation cannot undo
            lut = (255.0 * (np.arange(256) / 255.0) ** float(np.exp(rng.normal(0, 0.25)))).astype(np.uint8)
            img = cv2.LUT(img, lut)
        band = cv2.warpAffine(img, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.3:  # a photo edge inside the band (CEW's tight crops, replicated): in both classes
            side = int(rng.integers(4))
            n = int(rng.integers(1, max(2, (cfg.width if side < 2 else cfg.height) // 6)))
            if side == 0:
                band[:, :n] = band[:, n : n + 1]
            elif side == 1:
                band[:, -n:] = band[:, -n - 1 : -n]
            elif side == 2:
                band[:n] = band[n : n + 1]
            else:
                band[-n:] = band[-n - 1 : -n]
        if rng.random() < 0.5:  # fewer pixels: faces of 40 to 100 px
            f = rng.uniform(0.3, 0.9)
            small = cv2.resize(band, (max(4, round(cfg.width * f)), max(2, round(cfg.height * f))), interpolation=cv2.INTER_AREA)
            band = cv2.resize(small, (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)
        b = band.astype(np.float32)
        if rng.random() < 0.3:
            b = b + rng.normal(0, rng.uniform(1, 6), size=b.shape).astype(np.float32)
        out[k] = standardise(b)
    return out


def plain_inputs(data: EyeData, align: AlignConfig, cfg: EyeNetConfig) -> np.ndarray:
    """Network inputs without augmentation (validation, as at inference)."""
    rgb = np.repeat(data.grey[..., None], 3, axis=3)
    return np.stack([band_from_crop(c, align, cfg) for c in rgb]) if len(rgb) else np.zeros((0, cfg.height, cfg.width), np.float32)


def pick_ear_below(lfw_cache: Path, review: Path | None, min_closed: float = 0.6, max_open: float = 0.1) -> tuple[float, dict]:
    """The largest EAR cut (step 0.01, 0.10 to REVIEWED_BELOW) under which, among the reviewed LFW faces of
    training and validation persons (never test), at least min_closed are closed and at most
    max_open clearly open. 0.0 without a review."""
    from exgan_cli.training.dataset import load_dataset

    labels = read_review(review) if review is not None else {}
    if not labels:
        return 0.0, {}
    lfw = load_dataset(lfw_cache)
    mx = {p: float(e) for p, e in zip(lfw.paths, lfw.ear.max(axis=1))}
    rows = [(mx[p], lab) for p, lab in labels.items() if p in mx and split_of(p.split("/")[0]) != "test"]
    best, table = 0.0, {}
    for x in np.round(np.arange(0.10, REVIEWED_BELOW + 0.001, 0.01), 2):  # where every face is reviewed
        below = [lab for e, lab in rows if e < x]
        if not below:
            continue
        c, o = below.count("closed") / len(below), below.count("open") / len(below)
        table[f"{x:.2f}"] = {"faces": len(below), "closed": round(c, 3), "open": round(o, 3)}
        if c >= min_closed and o <= max_open:
            best = float(x)
    return best, table
