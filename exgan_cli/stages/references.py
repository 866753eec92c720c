"""Reference photos: every face in them becomes a measured candidate.

The exemplar GAN copies the eyes' appearance from a reference photo of the same person
with open eyes. ``load_candidates`` measures every face of every reference photo (a photo
may show several people), through the analysis cache when it has seen the photo before;
stages/reference_choice.py then picks the best one for each face.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from exgan_cli.errors import BadInputError, ExganError, NoReferenceError
from exgan_cli.stages.eye_state import EyeState, assess
from exgan_cli.stages.faces import (
    MIN_FACE,
    Face,
    detect_faces,
    face_descriptor,
    face_width,
    sharpness,
)
from exgan_cli.stages.pose import Expression, expression, head_pose
from exgan_cli.files.images import IMAGE_SUFFIXES, load_image

Pose = tuple[float, float, float]

# Reference photos: faces below this fraction of the photo's longer side are not searched for.
REF_MIN_FACE_FRACTION = 0.05
@dataclass(eq=False)
class ReferencePhoto:
    """One reference photo file. Its pixels are only needed for the reference that is chosen,
    so a photo whose analysis came from the cache (reference_cache.py) is decoded on first use,
    after checking that its content is still what was analysed."""

    path: Path
    sha256: str | None  # content hash (None: not hashed, i.e. analysed without a cache)
    size: tuple[int, int]  # (width, height) upright
    _pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            from exgan_cli.model.weights import file_sha256

            try:
                same = self.sha256 is None or file_sha256(self.path) == self.sha256
            except OSError:
                same = False
            img = load_image(self.path) if same else None
            if img is None or img.size != self.size:
                raise BadInputError(f"{self.path}: reference photo changed or disappeared while exgan was running")
            self._pixels = img.pixels
        return self._pixels


@dataclass(eq=False)  # compared by identity (``key`` names it); fields hold numpy arrays
class Candidate:
    path: Path  # the reference photo
    index: int  # which face of that photo (0-based, left to right)
    faces_in_photo: int  # how many faces the photo has (for messages)
    face: Face  # detection and landmarks, in the reference photo's coordinates
    descriptor: np.ndarray  # (128,) float32 identity descriptor
    eye: EyeState  # eye aspect ratios and open/closed
    pose: Pose  # (yaw, pitch, roll) degrees, see pose.head_pose
    sharpness: float  # faces.sharpness: variance of the Laplacian at a fixed face size
    width: float  # face width in pixels (faces.face_width)
    photo: ReferencePhoto  # the reference photo (shared by the photo's candidates); pixels on demand
    visibility: float = float("nan")  # eyes.eye_visibility: eyes vs cheek luminance (< 0.17: dark glasses)

    @property
    def pixels(self) -> np.ndarray:
        """The reference photo's RGB (decoded on first use when the analysis came from the cache)."""
        return self.photo.pixels

    @functools.cached_property
    def expression(self) -> Expression:
        """pose.expression of the face, worked out once (every reference choice weighs it)."""
        return expression(self.face.landmarks)

    @property
    def key(self) -> tuple[str, int]:
        """Identifies the candidate across runs (photo path, face index): for ``exclude``."""
        return (str(self.path), self.index)

    @property
    def label(self) -> str:
        """Short name for messages: "ref.jpg" or "group.jpg (face 2 of 4)"."""
        if self.faces_in_photo > 1:
            return f"{self.path.name} (face {self.index + 1} of {self.faces_in_photo})"
        return self.path.name


@dataclass
class Rejection:
    path: Path  # the reference photo
    face_index: int | None  # None: the whole photo (unreadable, no face)
    reason: str  # short text: "no face found", "eyes closed (EAR 0.12/0.10 < 0.21)", ...

    def __str__(self) -> str:
        where = self.path.name if self.face_index is None else f"{self.path.name} (face {self.face_index + 1})"
        return f"{where}: {self.reason}"


# ---------------------------------------------------------------------------------------
# Collecting and measuring


