"""Reference photos: every face in them becomes a candidate; the best one is chosen.

The exemplar GAN copies the eyes' appearance from a reference photo of the same person
with open eyes. ``load_candidates`` measures every face of every reference photo (a photo
may show several people); ``choose_reference`` rejects faces with closed eyes and faces of
someone else, and ranks the rest by identity, pose, openness, resolution and sharpness.
In a group photo, the face that matches the target's identity wins through the distance.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from exgan_cli.errors import BadInputError, ExganError, NoReferenceError
from exgan_cli.stages.eye_state import CLOSED_EAR_THRESHOLD, VISIBLE_NONE, EyeState, assess, eye_visibility, visibility_term
from exgan_cli.stages.faces import (
    MIN_FACE,
    SAME_PERSON_THRESHOLD,
    Face,
    descriptor_distance,
    detect_faces,
    face_descriptor,
    face_width,
    head_pose,
    sharpness,
)
from exgan_cli.files.images import IMAGE_SUFFIXES, load_image

Pose = tuple[float, float, float]

# Score = sum of weight * term, every term in [0, 1], so the score is in [0, 1].
WEIGHTS = {
    "identity": 0.35,  # 1 - distance / threshold: the closer the identity, the better
    "pose": 0.30,  # exp(-(dyaw^2 + dpitch^2) / (2 * POSE_SIGMA^2)); roll is ignored (alignment removes it)
    "openness": 0.10,  # (min EAR - closed threshold) / OPEN_MARGIN: both eyes clearly open
    "visibility": 0.05,  # eyes.visibility_term: tinted lenses or deep shadow over the eyes score lower
    "resolution": 0.10,  # face width / max(FULL_WIDTH, target face width): pixels for the crop and for the detail
    "sharpness": 0.10,  # Laplacian variance / FULL_SHARPNESS: in focus, not motion-blurred
}
POSE_SIGMA = 20.0  # degrees: a 20 deg difference in yaw scores 0.61, 40 deg scores 0.14
OPEN_MARGIN = 0.10  # EAR above the closed threshold at which openness is full (0.31 by default)
# Reference photos: faces below this fraction of the photo's longer side are not searched for.
REF_MIN_FACE_FRACTION = 0.05
FULL_WIDTH = 200.0  # px (jaw width): LFW's ~100 px faces score 0.5; phone photos score 1 ...
# ... unless the target face is wider: then only a reference at least as wide as the target scores
# 1. Its pixels give the new eyes their full-resolution detail (detail.py); a reference half
# the target's width lacks the target's finest octave, which is then synthesised.
FULL_SHARPNESS = 150.0  # faces.sharpness(): sharp LFW faces ~100, sharp high-res faces > 300
MAX_LISTED = 6  # rejections spelled out in the NoReferenceError line before "and N more"


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
    pose: Pose  # (yaw, pitch, roll) degrees, see faces.head_pose
    sharpness: float  # faces.sharpness: variance of the Laplacian at a fixed face size
    width: float  # face width in pixels (faces.face_width)
    photo: ReferencePhoto  # the reference photo (shared by the photo's candidates); pixels on demand
    visibility: float = float("nan")  # eyes.eye_visibility: eyes vs cheek luminance (< 0.17: dark glasses)

    @property
    def pixels(self) -> np.ndarray:
        """The reference photo's RGB (decoded on first use when the analysis came from the cache)."""
        return self.photo.pixels

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


@dataclass(eq=False)
class Choice:
    candidate: Candidate  # the winner
    distance: float  # its identity distance to the target
    score: float  # its score in [0, 1] (see WEIGHTS)
    reasons: str  # why it won, one line: identity, pose, openness, size, sharpness
    # Every candidate, best first, usable ones then rejected ones:
    # (candidate, score or None if rejected, distance, reasons or the rejection reason).
    ranking: list[tuple[Candidate, float | None, float, str]] = field(default_factory=list)

    def ranking_candidates(self) -> list[Candidate]:
        """The usable candidates, best first."""
        return [c for c, s, _, _ in self.ranking if s is not None] or [self.candidate]


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
            eye=assess(img.pixels, face),  # the eye-state classifier when its weights are there
            pose=head_pose(face.landmarks, img.size),
            sharpness=sharpness(img.pixels, face),
            width=face_width(face),
            photo=photo,
            visibility=eye_visibility(img.pixels, face.landmarks),
        )
        for i, face in enumerate(faces)
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


# ---------------------------------------------------------------------------------------
# Choosing


def _terms(
    cand: Candidate, distance: float, target_pose: Pose | None, threshold: float, target_width: float | None = None
) -> dict[str, float]:
    identity = 0.0 if math.isnan(distance) else float(np.clip(1.0 - distance / threshold, 0.0, 1.0))
    if target_pose is None:
        pose = 1.0
    else:
        dy, dp = cand.pose[0] - target_pose[0], cand.pose[1] - target_pose[1]
        pose = math.exp(-(dy * dy + dp * dp) / (2 * POSE_SIGMA**2))
    openness = float(np.clip((min(cand.eye.left, cand.eye.right) - CLOSED_EAR_THRESHOLD) / OPEN_MARGIN, 0.0, 1.0))
    return {
        "identity": identity,
        "pose": pose,
        "openness": openness,
        "visibility": visibility_term(cand.visibility),
        "resolution": float(min(1.0, cand.width / max(FULL_WIDTH, target_width or 0.0))),
        "sharpness": float(min(1.0, cand.sharpness / FULL_SHARPNESS)),
    }


