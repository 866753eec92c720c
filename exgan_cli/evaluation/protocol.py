"""`exgan evaluate`: how well models in-paint eyes, against baselines, on the same faces.

Protocol (Dolhansky & Canton Ferrer 2018, section 5). The faces come from the aligned-face cache
(dataset.py: the detect -> landmarks -> eye state -> align code that open-eyes runs), at each
model's own resolution. Targets are open-eyed faces (not closed, both eye aspect ratios at
least ``min_ear``, as in training) of persons with two or more of them. Both eyes of a target are
masked with the deterministic eye boxes (geometry.eye_boxes, no jitter) of its cached landmarks
and in-painted with a reference of the same person (the next of that person's open-eyed faces,
wrapping around); the result is compared with the real photo.

Identity test (the paper's thesis: the exemplar carries the identity). Every face is in-painted a
second time with a WRONG reference: a face of the next person in the evaluation order, the same
index in that person's faces (wrapping). A method that uses its exemplar comes closer to the truth
with the right reference; the "exemplar gain" (right vs wrong, paired per face, 95% t-interval)
says how much. Methods that ignore the reference score the same twice (gain exactly 0).

Methods, on the same faces and holes:
  telea, navier-stokes  cv2.inpaint of the aligned crop (Telea 2004; Bertalmio et al. 2001)
  poisson-copy          the reference crop's eye boxes, resized to the target's boxes, pasted with
                        Poisson blending (cv2.seamlessClone, normal clone)
  <model folder>        every --weights: stages.generate.inpaint_crops, the generator of open-eyes
                        (without open-eyes' colour match, which reads the photo under the
                        holes: here that is the answer)
Every method's result is composited into the holes with the hard mask: open-eyes feathers the
border (blend.feather_alpha), which would mix the true pixels back into the hole and flatter the
scores, so evaluation keeps the hole entirely the method's. Baselines use the eye boxes of the
first model at their resolution (MaskConfig() without models).

Metrics (metrics.py): L1 over the whole crop and over the eye boxes; PSNR, SSIM and MS-SSIM over
the eye boxes; identity distance (dlib's 128-d descriptor, faces.face_descriptor, computed on the
aligned crop with the CACHED landmarks for the real and every in-painted face alike, so detection
noise does not enter); the Fréchet distance between the descriptor sets of the real and in-painted
faces. The paper's FID and Inception score need Inception-v3 weights, which an offline install
does not have: they are not computed (the JSON's notes say so).

Real closed eyes (``evaluate_closed``): in a per-person folder, every photo with a closed-eyed face
is retouched by the full open-eyes pipeline (pipeline.retouch; references = that person's other
photos through references.load_candidates); reported are the share of retouched faces whose eyes
the eye-state detector finds open afterwards, and the identity distance to the references before
and after. Eye state is eyes.assess (the eye-state classifier, or the EAR rule without its weights),
as in open-eyes. The pipeline's self-check (selfcheck.py) stays on, as users get it: faces whose
every reference failed it are left as they were and counted as "failed_self_check" (not retouched);
``ClosedConfig.self_check=False`` (evaluate --no-self-check) measures the raw pipeline instead.
The paper's protocol above (``evaluate``) never involves the self-check: it calls the generator
directly (stages.generate.inpaint_crops) on aligned crops.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from exgan_cli.evaluation import metrics as M
from exgan_cli.training.dataset import FaceDataset, default_cache_path, list_person_photos, load_dataset, prepare_dataset
from exgan_cli.errors import DataError, ExganError, WeightsError
from exgan_cli.stages.geometry import AlignConfig, Box, MaskConfig, boxes_to_mask, eye_boxes

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
LogFn = Callable[[str], None]

FORMAT = "exgan-eval-1"
CLOSED_FORMAT = "exgan-eval-closed-1"
BASELINES = ("telea", "navier-stokes", "poisson-copy")
MIN_EAR = 0.2  # targets and references: both eyes at least this open (training's default)
PER_PERSON = 10  # photos per person considered (first by name); keeps LFW's 530 Bush photos from filling a sample
INPAINT_RADIUS = 3.0  # px at 128 px crops for cv2.inpaint (scaled with the resolution)
GRID_ROWS = 6

# (key, label, higher is better) for the per-face metrics, in table order
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("l1_face", "L1 face", False),
    ("l1_eyes", "L1 eyes", False),
    ("psnr_eyes", "PSNR eyes", True),
    ("ssim_eyes", "SSIM eyes", True),
    ("ms_ssim_eyes", "MS-SSIM eyes", True),
    ("detail_eyes", "detail eyes", True),
    ("seam_eyes", "seam eyes", False),
    ("colour_eyes", "colour eyes", False),
    ("identity", "ID dist", False),
)
LIGHT_SHARE = 1 / 3  # the light-eyed faces: this share whose true irises are least red relative to the skin
SET_METRIC = ("frechet_descriptor", "FD desc", False)

NOTES = [
    "L1 in 0..1 intensity units (pixel / 255), over the whole aligned crop (l1_face) and over the eye boxes (l1_eyes).",
    "PSNR, SSIM and MS-SSIM over the eye boxes; SSIM maps use the whole crop (Gaussian window 1.5), averaged over the boxes.",
    "MS-SSIM keeps only the scales at which the eye boxes are still 6 px across (ms_ssim_scales per resolution); weights renormalised.",
    "detail_eyes: fine detail (variance of the Laplacian of luminance inside the eye boxes, 2 px in from their border) of the result over the real eyes': 1 = as detailed as the truth, below 1 = softer.",
    "seam_eyes: how visible the eye boxes' border is: mean difference between the result's and the real photo's luminance gradients on a 2 px band straddling the border (0..1 units; 0 = continuous exactly as the truth; a 10-level step ~0.02).",
    "colour_eyes: CIE76 distance between the iris colour of the result and of the truth (eye_colour.py: median CIELAB inside each eye contour, in the central 0.44 of the eye's width, minus the cheeks' median), both read at the truth's landmarks.",
    "natural_colour: the same distance between the right reference's own irises (relative to its cheeks) and the truth's: how far a perfect copy of the reference's eye colour would be.",
    "light: the third of the faces whose true irises are least red (a*) relative to the skin, where a brown prior is wrong; colour eyes on them, the exemplar gain and the paired comparison.",
    "identity: Euclidean distance between dlib 128-d descriptors of the in-painted and the real aligned crop, both with the cached landmarks (< 0.6: same person for dlib).",
    "frechet_descriptor: Fréchet distance between Gaussians fitted to the descriptors of the real and the in-painted faces, bias-corrected by the bootstrap (basic bootstrap 95% CI); "
    "it is NOT FID: FID needs Inception-v3 weights, unavailable offline. With fewer faces than 128 it is biased upwards: compare methods at equal N only.",
    "Inception score: not computed (needs Inception-v3 weights, unavailable offline).",
    "Results are composited into the eye boxes with the hard mask (no feathering), so no true pixel is mixed back into the hole.",
    "vs_primary: per-face paired difference between a method and the first model (both with the right reference), signed so that positive means the first model is better; 95% Student-t interval.",
    "exemplar_gain: per-face paired difference between the wrong-reference and the right-reference score, signed so that positive means the right reference is better; 95% Student-t interval.",
]


# ---------------------------------------------------------------------------------------
# Configuration and results


@dataclass
class EvalConfig:
    data: Optional[Path] = None  # one sub-folder per person; None: the data folder the --cache was made from
    weights: list[str] = field(default_factory=list)  # model folders / Hub ids to evaluate
    cache: Optional[Path] = None  # face cache at the first model's resolution; default dataset.default_cache_path
    limit: Optional[int] = None  # at most this many target faces (a seeded subset of persons)
    seed: int = 0  # orders the persons (the subset, grid rows, wrong references) and the bootstrap
    per_person: int = PER_PERSON  # photos of each person considered, first by name (0: all)
    min_ear: float = MIN_EAR  # open-eyed: both eye aspect ratios at least this
    baselines: tuple[str, ...] = BASELINES  # which baselines to run
    device: str = "auto"  # where the generators run: auto, cpu, cuda, cuda:N
    batch_size: int = 16  # faces per generator call
    workers: int = 0  # processes preparing the cache (0: all cores)
    grid_rows: int = GRID_ROWS  # faces in the grid
    bootstrap: int = 200  # resamples for the Fréchet distance's interval


@dataclass
class Protocol:
    """Which faces are evaluated, with which references (paths relative to the data folder)."""

    targets: list[str]
    references: list[str]
    wrong_references: list[str]
    persons: list[str]  # person of each target
    wrong_persons: list[str]  # person of each wrong reference (never the target's)

    def __len__(self) -> int:
        return len(self.targets)

    def photos(self) -> list[str]:
        return sorted(set(self.targets) | set(self.references) | set(self.wrong_references))

    def keep(self, idx: Sequence[int]) -> "Protocol":
        return Protocol(*[[lst[i] for i in idx] for lst in (self.targets, self.references, self.wrong_references, self.persons, self.wrong_persons)])


@dataclass
class MethodInfo:
    name: str
    kind: str  # "baseline" | "model"
    uses_reference: bool
    resolution: int
    mask: dict
    weights: Optional[str] = None  # model source
    mode: Optional[str] = None  # model mode: reference | code | none
    sha256: Optional[str] = None
    seconds: float = 0.0  # time spent in-painting (both references), without the metrics

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "uses_reference": self.uses_reference,
            "resolution": self.resolution, "mask": self.mask, "weights": self.weights, "mode": self.mode,
            "sha256": self.sha256, "seconds": round(self.seconds, 3),
        }


@dataclass
class EvalResult:
    protocol: Protocol
    methods: list[MethodInfo]
    rows: list[dict]  # one per (face, method, reference kind)
    summary: dict  # method -> {"right": {...}, "wrong": {...}, "exemplar_gain": {...}}
    data: str
    caches: list[str]
    ms_ssim_scales: dict  # resolution -> scales
    seed: int
    limit: Optional[int]
    notes: list[str]
    seconds: float = 0.0
    grid: Optional[np.ndarray] = None
    colour: dict = field(default_factory=dict)  # colour_summary: light-eyed faces and the natural figure

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "data": self.data,
            "caches": self.caches,
            "seed": self.seed,
            "limit": self.limit,
            "faces": len(self.protocol),
            "persons": len(set(self.protocol.persons)),
            "seconds": round(self.seconds, 2),
            "ms_ssim_scales": {str(k): v for k, v in self.ms_ssim_scales.items()},
            "metrics": {k: {"label": label, "higher_is_better": hib} for k, label, hib in (*METRICS, SET_METRIC)},
            "methods": [m.to_dict() for m in self.methods],
            "summary": self.summary,
            "colour": self.colour,
            "notes": self.notes,
            "rows": self.rows,
        }


# ---------------------------------------------------------------------------------------
# Which faces: the protocol


def person_photos(data_dir: Path, per_person: int = PER_PERSON) -> dict[str, list[str]]:
    """Person -> photo paths relative to data_dir (sorted; the first per_person, 0 = all)."""
    out: dict[str, list[str]] = {}
    for person, photo in list_person_photos(data_dir):
        out.setdefault(person, []).append(str(photo.relative_to(data_dir)))
    if per_person:
        out = {p: v[:per_person] for p, v in out.items()}
    return out


def person_order(persons: Sequence[str], seed: int) -> list[str]:
    """The persons in a seeded random order (the evaluation order)."""
    names = sorted(persons)
    rng = np.random.default_rng(seed)
    return [names[i] for i in rng.permutation(len(names))]


def _groups(order: Sequence[str], eligible: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    return [(p, eligible[p]) for p in order if len(eligible.get(p, ())) >= 2]


def _enough(order: Sequence[str], eligible: dict[str, list[str]], limit: Optional[int]) -> bool:
    """Whether the persons in ``order`` settle the protocol: ``limit`` targets and one more person."""
    if limit is None:
        return False
    n = 0
    groups = _groups(order, eligible)
    for k, (_, faces) in enumerate(groups):
        n += len(faces)
        if n >= limit:
            return k + 1 < len(groups)
    return False


def select_protocol(order: Sequence[str], eligible: dict[str, list[str]], limit: Optional[int] = None) -> Protocol:
    """Targets, right and wrong references from each person's open-eyed faces (``eligible``, in
    photo-name order), persons taken in ``order`` until ``limit`` targets.

    Right reference: the person's next open-eyed face (wrapping). Wrong reference: the same index
    (wrapping) in the next person's faces; the next person after the last one taken is the next
    eligible person in the order (or the first, when all were taken).
    """
    groups = _groups(order, eligible)
    chosen: list[tuple[str, list[str]]] = []
    n = 0
    for g in groups:
        if limit is not None and n >= limit:
            break
        chosen.append(g)
        n += len(g[1])
    pool = chosen + ([groups[len(chosen)]] if len(chosen) < len(groups) else [])
    if len(pool) < 2:
        raise DataError("evaluation needs open-eyed faces of at least two persons with two such faces each")
    t, r, w, p, wp = [], [], [], [], []
    for k, (person, faces) in enumerate(chosen):
        other, other_faces = pool[(k + 1) % len(pool)]
        for j, face in enumerate(faces):
            if limit is not None and len(t) >= limit:
                break
            t.append(face)
            r.append(faces[(j + 1) % len(faces)])
            w.append(other_faces[j % len(other_faces)])
            p.append(person)
            wp.append(other)
    return Protocol(t, r, w, p, wp)


# ---------------------------------------------------------------------------------------
# Faces from the cache


class FacePool:
    """Cached faces from one or more caches of the same data folder and alignment, by photo path."""

    def __init__(self, datasets: Sequence[FaceDataset], align: AlignConfig):
        self.align = align
        self.datasets = list(datasets)
        self.index: dict[str, tuple[int, int]] = {}
        for k, ds in enumerate(self.datasets):
            if ds.align.resolution != align.resolution:
                raise DataError(f"cache of {ds.meta.get('data_dir', '?')}: faces at {ds.align.resolution} px, not {align.resolution}")
            for i, p in enumerate(ds.paths):
                self.index.setdefault(p, (k, i))

    def __contains__(self, path: str) -> bool:
        return path in self.index

    def crop(self, path: str) -> np.ndarray:
        k, i = self.index[path]
        return self.datasets[k].crops[i]

    def landmarks(self, path: str) -> np.ndarray:
        k, i = self.index[path]
        return self.datasets[k].landmarks[i].astype(np.float64)

    def usable(self, path: str, min_ear: float) -> bool:
        if path not in self.index:
            return False
        k, i = self.index[path]
        ds = self.datasets[k]
        return bool(not ds.closed[i] and ds.ear[i].min() >= min_ear)

    def eligible(self, photos: dict[str, list[str]], min_ear: float) -> dict[str, list[str]]:
        return {p: [f for f in files if self.usable(f, min_ear)] for p, files in photos.items()}


def subset_cache_path(data_dir: Path, photos: Sequence[str], align: AlignConfig) -> Path:
    """Cache file for a subset of a data folder's photos, beside dataset.default_cache_path's."""
    full = default_cache_path(data_dir, align)
    digest = hashlib.sha256(json.dumps({"photos": sorted(photos), "cache": full.name}).encode()).hexdigest()[:12]
    return full.with_name(f"{full.stem}-subset-{digest}.npz")


def _prepare(data_dir: Path, out: Path, align: AlignConfig, photos: Optional[Sequence[str]], workers: int,
             progress: Optional[ProgressFn], log: Optional[LogFn]) -> Optional[Path]:
    if out.is_file():
        return out
    what = f"{len(photos)} photos" if photos is not None else "all photos"
    if log:
        log(f"preparing faces ({what}, {align.resolution} px) of {data_dir} -> {out}")
    stage = f"faces {align.resolution} px"
    cb = (lambda done, total: progress(stage, done, total)) if progress else None
    try:
        return prepare_dataset(
            data_dir, out, align, workers=workers, progress=cb,
            photos=None if photos is None else [data_dir / p for p in photos],
        )
    except DataError:
        if photos is None:
            raise
        return None  # no face in any of these photos: nothing to cache


def _chunked_pool(data_dir: Path, align: AlignConfig, photos: dict[str, list[str]], order: list[str], cfg: EvalConfig,
                  progress: Optional[ProgressFn], log: Optional[LogFn]) -> tuple[FacePool, list[str]]:
    """Prepare only as many persons (in order) as --limit needs, a chunk at a time."""
    datasets: list[FaceDataset] = []
    files: list[str] = []
    done = 0
    pool = FacePool([], align)
    while done < len(order):
        prefix = order[:done]
        eligible = pool.eligible({p: photos[p] for p in prefix}, cfg.min_ear)
        if _enough(prefix, eligible, cfg.limit):
            break
        have = sum(len(f) for _, f in _groups(prefix, eligible))
        want = int(1.5 * max(0, (cfg.limit or 0) - have)) + 16
        chunk: list[str] = []
        while done < len(order) and (not chunk or len(chunk) < want):
            chunk += photos[order[done]]
            done += 1
        path = _prepare(data_dir, subset_cache_path(data_dir, chunk, align), align, chunk, cfg.workers, progress, log)
        if path is not None:
            datasets.append(load_dataset(path))
            files.append(str(path))
            pool = FacePool(datasets, align)
    return pool, files


def _full_pool(data_dir: Optional[Path], cache: Path, align: AlignConfig, cfg: EvalConfig,
               progress: Optional[ProgressFn], log: Optional[LogFn]) -> FacePool:
    if not cache.is_file():
        if data_dir is None:
            raise DataError(f"{cache}: no such cache, and no data folder (--data) to prepare it from")
        _prepare(data_dir, cache, align, None, cfg.workers, progress, log)
    ds = load_dataset(cache)
    if ds.align.resolution != align.resolution:
        raise DataError(f"{cache}: faces aligned at {ds.align.resolution} px, the model wants {align.resolution}")
    return FacePool([ds], align)


# ---------------------------------------------------------------------------------------
# Methods


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def composite(result: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The crop with its holes (mask 1) taken from ``result``: uint8 (R, R, 3)."""
    m = np.asarray(mask, dtype=np.float32)[..., None]
    return _u8(m * np.asarray(result, np.float32) + (1 - m) * crop.astype(np.float32))


