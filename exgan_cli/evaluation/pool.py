"""The faces an evaluation works on: aligned crops and landmarks from the face caches
(training.dataset: the detect -> landmarks -> eye state -> align code that open-eyes runs), one
pool per model resolution, and the batches of targets with their right and wrong references."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from exgan_cli.errors import DataError
from exgan_cli.evaluation.config import EvalConfig, LogFn, ProgressFn
from exgan_cli.evaluation.split import Protocol, enough, groups, person_order, person_photos, select_protocol
from exgan_cli.stages.geometry import AlignConfig, Box, MaskConfig, boxes_to_mask, eye_boxes
from exgan_cli.training.dataset import FaceDataset, default_cache_path, load_dataset, prepare_dataset

REFS = ("right", "wrong")  # the two references of every target: same person, another person


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


# ---------------------------------------------------------------------------------------
# Caches


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
        if enough(prefix, eligible, cfg.limit):
            break
        have = sum(len(f) for _, f in groups(prefix, eligible))
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
# The faces of an evaluation, at every resolution


@dataclass
class Faces:
    """The evaluated faces: the protocol, a pool per resolution, and the cache files read."""

    data_dir: Optional[Path]
    protocol: Protocol
    pools: dict[int, FacePool]  # resolution -> faces
    caches: list[str]


def data_folder(cfg: EvalConfig) -> Optional[Path]:
    """--data, or the folder the --cache was made from (None when that folder is gone)."""
    data_dir = Path(cfg.data).expanduser() if cfg.data else None
    if data_dir is None:
        if cfg.cache is None:
            raise DataError("no data: give a data folder (--data) or a prepared cache (--cache)")
        meta_dir = load_dataset(cfg.cache).meta.get("data_dir")
        data_dir = Path(meta_dir) if meta_dir and Path(meta_dir).is_dir() else None
    if data_dir is not None and not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder")
    return data_dir


def _cache_photos(pool: FacePool, per_person: int) -> dict[str, list[str]]:
    """Person -> photos from the cache alone (no data folder)."""
    photos: dict[str, list[str]] = {}
    for ds in pool.datasets:
        for p, i in zip(ds.paths, ds.person):
            photos.setdefault(ds.persons[i], []).append(p)
    return {k: sorted(v)[: per_person or None] for k, v in photos.items()}


def _base_faces(cfg: EvalConfig, data_dir: Optional[Path], align: AlignConfig,
                progress: Optional[ProgressFn], log: Optional[LogFn]) -> Faces:
    """The protocol from the faces at the first model's resolution: the whole cache, or with
    --limit and no cache yet only the persons needed."""
    caches: list[str] = []
    cache_file = Path(cfg.cache).expanduser() if cfg.cache is not None else default_cache_path(data_dir, align)  # type: ignore[arg-type]
    if cfg.cache is not None or cache_file.is_file() or cfg.limit is None:
        pool = _full_pool(data_dir, cache_file, align, cfg, progress, log)
        caches.append(str(cache_file))
        photos = person_photos(data_dir, cfg.per_person) if data_dir is not None else _cache_photos(pool, cfg.per_person)
        order = person_order(photos, cfg.seed)
    else:
        photos = person_photos(data_dir, cfg.per_person)  # type: ignore[arg-type]
        order = person_order(photos, cfg.seed)
        pool, files = _chunked_pool(data_dir, align, photos, order, cfg, progress, log)  # type: ignore[arg-type]
        caches += files
    protocol = select_protocol(order, pool.eligible(photos, cfg.min_ear), cfg.limit)
    return Faces(data_dir, protocol, {align.resolution: pool}, caches)


def _add_resolutions(faces: Faces, aligns: dict[int, AlignConfig], resolutions: Sequence[int], cfg: EvalConfig,
                     progress: Optional[ProgressFn], log: Optional[LogFn]) -> None:
    """The protocol's photos aligned at every other model resolution (the full cache if there is one)."""
    data_dir, photos = faces.data_dir, faces.protocol.photos()
    for res in resolutions:
        if res in faces.pools:
            continue
        if data_dir is None:
            raise DataError(f"a model works at {res} px: the data folder (--data) is needed to align its faces")
        align = aligns[res]
        path: Optional[Path] = default_cache_path(data_dir, align)
        if not path.is_file():  # type: ignore[union-attr]
            path = _prepare(data_dir, subset_cache_path(data_dir, photos, align), align, photos, cfg.workers, progress, log)
            if path is None:
                raise DataError(f"{data_dir}: no face found at {res} px")
        faces.caches.append(str(path))
        faces.pools[res] = FacePool([load_dataset(path)], align)


def load_faces(cfg: EvalConfig, aligns: dict[int, AlignConfig], resolutions: Sequence[int],
               progress: Optional[ProgressFn] = None, log: Optional[LogFn] = None) -> Faces:
    """The protocol's faces at every resolution (``aligns``: the first is the base resolution).
    A face some resolution lacks (only possible with stale caches) is left out for everyone."""
    data_dir = data_folder(cfg)
    faces = _base_faces(cfg, data_dir, next(iter(aligns.values())), progress, log)
    _add_resolutions(faces, aligns, resolutions, cfg, progress, log)
    p = faces.protocol
    keep = [i for i in range(len(p)) if all(
        all(f in pl for f in (p.targets[i], p.references[i], p.wrong_references[i])) for pl in faces.pools.values()
    )]
    if len(keep) < len(p):
        if log:
            log(f"{len(p) - len(keep)} faces missing from a cache at another resolution: left out")
        faces.protocol = p.keep(keep)
    if len(faces.protocol) == 0:
        raise DataError("no face to evaluate")
    if log:
        log(f"{len(faces.protocol)} faces of {len(set(faces.protocol.persons))} persons")
    return faces


# ---------------------------------------------------------------------------------------
# Batches


@dataclass
class FaceSet:
    """Aligned faces of one resolution with their holes (the eye boxes of one mask config)."""

    crops: np.ndarray  # (B, R, R, 3) uint8
    boxes: list[list[Box]]
    masks: np.ndarray  # (B, R, R) float32
    landmarks: list[np.ndarray]  # (68, 2) crop-space landmarks per face


@dataclass
class Batch:
    """Targets and, for each of REFS, their references."""

    targets: FaceSet
    refs: dict[str, FaceSet]  # "right" / "wrong" -> the references, face for face


def face_set(pool: FacePool, paths: Sequence[str], mask_cfg: MaskConfig) -> FaceSet:
    """The pool's crops and landmarks of ``paths``, with the deterministic eye boxes as holes."""
    crops = np.stack([pool.crop(p) for p in paths])
    lms = [pool.landmarks(p) for p in paths]
    boxes = [eye_boxes(lm, mask_cfg) for lm in lms]
    masks = np.stack([boxes_to_mask(b, pool.align.resolution) for b in boxes])
    return FaceSet(crops, boxes, masks, lms)


def make_batch(pool: FacePool, protocol: Protocol, idx: Sequence[int], mask_cfg: MaskConfig) -> Batch:
    """Targets ``idx`` of the protocol with their right and wrong references."""
    return Batch(
        face_set(pool, [protocol.targets[i] for i in idx], mask_cfg),
        {
            "right": face_set(pool, [protocol.references[i] for i in idx], mask_cfg),
            "wrong": face_set(pool, [protocol.wrong_references[i] for i in idx], mask_cfg),
        },
    )
