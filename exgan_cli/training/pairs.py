"""The faces a run trains on and how they are paired: usable faces, the person split, pairs, batches.

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
left/right swapped) and colour-augmented (Augment).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from exgan_cli.errors import DataError
from exgan_cli.model.config import ModelConfig
from exgan_cli.stages.geometry import MaskConfig, boxes_to_mask, eye_boxes
from exgan_cli.training.config import LogFn, ProgressFn, TrainConfig
from exgan_cli.training.dataset import FaceDataset, default_cache_path, prepare_dataset, split_persons

# --------------------------------------------------------------------------------------------
# Usable faces, the person split, pairs


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


def person_lists(cfg: TrainConfig) -> tuple[set[str] | None, set[str] | None]:
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


# --------------------------------------------------------------------------------------------
# Batches: arrays for G and D, with mirroring and colour augmentation


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
        if augment.self_ref > 0:  # drawn first, so that the colour augmentations below treat both alike
            for k in np.nonzero(rng.random(n) < augment.self_ref)[0]:
                ref[k], lm_r[k], moved = self_reference(image[k], lm_t[k], rng)
                if iris_r is not None:  # the target's irises, moved alike
                    iris_r[k] = moved(iris_t[k])
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


def self_reference(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                   turn: float = 6.0, scale: float = 0.06, shift: float = 0.03,
                   blur: float = 1.0) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The target as its own reference: the crop moved by a random similarity (up to ``turn``
    degrees, ``scale`` and ``shift`` x the crop), softened by a Gaussian of sigma up to ``blur`` px
    and given a little noise, with its landmarks moved alike (and a function that moves any other
    map of the crop alike). The eye in it is exactly the truth, bent out of place: the pair teaches
    a warp model to bend it back and take it."""
    import cv2

    r = image.shape[0]
    m = cv2.getRotationMatrix2D(((r - 1) / 2, (r - 1) / 2), float(rng.uniform(-turn, turn)), float(1 + rng.uniform(-scale, scale)))
    m[:, 2] += rng.uniform(-shift, shift, 2) * r
    def move(a: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(a, m, (r, r), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    moved = move(image)
    sigma = float(rng.uniform(0.0, blur))
    if sigma > 0.2:
        moved = cv2.GaussianBlur(moved, (0, 0), sigma)
    noisy = moved.astype(np.float32) + rng.normal(0.0, 2.0, moved.shape).astype(np.float32)
    lm = np.asarray(landmarks, np.float64) @ m[:, :2].T + m[:, 2]
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8), lm, move


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
    self_ref: float = 0.0  # replace the reference by the target itself, moved and softened (self_reference)


# --------------------------------------------------------------------------------------------
# The face cache a run reads, and its counts


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


def wait_for_file(path: Path, poll: float = 2.0) -> None:
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