def _radius(resolution: int) -> float:
    return max(1.0, INPAINT_RADIUS * resolution / 128)


def telea_inpaint(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Telea (fast marching) in-painting of the holes; uint8 (R, R, 3)."""
    import cv2

    m = (np.asarray(mask) > 0.5).astype(np.uint8)
    return cv2.inpaint(np.ascontiguousarray(crop), m, _radius(crop.shape[0]), cv2.INPAINT_TELEA)


def navier_stokes_inpaint(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Navier-Stokes in-painting of the holes; uint8 (R, R, 3)."""
    import cv2

    m = (np.asarray(mask) > 0.5).astype(np.uint8)
    return cv2.inpaint(np.ascontiguousarray(crop), m, _radius(crop.shape[0]), cv2.INPAINT_NS)


def _int_box(b: Box, size: int) -> tuple[int, int, int, int]:
    """A box rounded like geometry.boxes_to_mask, kept one pixel inside the image (seamlessClone)."""
    x0, y0 = max(1, int(round(b[0]))), max(1, int(round(b[1])))
    x1, y1 = min(size - 1, int(round(b[2]))), min(size - 1, int(round(b[3])))
    return x0, y0, x1, y1


def poisson_copy_paste(crop: np.ndarray, boxes: Sequence[Box], ref_crop: np.ndarray, ref_boxes: Sequence[Box]) -> np.ndarray:
    """The reference's eye boxes resized onto the target's and Poisson-blended into the crop.

    The target's own pixels inside its boxes are never used: they are first filled by Telea, so
    the boundary values of the Poisson equation come from outside the hole only.
    """
    import cv2

    size = crop.shape[0]
    mask = boxes_to_mask(boxes, size)
    base = telea_inpaint(crop, mask)
    src = base.copy()
    clone = np.zeros((size, size), np.uint8)
    for tb, rb in zip(boxes, ref_boxes):
        x0, y0, x1, y1 = _int_box(tb, size)
        r0, s0, r1, s1 = _int_box(rb, size)
        if x1 - x0 < 2 or y1 - y0 < 2 or r1 - r0 < 2 or s1 - s0 < 2:
            continue
        patch = cv2.resize(ref_crop[s0:s1, r0:r1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        src[y0:y1, x0:x1] = patch
        clone[y0:y1, x0:x1] = 255
    ys, xs = np.nonzero(clone)
    if len(xs) == 0:
        return base
    bx, by = xs.min(), ys.min()
    bw, bh = xs.max() - bx + 1, ys.max() - by + 1
    centre = (int(bx + bw // 2), int(by + bh // 2))  # seamlessClone puts the mask's bounding box here
    out = cv2.seamlessClone(np.ascontiguousarray(src), np.ascontiguousarray(base), clone, centre, cv2.NORMAL_CLONE)
    return composite(out, crop, mask)


@dataclass
class Batch:
    """Aligned targets and references of one resolution and mask config."""

    crops: np.ndarray  # (B, R, R, 3) uint8
    boxes: list[list[Box]]
    masks: np.ndarray  # (B, R, R) float32
    refs: dict[str, tuple[np.ndarray, list[list[Box]], np.ndarray, list[np.ndarray]]]  # "right"/"wrong" -> (crops, boxes, masks, landmarks)
    landmarks: list[np.ndarray] = field(default_factory=list)  # (68, 2) crop-space landmarks per target


def model_inpaint(model, batch: Batch, which: str) -> np.ndarray:
    """The open-eyes generator (stages.generate.inpaint_crops), hard-composited: the model's own output.

    open-eyes then shifts the colours to the photo's skin on a rim just inside the eye boxes
    (blend.match_colour). Here the boxes hold the real eyes the method must not see, so that
    step is left out: it would read the answer.
    """
    from exgan_cli.stages.generate import AlignedFace, exemplar_batch, inpaint_crops

    rc, rb, rm, rl = batch.refs[which]
    none = np.eye(2, 3, dtype=np.float32)  # crops are already aligned; the matrix is not read here
    targets = [AlignedFace(c, none, lm, b, m) for c, lm, m, b in zip(batch.crops, batch.landmarks, batch.masks, batch.boxes)]
    refs = [AlignedFace(c, none, lm, b, m) for c, lm, m, b in zip(rc, rl, rm, rb)]
    raw = inpaint_crops(model, batch.crops, batch.masks, exemplar_batch(model, targets, refs))
    return np.stack([composite(g.astype(np.float32), c, m) for g, c, m in zip(raw, batch.crops, batch.masks)])


class _Method:
    def __init__(self, info: MethodInfo, run: Callable[[Batch, str], np.ndarray]):
        self.info = info
        self._run = run

    def run(self, batch: Batch, which: str) -> np.ndarray:
        t = time.perf_counter()
        out = self._run(batch, which)
        self.info.seconds += time.perf_counter() - t
        return out


def _baseline(name: str, resolution: int, mask_cfg: MaskConfig, label: Optional[str] = None) -> _Method:
    info = MethodInfo(
        name=label or name, kind="baseline", uses_reference=name == "poisson-copy", resolution=resolution, mask=mask_cfg.to_dict()
    )
    if name == "telea":
        return _Method(info, lambda b, w: np.stack([telea_inpaint(c, m) for c, m in zip(b.crops, b.masks)]))
    if name == "navier-stokes":
        return _Method(info, lambda b, w: np.stack([navier_stokes_inpaint(c, m) for c, m in zip(b.crops, b.masks)]))
    if name == "poisson-copy":
        def run(b: Batch, which: str) -> np.ndarray:
            rc, rb, _, _ = b.refs[which]
            return np.stack([poisson_copy_paste(c, bx, r, rbx) for c, bx, r, rbx in zip(b.crops, b.boxes, rc, rb)])

        return _Method(info, run)
    raise ValueError(f"unknown baseline {name!r} (one of {', '.join(BASELINES)})")


def _model_method(name: str, model) -> _Method:
    info = MethodInfo(
        name=name, kind="model", uses_reference=model.model_cfg.mode != "none", resolution=model.align_cfg.resolution,
        mask=model.mask_cfg.to_dict(), weights=model.source, mode=model.model_cfg.mode, sha256=model.sha256,
    )

    def run(b: Batch, which: str) -> np.ndarray:
        return model_inpaint(model, b, which)

    return _Method(info, run)


# ---------------------------------------------------------------------------------------
# Scoring


def crop_descriptor(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's identity descriptor of an aligned crop, with the given (crop-space) landmarks."""
    from exgan_cli.stages.faces import Face, face_descriptor

    r = crop.shape[0]
    face = Face(box=(0, 0, r, r), landmarks=np.asarray(landmarks, np.float64), detector="hog", score=0.0)
    return face_descriptor(np.ascontiguousarray(crop), face)


def score_face(result: np.ndarray, truth: np.ndarray, mask: np.ndarray, scales: int, landmarks: np.ndarray) -> dict[str, float]:
    """The per-face image metrics of one in-painted crop against the real one (``landmarks``: the
    real face's, in crop coordinates)."""
    from exgan_cli.stages.eye_colour import colour_eyes

    return {
        "colour_eyes": colour_eyes(result, truth, landmarks),
        "l1_face": M.l1(result, truth),
        "l1_eyes": M.l1(result, truth, mask),
        "psnr_eyes": M.psnr(result, truth, mask),
        "ssim_eyes": M.ssim(result, truth, mask),
        "ms_ssim_eyes": M.ms_ssim(result, truth, mask, scales),
        "detail_eyes": M.detail_ratio(result, truth, mask),
        "seam_eyes": M.seam_error(result, truth, mask),
    }


def _gain(right: Sequence[float], wrong: Sequence[float], higher_is_better: bool) -> M.Interval:
    d = np.asarray(right, np.float64) - np.asarray(wrong, np.float64)
    return M.mean_ci(d if higher_is_better else -d)


def light_eyed(redness: Sequence[float], share: float = LIGHT_SHARE) -> list[int]:
    """Indices of the ``share`` of faces whose true irises are least red relative to the skin
    (faces whose colour could not be read are left out)."""
    r = np.asarray(redness, dtype=np.float64)
    ok = np.nonzero(np.isfinite(r))[0]
    n = int(round(len(ok) * share))
    return sorted(ok[np.argsort(r[ok], kind="stable")[:n]].tolist())


def colour_summary(rows: Sequence[dict], methods: Sequence[MethodInfo], light: set[str], natural: dict[str, float]) -> dict:
    """Eye colour where a brown prior is wrong: per method colour eyes on the light-eyed faces
    (right and wrong reference, exemplar gain, paired with the first model), and the natural
    figure (the right reference's own iris colour against the truth's) on all and light faces."""
    def on(photo_rows: Sequence[dict]) -> list[dict]:
        return [r for r in photo_rows if r["photo"] in light]

    out: dict[str, Any] = {
        "faces": len(light),
        "natural": {
            "all": M.mean_ci(list(natural.values())).to_dict(),
            "light": M.mean_ci([v for p, v in natural.items() if p in light]).to_dict(),
        },
        "methods": {},
    }
    primary = next((m for m in methods if m.kind == "model"), None)
    for info in methods:
        mine = {w: on([r for r in rows if r["method"] == info.name and r["ref"] == w]) for w in ("right", "wrong")}
        entry = {w: M.mean_ci([r["colour_eyes"] for r in mine[w]]).to_dict() for w in ("right", "wrong")}
        entry["exemplar_gain"] = _gain([r["colour_eyes"] for r in mine["right"]], [r["colour_eyes"] for r in mine["wrong"]], False).to_dict()
        if primary is not None and info.name != primary.name:
            entry["vs_primary"] = paired_difference(on(rows), primary.name, info.name)["colour_eyes"]
        out["methods"][info.name] = entry
    return out


def summarise(rows: Sequence[dict], descriptors: dict, real: dict, methods: Sequence[MethodInfo],
              bootstrap: int = 200, seed: int = 0) -> dict:
    """Per method: means with 95% CIs (right and wrong reference) and the exemplar gain.

    ``descriptors[(method, which)]`` and ``real[resolution]`` are (N, 128) arrays in face order.
    """
    out: dict[str, Any] = {}
    for info in methods:
        mine = {w: [r for r in rows if r["method"] == info.name and r["ref"] == w] for w in ("right", "wrong")}
        entry: dict[str, Any] = {}
        for which in ("right", "wrong"):
            entry[which] = {k: M.mean_ci([r[k] for r in mine[which]]).to_dict() for k, _, _ in METRICS}
        gain = {k: _gain([r[k] for r in mine["right"]], [r[k] for r in mine["wrong"]], hib).to_dict() for k, _, hib in METRICS}
        x = real[info.resolution]
        d_right, d_wrong = descriptors[(info.name, "right")], descriptors[(info.name, "wrong")]
        if np.array_equal(d_right, d_wrong):  # blind to the reference: one set, no gain
            fr = M.bootstrap_ci(lambda i: M.frechet_from_samples(x[i], d_right[i]), len(x), bootstrap, seed, method="basic")
            fw, fg = fr, M.Interval(0.0, 0.0, 0.0, len(x))
        else:
            def stats(i: np.ndarray) -> list[float]:
                a, b = M.frechet_from_samples(x[i], d_right[i]), M.frechet_from_samples(x[i], d_wrong[i])
                return [a, b, b - a]

            fr, fw, fg = M.bootstrap_cis(stats, len(x), bootstrap, seed, method="basic")
        entry["right"][SET_METRIC[0]], entry["wrong"][SET_METRIC[0]] = fr.to_dict(), fw.to_dict()
        gain[SET_METRIC[0]] = fg.to_dict()
        entry["exemplar_gain"] = gain
        out[info.name] = entry
    primary = next((m for m in methods if m.kind == "model"), None)
    if primary is not None:
        for info in methods:
            if info.name != primary.name:
                out[info.name]["vs_primary"] = paired_difference(rows, primary.name, info.name)
    return out


def paired_difference(rows: Sequence[dict], primary: str, other: str) -> dict[str, Any]:
    """How much better ``primary`` is than ``other`` on the same faces, each with its right
    reference: per metric the mean of the per-face differences with a 95% Student-t interval,
    signed so that positive means the primary is better. Pairing removes the spread between
    faces, so it separates two methods whose own intervals overlap."""
    a = {r["photo"]: r for r in rows if r["method"] == primary and r["ref"] == "right"}
    b = {r["photo"]: r for r in rows if r["method"] == other and r["ref"] == "right"}
    both = sorted(set(a) & set(b))
    return {
        "primary": primary,
        **{k: _gain([a[p][k] for p in both], [b[p][k] for p in both], hib).to_dict() for k, _, hib in METRICS},
    }


# ---------------------------------------------------------------------------------------
# The grid


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    w = tile.shape[1]
    bar = np.full((18, w, 3), 255, np.uint8)
    scale = 0.38
    while len(text) > 3 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > w - 4:
        text = text[:-2] + "~"
    cv2.putText(bar, text, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def make_grid(columns: Sequence[tuple[str, Sequence[np.ndarray]]], tile: int = 128, gap: int = 2) -> np.ndarray:
    """Columns of tiles (each resized to tile x tile) under their labels: RGB uint8."""
    import cv2

    rows = max(len(t) for _, t in columns)
    cols = []
    for label, tiles in columns:
        cells = [_label(np.zeros((tile, tile, 3), np.uint8), label)]
        for t in tiles:
            if t.shape[0] != tile:
                t = cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA if t.shape[0] > tile else cv2.INTER_CUBIC)
            cells += [np.full((gap, tile, 3), 255, np.uint8), t]
        for _ in range(rows - len(tiles)):
            cells += [np.full((gap, tile, 3), 255, np.uint8), np.full((tile, tile, 3), 255, np.uint8)]
        cols += [np.vstack(cells), np.full((18 + rows * (tile + gap), gap, 3), 255, np.uint8)]
    return np.hstack(cols[:-1])


def grid_faces(protocol: Protocol, rows: int) -> list[int]:
    """Up to ``rows`` target indices for the grid, one person after another (round robin in the
    evaluation order), so that the grid shows several people."""
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(protocol.persons):
        by_person.setdefault(p, []).append(i)
    out: list[int] = []
    depth = 0
    while len(out) < min(rows, len(protocol)):
        for members in by_person.values():
            if depth < len(members) and len(out) < rows:
                out.append(members[depth])
        depth += 1
    return out


def _masked_view(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = crop.copy()
    out[mask > 0.5] = 128
    return out


# ---------------------------------------------------------------------------------------
# The evaluation


def _load_models(specs: Sequence[str], device: str, log: Optional[LogFn]) -> list[tuple[str, Any]]:
    from exgan_cli.model.weights import load_pretrained, resolve_device

    dev = resolve_device(device)
    models, names = [], set()
    for spec in specs:
        model = load_pretrained(spec, device=dev)
        name = Path(str(spec).rstrip("/")).name or str(spec)
        base, k = name, 2
        while name in names or name in BASELINES:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        if log:
            log(f"model {name}: {model.model_cfg.mode} mode, {model.align_cfg.resolution} px, {model.source} on {dev}")
        models.append((name, model))
    return models


def default_weights() -> list[str]:
    """The bundled default model's folder when it is there, else nothing (baselines only)."""
    from exgan_cli.model.weights import resolve_default

    try:
        return [str(resolve_default())]
    except WeightsError:
        return []


def evaluate(cfg: EvalConfig, progress: Optional[ProgressFn] = None, log: Optional[LogFn] = None) -> EvalResult:
    """Run the protocol on cfg.data for every model of cfg.weights and every baseline."""
    t_start = time.perf_counter()
    if cfg.limit is not None and cfg.limit < 1:
        raise DataError(f"--limit must be at least 1, not {cfg.limit}")
    for b in cfg.baselines:
        if b not in BASELINES:
            raise DataError(f"unknown baseline {b!r} (one of {', '.join(BASELINES)})")
    models = _load_models(cfg.weights, cfg.device, log)
    if not models and not cfg.baselines:
        raise DataError("nothing to evaluate: no model (--weights) and no baseline")

    # Resolutions, each with the mask configs of its models (baselines take the first one's).
    resolutions: list[int] = []
    for _, m in models:
        if m.align_cfg.resolution not in resolutions:
            resolutions.append(m.align_cfg.resolution)
    if not resolutions:
        resolutions = [AlignConfig().resolution]
    base_align = next((m.align_cfg for _, m in models), AlignConfig())
    aligns = {base_align.resolution: base_align}
    for _, m in models:
        aligns.setdefault(m.align_cfg.resolution, m.align_cfg)

    data_dir = Path(cfg.data).expanduser() if cfg.data else None
    caches: list[str] = []
    if data_dir is None:
        if cfg.cache is None:
            raise DataError("no data: give a data folder (--data) or a prepared cache (--cache)")
        meta_dir = load_dataset(cfg.cache).meta.get("data_dir")
        data_dir = Path(meta_dir) if meta_dir and Path(meta_dir).is_dir() else None
    if data_dir is not None and not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder")

    # The faces at the base resolution, and the protocol.
    if cfg.cache is not None:
        cache_file = Path(cfg.cache).expanduser()
    else:
        cache_file = default_cache_path(data_dir, base_align)  # type: ignore[arg-type]
    if cfg.cache is not None or cache_file.is_file() or cfg.limit is None:
        pool = _full_pool(data_dir, cache_file, base_align, cfg, progress, log)
        caches.append(str(cache_file))
        if data_dir is not None:
            photos = person_photos(data_dir, cfg.per_person)
        else:  # only the cache: its own photo list
            photos = {}
            for ds in pool.datasets:
                for p, i in zip(ds.paths, ds.person):
                    photos.setdefault(ds.persons[i], []).append(p)
            photos = {k: sorted(v)[: cfg.per_person or None] for k, v in photos.items()}
        order = person_order(photos, cfg.seed)
    else:
        photos = person_photos(data_dir, cfg.per_person)  # type: ignore[arg-type]
        order = person_order(photos, cfg.seed)
        pool, files = _chunked_pool(data_dir, base_align, photos, order, cfg, progress, log)  # type: ignore[arg-type]
        caches += files
    protocol = select_protocol(order, pool.eligible(photos, cfg.min_ear), cfg.limit)
    pools = {base_align.resolution: pool}
    for res in resolutions:
        if res in pools:
            continue
        if data_dir is None:
            raise DataError(f"a model works at {res} px: the data folder (--data) is needed to align its faces")
        align = aligns[res]
        full = default_cache_path(data_dir, align)
        if full.is_file():
            path = full
        else:
            path = _prepare(data_dir, subset_cache_path(data_dir, protocol.photos(), align), align, protocol.photos(), cfg.workers, progress, log)
            if path is None:
                raise DataError(f"{data_dir}: no face found at {res} px")
        caches.append(str(path))
        pools[res] = FacePool([load_dataset(path)], align)
    # Same faces for everyone: drop any face some resolution lacks (only possible with stale caches).
    keep = [i for i in range(len(protocol)) if all(
        all(p in pl for p in (protocol.targets[i], protocol.references[i], protocol.wrong_references[i])) for pl in pools.values()
    )]
    if len(keep) < len(protocol):
        if log:
            log(f"{len(protocol) - len(keep)} faces missing from a cache at another resolution: left out")
        protocol = protocol.keep(keep)
    n = len(protocol)
    if n == 0:
        raise DataError("no face to evaluate")
    if log:
        log(f"{n} faces of {len(set(protocol.persons))} persons")

    # Method groups: (resolution, mask config) -> methods; baselines join the first group of each resolution.
    groups: dict[tuple[int, MaskConfig], list[_Method]] = {}
    for res in resolutions:
        mask_cfg = next((m.mask_cfg for _, m in models if m.align_cfg.resolution == res), MaskConfig())
        suffix = f"@{res}" if len(resolutions) > 1 else ""
        groups.setdefault((res, mask_cfg), []).extend(_baseline(b, res, mask_cfg, b + suffix) for b in cfg.baselines)
    for name, m in models:
        groups.setdefault((m.align_cfg.resolution, m.mask_cfg), []).append(_model_method(name, m))

    from exgan_cli.stages.eye_colour import colour_distance, iris_colour
    from exgan_cli.stages.pose import head_pose
    from exgan_cli.stages.pose import pose_difference

    rows: list[dict] = []
    redness = np.full(n, np.nan)  # the true irises' a* relative to the skin (light_eyed)
    natural: dict[str, float] = {}  # target -> the right reference's iris colour against the truth's
    descriptors: dict[tuple[str, str], np.ndarray] = {}
    real: dict[int, np.ndarray] = {}
    real_done: dict[int, np.ndarray] = {}
    scales: dict[int, int] = {}
    grid_idx = grid_faces(protocol, cfg.grid_rows)
    grid_tiles: dict[str, dict[int, np.ndarray]] = {}  # column -> face index -> tile
    total = n * len(groups)
    done = 0
    method_infos = [m.info for ms in groups.values() for m in ms]
    for (res, mask_cfg), methods in groups.items():
        fp = pools[res]
        if res not in real:
            real[res] = np.zeros((n, 128), np.float32)
            real_done[res] = np.zeros(n, bool)
        for meth in methods:
            for which in ("right", "wrong"):
                descriptors[(meth.info.name, which)] = np.zeros((n, 128), np.float32)
        if res not in scales:  # MS-SSIM scales from the median eye box of all the targets at this resolution
            sides = [M.box_short_side(eye_boxes(fp.landmarks(t), mask_cfg)) for t in protocol.targets]
            scales[res] = M.ms_ssim_scales(float(np.median(sides)))
        for start in range(0, n, cfg.batch_size):
            idx = list(range(start, min(n, start + cfg.batch_size)))

            def prep(paths: list[str]) -> tuple[np.ndarray, list[list[Box]], np.ndarray, list[np.ndarray]]:
                crops = np.stack([fp.crop(p) for p in paths])
                lms = [fp.landmarks(p) for p in paths]
                boxes = [eye_boxes(lm, mask_cfg) for lm in lms]
                masks = np.stack([boxes_to_mask(b, res) for b in boxes])
                return crops, boxes, masks, lms

            crops, boxes, masks, lms = prep([protocol.targets[i] for i in idx])
            refs = {
                "right": prep([protocol.references[i] for i in idx]),
                "wrong": prep([protocol.wrong_references[i] for i in idx]),
            }
            batch = Batch(crops, boxes, masks, refs, lms)
            poses = {w: [pose_difference(head_pose(t, (res, res)), head_pose(r, (res, res))) for t, r in zip(lms, refs[w][3])]
                     for w in ("right", "wrong")}
            for j, i in enumerate(idx):
                if not real_done[res][i]:
                    real[res][i] = crop_descriptor(crops[j], lms[j])
                    real_done[res][i] = True
                if res == resolutions[0] and protocol.targets[i] not in natural:
                    truth_c = iris_colour(crops[j], lms[j])
                    ref_c = iris_colour(refs["right"][0][j], refs["right"][3][j])
                    redness[i] = truth_c.redness if truth_c is not None else float("nan")
                    natural[protocol.targets[i]] = colour_distance(ref_c, truth_c)
            for j, i in enumerate(idx):
                if i in grid_idx:
                    grid_tiles.setdefault(f"truth@{res}", {})[i] = crops[j]
                    grid_tiles.setdefault(f"masked@{res}", {})[i] = _masked_view(crops[j], masks[j])
                    grid_tiles.setdefault(f"reference@{res}", {})[i] = refs["right"][0][j]
            for meth in methods:
                outs = {"right": meth.run(batch, "right")}
                outs["wrong"] = meth.run(batch, "wrong") if meth.info.uses_reference else outs["right"]
                right_scores: list[dict] = []
                for which in ("right", "wrong"):
                    same = which == "wrong" and not meth.info.uses_reference
                    for j, i in enumerate(idx):
                        out = outs[which][j]
                        if same:  # a method blind to the reference gave the same pixels, hence scores
                            d, scores = descriptors[(meth.info.name, "right")][i], right_scores[j]
                        else:
                            d = crop_descriptor(out, lms[j])
                            scores = score_face(out, crops[j], masks[j], scales[res], lms[j])
                            scores["identity"] = float(np.linalg.norm(d.astype(np.float64) - real[res][i]))
                        if which == "right":
                            right_scores.append(scores)
                        descriptors[(meth.info.name, which)][i] = d
                        rows.append({
                            "photo": protocol.targets[i],
                            "pose_difference": round(poses[which][j], 1),
                            "person": protocol.persons[i],
                            "reference": protocol.references[i] if which == "right" else protocol.wrong_references[i],
                            "reference_person": protocol.persons[i] if which == "right" else protocol.wrong_persons[i],
                            "method": meth.info.name,
                            "ref": which,
                            **{k: _round(v) for k, v in scores.items()},
                        })
                        if which == "right" and i in grid_idx:
                            grid_tiles.setdefault(meth.info.name, {})[i] = out
            done += len(idx)
            if progress:
                progress("evaluating", done, total)

    rows.sort(key=lambda r: (r["photo"], r["method"], r["ref"]))
    summary = summarise(rows, descriptors, real, method_infos, cfg.bootstrap, cfg.seed)
    light = {protocol.targets[i] for i in light_eyed(redness)}
    summary_colour = colour_summary(rows, method_infos, light, natural)
    r0 = resolutions[0]
    keys = [("masked", f"masked@{r0}"), ("reference", f"reference@{r0}"), *[(m.name, m.name) for m in method_infos], ("truth", f"truth@{r0}")]
    columns = [(label, [grid_tiles[key][i] for i in grid_idx]) for label, key in keys]
    grid = make_grid(columns, tile=max(resolutions)) if grid_idx else None
    notes = list(NOTES)
    if not models:
        notes.append("no model evaluated (no --weights and no bundled default weights): baselines only.")
    return EvalResult(
        protocol=protocol, methods=method_infos, rows=rows, summary=summary,
        data=str(data_dir.resolve()) if data_dir else "", caches=caches, ms_ssim_scales=scales,
        seed=cfg.seed, limit=cfg.limit, notes=notes, seconds=time.perf_counter() - t_start, grid=grid,
        colour=summary_colour,
    )


def _round(v: float, digits: int = 5) -> Optional[float]:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


# ---------------------------------------------------------------------------------------
# Real closed eyes


@dataclass
class ClosedConfig:
    data: Path  # one sub-folder per person: closed-eyed photos and open-eyed references together
    weights: list[str] = field(default_factory=list)  # models to run (at least one)
    limit: Optional[int] = None  # stop after this many closed-eyed faces
    seed: int = 0  # orders the persons
    per_person: int = PER_PERSON  # photos of each person considered, first by name (0: all)
    device: str = "auto"
    detector: str = "hog"
    grid_rows: int = GRID_ROWS
    self_check: bool = True  # the pipeline's self-check (selfcheck.py), as open-eyes runs it; False: the raw pipeline


@dataclass
class ClosedResult:
    data: str
    methods: list[MethodInfo]
    rows: list[dict]  # one per (closed-eyed face, model)
    summary: dict
    notes: list[str]
    seed: int
    limit: Optional[int]
    seconds: float = 0.0
    grid: Optional[np.ndarray] = None
    self_check: bool = True

    def to_dict(self) -> dict:
        return {
            "format": CLOSED_FORMAT,
            "data": self.data,
            "self_check": self.self_check,
            "seed": self.seed,
            "limit": self.limit,
            "faces": len({(r["photo"], r["face"]) for r in self.rows}),
            "seconds": round(self.seconds, 2),
            "methods": [m.to_dict() for m in self.methods],
            "summary": self.summary,
            "notes": self.notes,
            "rows": self.rows,
        }


CLOSED_NOTES = [
    "Targets: every face that eyes.assess (the eye-state classifier; the EAR rule without its weights) finds closed in a photo of DIR/<person>/; references: the person's other photos "
    "(references.load_candidates; pipeline.retouch picks the best open-eyed face of the same identity).",
    "opened: the retouched face, re-detected in the result by the pipeline, has open eyes by the same detector "
    "(FaceReport.eyes_after); a face not found again counts as not opened. Share with a Wilson 95% interval.",
    "self-check (selfcheck.py, on unless --no-self-check): a retouched face whose eyes are not open or whose identity moved is "
    "redone with the next reference, and left as it was when all fail (status 'failed self-check', counted in failed_self_check, "
    "not in retouched). With it on, 'opened' among retouched faces is high by construction: compare retouched/faces.",
    "identity_before/after: mean descriptor distance from the face (before: the closed-eyed original; after: re-detected in the "
    "result) to the central face of each of the person's other photos; *_chosen: to the reference the pipeline used.",
]


def _central(faces: Sequence, shape: tuple[int, ...]):
    from exgan_cli.stages.faces import central_face

    return central_face(list(faces), (shape[1], shape[0]))


def evaluate_closed(cfg: ClosedConfig, progress: Optional[ProgressFn] = None, log: Optional[LogFn] = None) -> ClosedResult:
    """Retouch every closed-eyed face of cfg.data with each model; did the eyes open, who is it?"""
    from exgan_cli.stages import eye_state as eyelib
    from exgan_cli.stages import faces as facelib
    from exgan_cli.errors import NoReferenceError
    from exgan_cli.stages.geometry import align_face
    from exgan_cli.files.images import load_image
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates
    from exgan_cli.stages.selfcheck import SelfCheckConfig

    t_start = time.perf_counter()
    if cfg.limit is not None and cfg.limit < 1:
        raise DataError(f"--limit must be at least 1, not {cfg.limit}")
    specs = list(cfg.weights)
    if not specs:
        raise WeightsError("evaluate --closed needs a model: pass --weights (no bundled default weights found)")
    models = _load_models(specs, cfg.device, log)
    infos = [
        MethodInfo(name=n, kind="model", uses_reference=m.model_cfg.mode != "none", resolution=m.align_cfg.resolution,
                   mask=m.mask_cfg.to_dict(), weights=m.source, mode=m.model_cfg.mode, sha256=m.sha256)
        for n, m in models
    ]
    data_dir = Path(cfg.data).expanduser()
    photos = person_photos(data_dir, cfg.per_person)
    order = person_order(photos, cfg.seed)
    total_photos = sum(len(photos[p]) for p in order)
    options = RetouchOptions(faces="closed", detector=cfg.detector, self_check=SelfCheckConfig(enabled=cfg.self_check))
    rows: list[dict] = []
    tiles: dict[tuple[str, int], dict[str, np.ndarray]] = {}  # grid: face -> column -> tile
    grid_align = AlignConfig(resolution=max(m.align_cfg.resolution for _, m in models))
    n_targets = scanned = 0
    for person in order:
        if cfg.limit is not None and n_targets >= cfg.limit:
            break
        found: dict[str, tuple[np.ndarray, list]] = {}
        for rel in photos[person]:
            scanned += 1
            try:
                img = load_image(data_dir / rel)
            except ExganError:
                continue
            faces = facelib.detect_faces(img.pixels, detector=cfg.detector)
            if faces:
                found[rel] = (img.pixels, faces)
            if progress:
                progress("scanning photos", scanned, total_photos)
        states = {rel: [eyelib.assess(px, f) for f in faces] for rel, (px, faces) in found.items()}
        closed = [rel for rel in found if any(s.closed for s in states[rel])]
        if not closed:
            continue
        cands, _ = load_candidates([data_dir / rel for rel in found], detector=cfg.detector)
        for rel in closed:
            if cfg.limit is not None and n_targets >= cfg.limit:
                break
            pixels, faces = found[rel]
            target = data_dir / rel
            refs = [c for c in cands if c.path != target]
            # The person's reference faces for the identity check: the central face of each other photo.
            ref_desc = []
            for other in sorted({str(c.path) for c in refs}):
                mine = [c for c in refs if str(c.path) == other]
                centre = _central([c.face for c in mine], mine[0].pixels.shape)
                ref_desc += [c.descriptor for c in mine if c.face is centre and not c.eye.closed]
            closed_idx = [i for i, st in enumerate(states[rel]) if st.closed]
            n_targets += len(closed_idx)
            before_desc = {i: facelib.face_descriptor(pixels, faces[i]) for i in closed_idx}
            for (name, model), info in zip(models, infos):
                why = ""
                t = time.perf_counter()
                try:
                    result = retouch(pixels, refs, model, options, faces=faces, states=states[rel])
                    reports = {r.index: r for r in result.faces}
                    out = result.pixels
                except NoReferenceError as e:
                    reports, out = {}, None
                    why = str(e)
                info.seconds += time.perf_counter() - t
                for i in closed_idx:
                    rep = reports.get(i)
                    status = rep.status if rep is not None else "no reference"
                    row: dict[str, Any] = {
                        "photo": rel, "face": i, "person": person, "method": name, "status": status,
                        "message": (rep.message if rep is not None else why)[:300],
                        "eyes_before": states[rel][i].to_dict(),
                        "eyes_after": rep.eyes_after if rep is not None else None,
                        "reference": _relative(rep.reference["path"], data_dir) if rep is not None and rep.reference else None,
                        "references": len(ref_desc),
                        "identity_before": _mean_distance(before_desc[i], ref_desc),
                        "identity_after": None,
                        "identity_before_chosen": None, "identity_after_chosen": None, "opened": None,
                        "self_check": _check_summary(rep.self_check if rep is not None else None),
                    }
                    if rep is not None and status == "retouched":
                        row["opened"] = bool(rep.eyes_after is not None and not rep.eyes_after["closed"])
                        row["identity_before_chosen"] = rep.reference["distance"] if rep.reference else None
                        row["identity_after_chosen"] = rep.identity_after
                        after = facelib.refit_face(out, faces[i])
                        row["identity_after"] = _mean_distance(facelib.face_descriptor(out, after), ref_desc)
                        key = (rel, i)
                        if key in tiles or len(tiles) < cfg.grid_rows:
                            cell = tiles.setdefault(key, {})
                            cell[name] = align_face(out, faces[i].landmarks, grid_align)[0]
                            if "before" not in cell:
                                cell["before"] = align_face(pixels, faces[i].landmarks, grid_align)[0]
                                ref = next(c for c in refs if str(c.path) == rep.reference["path"] and c.index == rep.reference["face"])
                                cell["reference"] = align_face(ref.pixels, ref.face.landmarks, grid_align)[0]
                    rows.append(row)
        if log:
            log(f"{person}: {len(closed)} photo(s) with closed eyes")
    if progress:  # stopped early at --limit: the bar ends where the scan did
        progress("scanning photos", scanned, scanned)
    if not rows:
        raise DataError(f"{data_dir}: no face with closed eyes found")
    summary = {info.name: summarise_closed([r for r in rows if r["method"] == info.name]) for info in infos}
    grid = None
    if tiles:
        blank = np.full((grid_align.resolution,) * 2 + (3,), 255, np.uint8)
        cells = list(tiles.values())
        columns = [(c, [cell.get(c, blank) for cell in cells]) for c in ("before", *[i.name for i in infos], "reference")]
        grid = make_grid(columns, tile=grid_align.resolution)
    return ClosedResult(
        data=str(data_dir.resolve()), methods=infos, rows=rows, summary=summary, notes=list(CLOSED_NOTES),
        seed=cfg.seed, limit=cfg.limit, seconds=time.perf_counter() - t_start, grid=grid, self_check=cfg.self_check,
    )


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _check_summary(check: Optional[dict]) -> Optional[dict]:
    """A row's self-check: passed, references tried, and why each failed (FaceReport.self_check, shortened)."""
    if check is None:
        return None
    return {
        "enabled": check["enabled"], "passed": check["passed"], "attempts": len(check["attempts"]),
        "reasons": [r for a in check["attempts"] for r in a["reasons"]][:6],
    }


def _mean_distance(desc: np.ndarray, refs: Sequence[np.ndarray]) -> Optional[float]:
    if not refs:
        return None
    return _round(float(np.mean([np.linalg.norm(desc.astype(np.float64) - r) for r in refs])))


def summarise_closed(rows: Sequence[dict]) -> dict:
    """One model's closed-eyes numbers: counts, share opened (Wilson CI), identity before/after."""
    done = [r for r in rows if r["status"] == "retouched"]
    opened = sum(1 for r in done if r["opened"])
    out: dict[str, Any] = {
        "faces": len(rows),
        "retouched": len(done),
        "no_reference": sum(1 for r in rows if r["status"] == "no reference"),
        "failed_self_check": sum(1 for r in rows if r["status"] == "failed self-check"),
        "pose_out_of_range": sum(1 for r in rows if r["status"] == "pose out of range"),
        "retouched_share": M.proportion_ci(len(done), len(rows)).to_dict(),  # of all closed-eyed faces
        "not_found_after": sum(1 for r in done if r["eyes_after"] is None),
        "opened": M.proportion_ci(opened, len(done)).to_dict(),
    }
    for key in ("identity_before", "identity_after", "identity_before_chosen", "identity_after_chosen"):
        out[key] = M.mean_ci([r[key] for r in done if r[key] is not None]).to_dict()
    for suffix in ("", "_chosen"):
        pairs = [(r["identity_before" + suffix], r["identity_after" + suffix]) for r in done]
        pairs = [(b, a) for b, a in pairs if a is not None and b is not None]
        out["identity_change" + suffix] = M.mean_ci([a - b for b, a in pairs]).to_dict()
    return out
