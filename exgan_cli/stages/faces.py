"""Faces in photos with dlib: detection, 68 landmarks, identity descriptors, sharpness (pose: pose.py).

Every function takes the library's RGB uint8 (H, W, 3) array and returns plain data. dlib's
models are loaded and shared between threads by dlib_models.py.

Detection runs on a reduced copy of big photos (speed: a 24 MP photo costs the same as a
1600 px one) while the landmarks are fitted on the full-resolution photo (precision).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from exgan_cli.stages.dlib_models import hog_detector, locked_cnn, locked_encoder, shape_predictor

Box = tuple[int, int, int, int]

# dlib's documented decision threshold for dlib_face_recognition_resnet_model_v1: two
# descriptors closer than 0.6 (Euclidean) are the same person; 99.38% accuracy on the LFW
# benchmark at this threshold (dlib.net, face_recognition.py example / model card).
SAME_PERSON_THRESHOLD = 0.6

# Detection: both dlib detectors scan an ~80x80 px window, so a face has to be ~80 px wide
# in the image they see. Each upsampling step (dlib's pyramid_up) doubles the image.
DETECTOR_WINDOW = 80  # px: smallest face the detectors find without upsampling
MIN_FACE = 40  # px in the original photo: the smallest face we aim to find
PAD_FRACTION = 0.10  # border added around the detection copy (replicated edge pixels)
HOG_UPSAMPLED_LIMIT = 3200  # px: longest side of the photo after upsampling (~1 s of HOG)
CNN_MAX_SIDE = 1024  # px: the CNN detector costs ~2.5 s per megapixel on 2 CPU cores
DEDUPE_IOU = 0.4  # overlapping detections above this IoU are one face (keep the best)

# Descriptor: dlib aligns the face to a 150 px chip; computing it on a crop reduced so the
# face is at most this wide gives the same descriptor at a fraction of the cost on big photos.
DESCRIPTOR_FACE_SIDE = 300
SHARPNESS_SIDE = 128  # px: face region resized to this square before the Laplacian


@dataclass(frozen=True)
class Face:
    box: Box  # (x0, y0, x1, y1) in the full photo, clipped to it; x1/y1 exclusive
    landmarks: np.ndarray  # (68, 2) float64 dlib points in full-resolution photo coordinates
    detector: str  # "hog" | "cnn"
    score: float  # detector confidence (HOG: SVM margin, CNN: MMOD confidence)

    def __hash__(self) -> int:  # numpy arrays are unhashable; the box and score identify a face
        return hash((self.box, self.detector, self.score))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Face):
            return NotImplemented
        return (
            self.box == other.box
            and self.detector == other.detector
            and self.score == other.score
            and np.array_equal(self.landmarks, other.landmarks)
        )


# ---------------------------------------------------------------------------------------
# Detection


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _upsample_count(long_side: float, scale: float, upsampled_limit: int, min_face: float = MIN_FACE) -> int:
    """How many times dlib should double the detection copy.

    Rule: a face MIN_FACE px wide in the original is MIN_FACE * scale px in the (reduced)
    copy and must reach DETECTOR_WINDOW px, so we need n doublings with
    MIN_FACE * scale * 2**n >= DETECTOR_WINDOW, i.e. n = ceil(log2(80 / (40 * scale))):
    one doubling for photos up to max_side (LFW's 250 px, crops, phone shots reduced to
    1600 px). The count is capped so the upsampled copy stays within ``upsampled_limit``
    px: on a photo reduced from 6000 to 1600 px, faces from ~150 px (HOG) are found.
    """
    need = max(0, math.ceil(math.log2(DETECTOR_WINDOW / (min_face * scale)) - 1e-9))
    n = 0
    while n < need and long_side * 2 ** (n + 1) <= upsampled_limit:
        n += 1
    return n


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _detect_boxes(
    rgb: np.ndarray, detector: str, max_side: int, min_face: float = MIN_FACE,
    scan_started: threading.Event | None = None,
) -> list[tuple[tuple[float, ...], float]]:
    """Face boxes (float, original photo coordinates, may leave the photo) with scores."""
    import cv2

    h, w = rgb.shape[:2]
    work_max = max_side if detector == "hog" else min(max_side, CNN_MAX_SIDE)
    limit = max(HOG_UPSAMPLED_LIMIT, 2 * max_side) if detector == "hog" else CNN_MAX_SIDE
    scale = min(1.0, work_max / max(h, w))
    if scale < 1.0:
        work = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        sx, sy = work.shape[1] / w, work.shape[0] / h
    else:
        work, sx, sy = rgb, 1.0, 1.0
    # The upsampling cap counts the photo, not the border added next.
    up = _upsample_count(max(work.shape[:2]), scale, limit, min_face)
    # A replicated border lets the detector's window cover faces that fill a tight crop or
    # are cut by the photo's edge (on CEW's face crops: 548 found instead of 504 of 600).
    pad = int(round(PAD_FRACTION * max(work.shape[:2])))
    if pad:
        work = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    work = np.ascontiguousarray(work)
    found: list[tuple[tuple[float, ...], float]] = []
    if scan_started is not None:
        scan_started.set()
    if detector == "hog":
        rects, scores, _ = hog_detector().run(work, up, 0.0)
        dets = list(zip(rects, scores))
    else:
        with locked_cnn() as cnn:
            dets = [(d.rect, d.confidence) for d in cnn(work, up)]
    for r, s in dets:
        box = (
            (r.left() - pad) / sx,
            (r.top() - pad) / sy,
            (r.right() + 1 - pad) / sx,
            (r.bottom() + 1 - pad) / sy,
        )
        found.append((box, float(s)))
    # Dedupe: keep the best-scoring of overlapping detections.
    found.sort(key=lambda bs: -bs[1])
    kept: list[tuple[tuple[float, ...], float]] = []
    for box, s in found:
        if all(_iou(box, k[0]) <= DEDUPE_IOU for k in kept):
            kept.append((box, s))
    return kept


def _landmarks(rgb: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    import dlib

    rect = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])) - 1, int(round(box[3])) - 1)
    shape = shape_predictor()(rgb, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


DETECTORS = ("auto", "hog", "cnn")


def detect_faces(rgb: np.ndarray, detector: str = "hog", max_side: int = 1600, *, min_face: float = MIN_FACE,
                 scan_started: threading.Event | None = None) -> list[Face]:
    """All faces in the photo, left to right, each with 68 full-resolution landmarks.

    ``detector``: "hog" (fast, frontal and near-frontal faces), "cnn" (dlib's MMOD
    network: finds more turned, tilted and small faces, seconds per photo on CPU) or "auto":
    HOG, and the CNN only when HOG finds no face (the turned, tilted, small or tightly
    cropped faces HOG misses: on CEW's closed-eye crops it finds 51 of HOG's 52 misses),
    so photos HOG handles cost no more. ``Face.detector`` says which one found each face.
    Detection runs on a copy whose longer side is at most ``max_side`` (CNN: at most 1024 px).
    ``min_face``: the smallest face width (px, original photo) to look for; a larger value
    saves dlib's upsampling (HOG: ~4x faster per doubling saved; batch's --min-face).
    ``scan_started`` is set as the HOG scan begins (see dlib_models.preload_landmarks).
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
    if detector == "auto":
        return (detect_faces(rgb, "hog", max_side, min_face=min_face, scan_started=scan_started)
                or detect_faces(rgb, "cnn", max_side, min_face=min_face))
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    faces = []
    for box, score in _detect_boxes(rgb, detector, max_side, min_face, scan_started):
        lm = _landmarks(rgb, box)
        clipped = (
            int(np.clip(round(box[0]), 0, w)),
            int(np.clip(round(box[1]), 0, h)),
            int(np.clip(round(box[2]), 0, w)),
            int(np.clip(round(box[3]), 0, h)),
        )
        lm.setflags(write=False)
        faces.append(Face(box=clipped, landmarks=lm, detector=detector, score=score))
    faces.sort(key=lambda f: (f.box[0] + f.box[2], f.box[1]))
    return faces