def _describe(cand: Candidate, distance: float, target_pose: Pose | None, target_width: float | None = None) -> str:
    parts = ["any identity" if math.isnan(distance) else f"identity distance {distance:.2f}"]
    if target_pose is not None:
        parts.append(f"pose diff yaw {abs(cand.pose[0] - target_pose[0]):.0f} deg, pitch {abs(cand.pose[1] - target_pose[1]):.0f} deg")
    parts.append(f"eyes open (EAR {cand.eye.left:.2f}/{cand.eye.right:.2f})")
    size = f"face {cand.width:.0f} px"
    if target_width and target_width > FULL_WIDTH:
        size += f" ({cand.width / target_width:.2f} of the target's)"
    parts.append(size)
    parts.append(f"sharpness {cand.sharpness:.0f}")
    return ", ".join(parts)


def _exclude_keys(exclude: Iterable) -> set[tuple[str, int]]:
    keys = set()
    for item in exclude:
        if isinstance(item, Candidate):
            keys.add(item.key)
        else:
            path, index = item
            keys.add((str(path), int(index)))
    return keys


def _summary(rejected: list[str]) -> str:
    if not rejected:
        return "no reference photos given"
    shown = rejected[:MAX_LISTED]
    rest = len(rejected) - len(shown)
    return "; ".join(shown) + (f"; and {rest} more" if rest else "")


def choose_reference(
    target_descriptor: np.ndarray | None,
    target_pose: Pose | None,
    candidates: Sequence[Candidate],
    *,
    identity_threshold: float = SAME_PERSON_THRESHOLD,
    any_identity: bool = False,
    exclude: Iterable = (),
    rejections: Sequence[Rejection] = (),
    target_width: float | None = None,
) -> Choice:
    """The best open-eyed reference face of the target's person; NoReferenceError if none.

    Rejects faces whose eyes are closed and, unless ``any_identity``, faces farther than
    ``identity_threshold`` from the target's descriptor (another person). Scores the rest
    (WEIGHTS; deterministic: ties go to the smaller distance, then path and face index).
    ``exclude``: candidates (or (path, face index) keys) already tried, e.g. by a self-check
    retrying with the next best reference. ``rejections`` from ``load_candidates`` are only
    used to explain a NoReferenceError. ``target_pose`` None: pose is not scored.
    ``target_width``: the target face's width (``faces.face_width``); on a face wider than
    FULL_WIDTH the resolution term is relative to it (a reference as wide as the target
    scores 1, half as wide 0.5), so that larger references are preferred on large faces.
    None: FULL_WIDTH only.
    """
    if target_descriptor is None and not any_identity:
        raise ValueError("choose_reference needs the target's descriptor unless any_identity")
    excluded = _exclude_keys(exclude)
    usable: list[tuple[Candidate, float, float, str]] = []
    rejected: list[tuple[Candidate, float, str]] = []
    for cand in candidates:
        distance = float("nan") if target_descriptor is None else descriptor_distance(target_descriptor, cand.descriptor)
        why: list[str] = []
        if cand.key in excluded:
            why.append("already tried")
        if not any_identity and not distance <= identity_threshold:
            why.append(f"another person (distance {distance:.2f} > {identity_threshold:.2f})")
        if cand.eye.closed:
            why.append(f"eyes closed ({cand.eye.describe()})")
        elif cand.visibility < VISIBLE_NONE:
            why.append(f"eyes hidden (dark glasses? eye/cheek luminance {cand.visibility:.2f} < {VISIBLE_NONE:.2f})")
        if why:
            rejected.append((cand, distance, ", ".join(why)))
            continue
        terms = _terms(cand, distance, target_pose, identity_threshold, target_width)
        score = float(sum(WEIGHTS[k] * v for k, v in terms.items()))
        usable.append((cand, score, distance, _describe(cand, distance, target_pose, target_width)))

    def order(u: tuple[Candidate, float, float, str]) -> tuple:
        cand, score, distance, _ = u
        return (-round(score, 9), 0.0 if math.isnan(distance) else distance, str(cand.path), cand.index)

    usable.sort(key=order)
    ranking: list[tuple[Candidate, float | None, float, str]] = [(c, s, d, t) for c, s, d, t in usable]
    ranking += [(c, None, d, t) for c, d, t in rejected]
    if not usable:
        lines = [f"{c.label}: {t}" for c, _, t in rejected] + [str(r) for r in rejections]
        error = NoReferenceError(f"no usable reference: {_summary(lines)}")
        error.ranking = ranking  # every candidate with its rejection reason (for `exgan inspect`)
        raise error
    best, score, distance, text = usable[0]
    reasons = f"best of {len(usable)} usable: {text}"
    return Choice(candidate=best, distance=distance, score=score, reasons=reasons, ranking=ranking)


def top_choices(choice: Choice, n: int) -> list[Choice]:
    """The ``n`` best usable references of a ``choose_reference`` result, best first (the winner
    itself and the runners-up of its ranking)."""
    usable = [(c, s, d, t) for c, s, d, t in choice.ranking if s is not None]
    out = [choice]
    for k, (cand, score, distance, text) in enumerate(usable[1:n], start=2):
        out.append(Choice(candidate=cand, distance=distance, score=score, reasons=f"#{k} of {len(usable)} usable: {text}", ranking=choice.ranking))
    return out
