"""The person an album run retouches: who they are (identity samples) and their references.

Every photo in ``person_dir`` must show exactly one face: its 128-d dlib descriptor is one
sample of the person. A face in the album is the person when its *identity distance*, the
mean of its IDENTITY_K smallest Euclidean distances to those samples (all of them when there
are fewer), is at most the identity threshold (faces.SAME_PERSON_THRESHOLD = 0.6 by default,
dlib's documented decision threshold). Averaging the closest few instead of taking the single
closest keeps one look-alike sample from letting a stranger through, while a person-dir of
varied photos still matches every pose. With 3 or more samples, a photo that matches fewer
than half of the others is left out as someone else (a wrong file in the folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from exgan_cli.errors import DataError, ExganError, NoReferenceError

IDENTITY_K = 3  # a face's identity distance: mean of its k smallest distances to the person's samples


@dataclass
class Person:
    folder: Path
    photos: list[Path]  # photos that define the identity (one face each)
    descriptors: np.ndarray  # (n, 128) float32: one sample per photo
    candidates: list  # references.Candidate of those photos: what open-eyes' selection picks from
    rejected: list[dict[str, str]]  # {"path", "reason"}: photos of person_dir not used, and why

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "photos": [str(p) for p in self.photos],
            "open_eyed": sum(1 for c in self.candidates if not (c.eye.closed or c.eye.hidden)),
            "rejected": self.rejected,
        }


def identity_distance(descriptor: np.ndarray, samples: np.ndarray, k: int = IDENTITY_K) -> float:
    """Mean of the ``k`` smallest Euclidean distances from ``descriptor`` to the person's samples."""
    d = np.linalg.norm(np.asarray(samples, np.float64) - np.asarray(descriptor, np.float64)[None, :], axis=1)
    k = max(1, min(int(k), len(d)))
    return float(np.sort(d)[:k].mean())


def load_person(folder: Path, detector: str = "auto", threshold: Optional[float] = None, cache: bool = False) -> Person:
    """The person shown in ``folder`` (not recursive): descriptors and reference candidates.

    DataError when the folder is missing or no photo in it holds exactly one face;
    NoReferenceError when every usable face has closed eyes (nothing to copy eyes from).
    ``cache``: reuse stored analyses of photos seen before (references.open_cache).
    """
    from exgan_cli.stages.faces import SAME_PERSON_THRESHOLD
    from exgan_cli.stages.references import collect_reference_paths, load_candidates, open_cache

    threshold = SAME_PERSON_THRESHOLD if threshold is None else threshold
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: person folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (--person-dir takes a folder of photos of one person)")
    try:
        paths = collect_reference_paths([], folder)
    except ExganError as e:
        raise DataError(str(e)) from None
    candidates, rejections = load_candidates(paths, detector=detector, cache=open_cache(detector) if cache else None)
    rejected = [{"path": str(r.path), "reason": r.reason} for r in rejections]
    single = _alone_in_their_photo(candidates, rejected)
    if len(single) >= 3:
        single = _drop_strangers(single, threshold, rejected)
    rejected.sort(key=lambda r: r["path"])
    if not single:
        why = "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejected[:6]) or "no photos"
        more = f"; and {len(rejected) - 6} more" if len(rejected) > 6 else ""
        raise DataError(f"{folder}: no usable face of the person ({why}{more})")
    if all(c.eye.closed or c.eye.hidden for c in single):
        raise NoReferenceError(f"{folder}: the person's eyes are closed or hidden in every photo: no reference to copy open eyes from")
    single.sort(key=lambda c: str(c.path))
    return Person(
        folder=folder,
        photos=[c.path for c in single],
        descriptors=np.stack([c.descriptor for c in single]).astype(np.float32),
        candidates=single,
        rejected=rejected,
    )


def _alone_in_their_photo(candidates: list, rejected: list[dict[str, str]]) -> list:
    """The candidates whose photo shows one face; the others' photos are added to ``rejected``."""
    by_photo: dict[Path, list] = {}
    for c in candidates:
        by_photo.setdefault(c.path, []).append(c)
    single = []
    for path, cands in by_photo.items():
        if len(cands) == 1:
            single.append(cands[0])
        else:
            rejected.append({"path": str(path), "reason": f"{len(cands)} faces (each photo must show the person alone)"})
    return single


def _drop_strangers(single: list, threshold: float, rejected: list[dict[str, str]]) -> list:
    """A photo unlike most of the others is someone else's (a wrong file in the folder)."""
    from exgan_cli.stages.faces import descriptor_distance

    kept = []
    for c in single:
        others = [o for o in single if o is not c]
        close = sum(descriptor_distance(c.descriptor, o.descriptor) <= threshold for o in others)
        if close * 2 < len(others):
            rejected.append({"path": str(c.path), "reason": f"looks like another person (matches {close} of the {len(others)} other photos)"})
        else:
            kept.append(c)
    return kept