def refit_face(rgb: np.ndarray, face: Face) -> Face:
    """The same face with its 68 landmarks fitted again on ``rgb``.

    For a photo whose eyes were just retouched: the face has not moved, so no detection is
    needed (a fresh detection around a 1,000 px face costs the upsampled HOG pass, ~0.5 s),
    and the landmarks show the new eyes.
    """
    lm = _landmarks(_check_rgb(rgb), face.box)
    lm.setflags(write=False)
    return Face(box=face.box, landmarks=lm, detector=face.detector, score=face.score)


def central_face(faces: list[Face], image_size: tuple[int, int]) -> Face | None:
    """The face whose centre is nearest the photo's centre (LFW's labelled person), or None.

    ``image_size`` is (width, height).
    """
    if not faces:
        return None
    cx, cy = image_size[0] / 2, image_size[1] / 2

    def dist(f: Face) -> float:
        c = f.landmarks.mean(axis=0)
        return float((c[0] - cx) ** 2 + (c[1] - cy) ** 2)

    return min(faces, key=dist)


def largest_face(faces: list[Face]) -> Face | None:
    """The widest face (by ``face_width``), or None."""
    return max(faces, key=face_width) if faces else None


# ---------------------------------------------------------------------------------------
# Measurements


def face_width(face: Face) -> float:
    """Face width in photo pixels: jaw landmark 0 to 16 (temple to temple; roll-invariant)."""
    lm = face.landmarks
    return float(np.linalg.norm(lm[16] - lm[0]))