def collect_reference_paths(refs: Sequence[Path], ref_dir: Path | None) -> list[Path]:
    """Reference photo paths from explicit files and/or a folder; sorted, no duplicates.

    Explicit files are kept whatever their suffix (``load_image`` judges the content);
    from ``ref_dir`` (not recursive) only visible .jpg/.jpeg/.png/.webp files are taken.
    A missing file or folder is a BadInputError naming it.
    """
    found: dict[str, Path] = {}
    for ref in refs:
        ref = Path(ref)
        if not ref.exists():
            raise BadInputError(f"{ref}: reference photo not found")
        if ref.is_dir():
            raise BadInputError(f"{ref}: is a folder (give folders of references with --ref-dir)")
        found.setdefault(os.path.normcase(str(ref.resolve())), ref)
    if ref_dir is not None:
        ref_dir = Path(ref_dir)
        if not ref_dir.exists():
            raise BadInputError(f"{ref_dir}: reference folder not found")
        if not ref_dir.is_dir():
            raise BadInputError(f"{ref_dir}: not a folder")
        images = [
            p
            for p in ref_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not images and not found:
            raise NoReferenceError(f"{ref_dir}: no .jpg, .jpeg, .png or .webp photos in this folder")
        for p in images:
            found.setdefault(os.path.normcase(str(p.resolve())), p)
    return sorted(found.values(), key=lambda p: str(p))


def _reason_of(err: ExganError, path: Path) -> str:
    """The error's text without the leading "path: " (Rejection prints the name itself)."""
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def reference_min_face(size: tuple[int, int]) -> float:
    """Smallest face (px) looked for in a reference photo of ``size`` (width, height).

    A reference is only useful when its face is a sizeable part of the photo: at least
    REF_MIN_FACE_FRACTION of its longer side (or MIN_FACE on small photos). A 12 MP group
    shot with faces of 200+ px is still searched in full; what this spares is dlib's
    upsampling pass that finds 40 px faces in the crowd behind, which are worthless as
    references (on a 2,500 px reference: 787 -> ~200 ms, benchmarks/open_eyes.py).
    """
    return max(float(MIN_FACE), REF_MIN_FACE_FRACTION * max(size))


def _measure(img, path: Path, sha256: str | None, detector: str) -> tuple[ReferencePhoto, list[Candidate]]:
    """Every face of one decoded reference photo, measured."""
    photo = ReferencePhoto(path, sha256, img.size, img.pixels)
    faces = detect_faces(img.pixels, detector=detector, min_face=reference_min_face(img.size))
    candidates = [
        Candidate(
            path=path,
            index=i,
            faces_in_photo=len(faces),
            face=face,
            descriptor=face_descriptor(img.pixels, face),
            eye=eye,
            pose=head_pose(face.landmarks, img.size),
            sharpness=sharpness(img.pixels, face),
            width=face_width(face),
            photo=photo,
            visibility=eye.visibility,
        )
        for i, face in enumerate(faces)
        for eye in [assess(img.pixels, face)]  # the eye-state classifier when its weights are there
    ]
    return photo, candidates


def _to_entry(photo: ReferencePhoto, candidates: list[Candidate]) -> dict:
    """A photo's analysis as JSON-able data (floats kept exactly: repr round-trips)."""
    return {
        "size": list(photo.size),
        "faces": [
            {
                "box": list(c.face.box),
                "landmarks": c.face.landmarks.tolist(),
                "detector": c.face.detector,
                "score": c.face.score,
                "descriptor": c.descriptor.tolist(),
                "eye": asdict(c.eye),
                "pose": list(c.pose),
                "sharpness": c.sharpness,
                "width": c.width,
                "visibility": c.visibility,
            }
            for c in candidates
        ],
    }


def _from_entry(entry: dict, path: Path, sha256: str) -> tuple[ReferencePhoto, list[Candidate]] | None:
    """The analysis stored by ``_to_entry``; None when the entry does not have that shape."""
    try:
        photo = ReferencePhoto(path, sha256, (int(entry["size"][0]), int(entry["size"][1])))
        faces = entry["faces"]
        out = []
        for i, f in enumerate(faces):
            landmarks = np.asarray(f["landmarks"], dtype=np.float64)
            descriptor = np.asarray(f["descriptor"], dtype=np.float32)
            if landmarks.shape != (68, 2) or descriptor.shape != (128,):
                return None
            landmarks.setflags(write=False)
            face = Face(box=tuple(int(v) for v in f["box"]), landmarks=landmarks, detector=str(f["detector"]), score=float(f["score"]))
            out.append(
                Candidate(
                    path=path, index=i, faces_in_photo=len(faces), face=face, descriptor=descriptor,
                    eye=EyeState(**f["eye"]), pose=tuple(float(v) for v in f["pose"]), sharpness=float(f["sharpness"]),
                    width=float(f["width"]), photo=photo, visibility=float(f["visibility"]),
                )
            )
        return photo, out
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def open_cache(detector: str, root: Path | None = None):
    """The reference-analysis cache for this detector (reference_cache.py), at ``root`` or the
    default folder."""
    from exgan_cli.stages.reference_cache import AnalysisCache, default_cache_dir

    settings = {"detector": detector, "min_face": MIN_FACE, "ref_min_face_fraction": REF_MIN_FACE_FRACTION}
    return AnalysisCache(root if root is not None else default_cache_dir(), settings)


def load_candidates(
    paths: Sequence[Path], detector: str = "hog", cache=None
) -> tuple[list[Candidate], list[Rejection]]:
    """Every face of every reference photo as a measured Candidate.

    Photos that cannot be read or have no face become Rejections (never an exception), so
    one bad file among several references does not stop the run. Faces smaller than
    ``reference_min_face`` are not looked for. With ``cache`` (``open_cache(detector)``) a
    photo analysed before, byte for byte, is not decoded nor measured again: its stored
    analysis is used and its pixels are decoded only if it is chosen.
    """
    from exgan_cli.model.weights import file_sha256

    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    for path in paths:
        path = Path(path)
        sha256 = None
        if cache is not None:
            try:
                sha256 = file_sha256(path)
            except OSError:
                sha256 = None  # load_image below says what is wrong with the path
        stored = cache.get(sha256) if cache is not None and sha256 is not None else None
        found = _from_entry(stored, path, sha256) if stored is not None else None
        if found is None:
            try:
                img = load_image(path)
            except ExganError as e:
                rejections.append(Rejection(path, None, _reason_of(e, path)))
                continue
            photo, found_faces = _measure(img, path, sha256, detector)
            if cache is not None and sha256 is not None:
                cache.put(sha256, _to_entry(photo, found_faces))
        else:
            found_faces = found[1]
        if not found_faces:
            rejections.append(Rejection(path, None, "no face found"))
            continue
        candidates.extend(found_faces)
    return candidates, rejections
