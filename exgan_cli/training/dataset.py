"""The training/evaluation data cache: aligned faces of a one-folder-per-person data set.

Preparation runs the same detect -> landmarks -> eye state -> align code as open-eyes, once,
and stores everything in one compact .npz (no pickle): JPEG-encoded aligned crops, their
landmarks in crop coordinates, eye scores, and the person index. All of LFW (7,713 photos,
7,677 faces found) at 128 px takes 43.5 MB and under 2 minutes with 2 workers, small enough to travel
to a GPU machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from exgan_cli.errors import DataError
from exgan_cli.stages.geometry import AlignConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
CACHE_FORMAT = "exgan-faces-1"
JPEG_QUALITY = 90  # crops are re-encoded once; 90 keeps all of LFW near 43 MB (95: 56 MB), artefacts below LFW's own


@dataclass
class FaceDataset:
    crops: np.ndarray  # (N, R, R, 3) uint8 aligned faces
    landmarks: np.ndarray  # (N, 68, 2) float32, in crop coordinates
    ear: np.ndarray  # (N, 2) float32 eye aspect ratios (left, right)
    closed: np.ndarray  # (N,) bool: both eyes closed by eyes.eye_state
    person: np.ndarray  # (N,) int32 index into persons
    persons: list[str]  # person (folder) names
    paths: list[str]  # photo paths relative to the data folder
    align: AlignConfig
    meta: dict = field(default_factory=dict)  # the cache's provenance: data_dir, photos_seen, faces_kept

    def __len__(self) -> int:
        return len(self.person)

    def subset(self, idx: np.ndarray) -> "FaceDataset":
        return FaceDataset(
            self.crops[idx], self.landmarks[idx], self.ear[idx], self.closed[idx], self.person[idx],
            self.persons, [self.paths[i] for i in idx], self.align, self.meta,
        )


def list_person_photos(data_dir: Path) -> list[tuple[str, Path]]:
    """(person, photo path) for every image in every sub-folder of data_dir, sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder")
    items = []
    for person_dir in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for photo in sorted(person_dir.iterdir()):
            if photo.suffix.lower() in IMAGE_SUFFIXES and photo.is_file():
                items.append((person_dir.name, photo))
    if not items:
        raise DataError(f"{data_dir}: no photos in per-person sub-folders")
    return items


def _prepare_one(args: tuple[str, str, dict]) -> Optional[tuple]:
    from exgan_cli.stages import eye_state as eyes, faces as facelib, geometry
    from exgan_cli.errors import ExganError
    from exgan_cli.files.images import load_image

    person, path, align_dict = args
    align = AlignConfig.from_dict(align_dict)
    try:
        image = load_image(Path(path))
    except ExganError:
        return None
    found = facelib.detect_faces(image.pixels)
    if not found:
        return None
    face = facelib.central_face(found, image.size)
    crop, matrix = geometry.align_face(image.pixels, face.landmarks, align)
    state = eyes.eye_state(face.landmarks)
    lm = geometry.transform_points(face.landmarks, matrix).astype(np.float32)
    return person, path, encode_crop(crop), lm, (state.left, state.right), bool(state.closed)


def prepare_dataset(
    data_dir: Path,
    out_file: Path,
    align: AlignConfig = AlignConfig(),
    workers: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
    limit_per_person: int | None = None,
    photos: Optional[Iterable[Path]] = None,
) -> Path:
    """Detect, align and cache every photo of data_dir into out_file (.npz); with ``photos``,
    only those of them (evaluate caches the subset it needs)."""
    items = list_person_photos(data_dir)
    if photos is not None:
        wanted = {Path(p).resolve() for p in photos}
        items = [(person, photo) for person, photo in items if photo.resolve() in wanted]
        if not items:
            raise DataError(f"{data_dir}: none of the requested photos is in its per-person sub-folders")
    if limit_per_person:
        counts: dict[str, int] = {}
        kept = []
        for person, photo in items:
            if counts.get(person, 0) < limit_per_person:
                kept.append((person, photo))
                counts[person] = counts.get(person, 0) + 1
        items = kept
    jobs = [(person, str(photo), align.to_dict()) for person, photo in items]
    workers = workers or (os.cpu_count() or 1)
    results = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for i, r in enumerate(pool.map(_prepare_one, jobs, chunksize=16)):
                results.append(r)
                if progress:
                    progress(i + 1, len(jobs))
    else:
        for i, job in enumerate(jobs):
            results.append(_prepare_one(job))
            if progress:
                progress(i + 1, len(jobs))
    rows = [r for r in results if r is not None]
    if not rows:
        raise DataError(f"{data_dir}: no face found in any photo")
    base = Path(data_dir)
    persons = sorted({r[0] for r in rows})
    pid = {p: i for i, p in enumerate(persons)}
    meta = {"data_dir": str(base.resolve()), "photos_seen": len(jobs), "faces_kept": len(rows)}
    return save_dataset(
        out_file,
        jpegs=[r[2] for r in rows],
        landmarks=np.stack([r[3] for r in rows]),
        ear=np.array([r[4] for r in rows], dtype=np.float32),
        closed=np.array([r[5] for r in rows], dtype=bool),
        person=np.array([pid[r[0]] for r in rows], dtype=np.int32),
        persons=persons,
        paths=[str(Path(r[1]).relative_to(base)) for r in rows],
        align=align,
        meta=meta,
    )