def _full_object_detection(landmarks: np.ndarray):
    import dlib

    lm = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = np.floor(lm.min(axis=0)).astype(int)
    x1, y1 = np.ceil(lm.max(axis=0)).astype(int)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    return dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in lm])


def face_descriptor(rgb: np.ndarray, face: Face, *, full_resolution: bool = False) -> np.ndarray:
    """128-d identity descriptor (dlib ResNet, 68-point alignment); compare with
    ``descriptor_distance`` against ``SAME_PERSON_THRESHOLD``.

    By default it is computed on a crop around the face, reduced so the face is at most
    DESCRIPTOR_FACE_SIDE px wide (dlib itself works on a 150 px chip), with the landmarks
    moved into the crop: on big photos this is much faster and gives the same descriptor
    (distance to the full-resolution one ~0.01, tested). ``full_resolution`` skips the crop.
    """
    import cv2

    rgb = _check_rgb(rgb)
    lm = np.asarray(face.landmarks, dtype=np.float64)
    if not full_resolution:
        lo, hi = lm.min(axis=0), lm.max(axis=0)
        centre = (lo + hi) / 2
        extent = float(max(hi - lo))
        half = 1.25 * extent  # dlib's chip (padding 0.25) stays well inside this crop
        h, w = rgb.shape[:2]
        x0, y0 = max(0, int(np.floor(centre[0] - half))), max(0, int(np.floor(centre[1] - half)))
        x1, y1 = min(w, int(np.ceil(centre[0] + half))), min(h, int(np.ceil(centre[1] + half)))
        if x1 > x0 and y1 > y0:
            crop = rgb[y0:y1, x0:x1]
            lm = lm - np.array([x0, y0], dtype=np.float64)
            s = min(1.0, DESCRIPTOR_FACE_SIDE / max(extent, 1.0))
            if s < 1.0:
                ch, cw = crop.shape[:2]
                nw, nh = max(1, round(cw * s)), max(1, round(ch * s))
                crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
                # pixel centres: x_new + 0.5 = (x_old + 0.5) * nw / cw
                lm = (lm + 0.5) * np.array([nw / cw, nh / ch]) - 0.5
            rgb = np.ascontiguousarray(crop)
    shape = _full_object_detection(lm)
    with locked_encoder() as encoder:
        return np.asarray(encoder.compute_face_descriptor(rgb, shape), dtype=np.float32)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (< SAME_PERSON_THRESHOLD: same person)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def sharpness(rgb: np.ndarray, face: Face) -> float:
    """Variance of the Laplacian of the face region (grey, resized to 128 x 128 px).

    The region is the landmarks' bounding box; resizing to a fixed size first makes the
    value comparable between a 100 px face and a 1000 px one (it measures blur relative to
    the face, not to the pixel grid). Sharp faces score in the hundreds, blurred ones < 50.
    """
    import cv2

    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    lo = np.floor(face.landmarks.min(axis=0)).astype(int)
    hi = np.ceil(face.landmarks.max(axis=0)).astype(int)
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(w, hi[0] + 1), min(h, hi[1] + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    grey = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    small = x1 - x0 < SHARPNESS_SIDE
    interp = cv2.INTER_LINEAR if small else cv2.INTER_AREA
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=interp)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