def encode_crop(crop: np.ndarray) -> bytes:
    """One aligned crop (R, R, 3) uint8 as the cache stores it (JPEG, quality JPEG_QUALITY)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def save_dataset(
    out_file: Path,
    jpegs: list[bytes],
    landmarks: np.ndarray,
    ear: np.ndarray,
    closed: np.ndarray,
    person: np.ndarray,
    persons: list[str],
    paths: list[str],
    align: AlignConfig,
    meta: dict | None = None,
) -> Path:
    """Write a cache file (atomically: temp file + os.replace). prepare_dataset uses it, and tests
    use it to write small synthetic caches. jpegs: one encoded crop per face (encode_crop)."""
    blobs = [np.frombuffer(b, dtype=np.uint8) for b in jpegs]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    meta = {**(meta or {}), "format": CACHE_FORMAT, "align": align.to_dict()}
    arrays = {
        "jpeg": np.concatenate(blobs),
        "offsets": offsets,
        "landmarks": np.asarray(landmarks, dtype=np.float32).reshape(-1, 68, 2),
        "ear": np.asarray(ear, dtype=np.float32).reshape(-1, 2),
        "closed": np.asarray(closed, dtype=bool),
        "person": np.asarray(person, dtype=np.int32),
        "persons": np.array(persons, dtype=np.str_),
        "paths": np.array(paths, dtype=np.str_),
        "meta": np.array(json.dumps(meta), dtype=np.str_),
    }
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out_file)
    return out_file


def load_dataset(cache_file: Path) -> FaceDataset:
    """Read a cache written by prepare_dataset (decoding every crop into memory)."""
    import cv2

    cache_file = Path(cache_file)
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"]))
        jpeg, off = arrays["jpeg"], arrays["offsets"]
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DataError(f"{cache_file}: not a readable exgan data cache ({e})") from None
    if meta.get("format") != CACHE_FORMAT:
        raise DataError(f"{cache_file}: unknown cache format {meta.get('format')!r}")
    crops = []
    for i in range(len(off) - 1):
        bgr = cv2.imdecode(jpeg[off[i] : off[i + 1]], cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"{cache_file}: face {i} does not decode (a damaged cache: delete it to prepare it again)")
        crops.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return FaceDataset(
        crops=np.stack(crops),
        landmarks=arrays["landmarks"],
        ear=arrays["ear"],
        closed=arrays["closed"],
        person=arrays["person"],
        persons=[str(p) for p in arrays["persons"]],
        paths=[str(p) for p in arrays["paths"]],
        align=AlignConfig.from_dict(meta["align"]),
        meta=meta,
    )


def default_cache_path(data_dir: Path, align: AlignConfig) -> Path:
    """<cache folder>/datasets/<folder>-<res>-<hash>.npz (the data folder may be read-only); the cache
    folder is the reference cache's: $EXGAN_CACHE_DIR, else $XDG_CACHE_HOME/exgan, else ~/.cache/exgan."""
    from exgan_cli.stages.reference_cache import default_cache_dir

    key = json.dumps({"dir": str(Path(data_dir).resolve()), "align": align.to_dict(), "format": CACHE_FORMAT})
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    root = default_cache_dir() / "datasets"
    return root / f"{Path(data_dir).resolve().name}-{align.resolution}-{digest}.npz"


SPLITS = ("hash", "shuffle")


def split_persons(
    ds: FaceDataset, val_fraction: float = 0.05, seed: int = 0, method: str = "hash"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with whole persons held out for validation (seeded).

    Only persons that have faces in ds are drawn, so a subset (say, the usable faces of persons
    with two or more of them) gives val_fraction of the persons that count. ``method``:

    - "hash": the persons whose SHA-256 of "<seed>:<name>" is smallest. A person's place
      depends on its name only, so a data folder that gains or loses a few persons keeps the
      rest of its split (each person added or removed moves at most one other across).
    - "shuffle": a seeded shuffle of the persons' indices, the first runs' method (the bundled
      models were trained with it). Any change to the list of persons redraws the whole split.
    """
    if method not in SPLITS:
        raise ValueError(f"split method must be one of {', '.join(SPLITS)}, not {method!r}")
    ids = np.unique(ds.person)
    if method == "shuffle":
        rng = np.random.default_rng(seed)
        rng.shuffle(ids)
    else:
        def rank(i: int) -> bytes:
            return hashlib.sha256(f"{seed}:{ds.persons[i]}".encode("utf-8")).digest()

        ids = np.array(sorted(ids.tolist(), key=rank), dtype=ids.dtype)
    n_val = max(1, int(round(len(ids) * val_fraction))) if len(ids) > 1 else 0
    val_persons = set(ids[:n_val].tolist())
    is_val = np.array([p in val_persons for p in ds.person])
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]


def reference_pairs(ds: FaceDataset, usable: np.ndarray) -> np.ndarray:
    """All (target, reference) index pairs of the same person among usable faces (the paper's
    Cartesian product of each image with its person's other images)."""
    pairs = []
    by_person: dict[int, list[int]] = {}
    for i in np.nonzero(usable)[0]:
        by_person.setdefault(int(ds.person[i]), []).append(int(i))
    for members in by_person.values():
        for a in members:
            for b in members:
                if a != b:
                    pairs.append((a, b))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)
