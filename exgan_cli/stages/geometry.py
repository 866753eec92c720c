"""Canonical face alignment and eye masks, shared by open-eyes, train and evaluate.

A face is aligned by the least-squares similarity transform (rotation, uniform scale,
translation) that maps five landmark-derived points (the two eye centres, the nose tip and
the mouth corners) onto a fixed template in a square crop. The eye masks are boxes around
each eye, sized from the eye's width so that a closed eye gets the same box an open eye
would need. Points are (x, y); boxes are (x0, y0, x1, y1) with x1, y1 exclusive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

Box = tuple[float, float, float, float]

# dlib 68-point indices. "left" is the eye on the image's left (the subject's right eye).
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54

# Template for the five alignment points in a unit square (multiplied by the resolution).
# Proportions of an average frontal face: inter-ocular distance 0.32 of the crop, eyes at 40%
# height, leaving forehead above and chin below inside the crop (as in LFW's central face).
DEFAULT_TEMPLATE: tuple[tuple[float, float], ...] = (
    (0.34, 0.40),  # left eye centre
    (0.66, 0.40),  # right eye centre
    (0.50, 0.575),  # nose tip
    (0.365, 0.735),  # mouth left corner
    (0.635, 0.735),  # mouth right corner
)


@dataclass(frozen=True)
class AlignConfig:
    resolution: int = 128  # side of the square aligned crop, in pixels
    template: tuple[tuple[float, float], ...] = DEFAULT_TEMPLATE  # 5 points, unit square

    def to_dict(self) -> dict:
        return {"resolution": self.resolution, "template": [list(p) for p in self.template]}

    @classmethod
    def from_dict(cls, d: dict) -> "AlignConfig":
        return cls(resolution=int(d["resolution"]), template=tuple(tuple(map(float, p)) for p in d["template"]))


@dataclass(frozen=True)
class MaskConfig:
    width_scale: float = 1.8  # box width, in eye widths (corner to corner)
    height_scale: float = 1.15  # box height, in eye widths: room for an open eye and its lids
    up_shift: float = 0.05  # box centre moved up by this many eye widths (lids open upwards)
    jitter_center: float = 0.08  # training: std of the centre offset, in eye widths
    jitter_scale: float = 0.10  # training: std of the relative size change
    jitter_clip: float = 2.0  # training: normal samples clipped at this many std

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MaskConfig":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: float(v) for k, v in d.items() if k in names})


def alignment_points(landmarks: np.ndarray) -> np.ndarray:
    """The five alignment points (5, 2) from dlib's 68 landmarks (68, 2)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return np.stack(
        [
            lm[LEFT_EYE].mean(axis=0),
            lm[RIGHT_EYE].mean(axis=0),
            lm[NOSE_TIP],
            lm[MOUTH_LEFT],
            lm[MOUTH_RIGHT],
        ]
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping src points onto dst; a 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # no reflections
        fix[1, 1] = -1
    rot = u @ fix @ vt
    var_s = (s0**2).sum() / len(src)
    scale = float((sig * np.diag(fix)).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_matrix(landmarks: np.ndarray, cfg: AlignConfig = AlignConfig()) -> np.ndarray:
    """The 2x3 matrix taking photo coordinates to the canonical crop of this face."""
    dst = np.asarray(cfg.template, dtype=np.float64) * cfg.resolution
    return similarity_transform(alignment_points(landmarks), dst)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    a = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


def matrix_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a similarity matrix (crop pixels per photo pixel)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def source_region(points: np.ndarray, shape: tuple[int, ...], pad: int) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) around ``points`` grown by ``pad`` px and clipped to an image of
    ``shape`` (H, W, ...): the part of a source image a warp samples. Empty (x1 <= x0 or
    y1 <= y0) when the points lie outside the image."""
    h, w = shape[:2]
    pts = np.asarray(points, dtype=np.float64)
    x0 = int(max(0, np.floor(pts[:, 0].min()) - pad))
    y0 = int(max(0, np.floor(pts[:, 1].min()) - pad))
    x1 = int(min(w, np.ceil(pts[:, 0].max()) + pad))
    y1 = int(min(h, np.ceil(pts[:, 1].max()) + pad))
    return x0, y0, x1, y1


def warp_to_crop(rgb: np.ndarray, matrix: np.ndarray, resolution: int) -> np.ndarray:
    """Warp an (H, W, C) image into the (resolution, resolution) crop defined by matrix.

    Only the photo region that maps into the crop is touched, and when the crop is much
    smaller than the face it is first reduced with area averaging, so big photos neither
    alias nor cost a full-size warp.
    """
    import cv2

    inv = invert(matrix)
    corners = transform_points(np.array([[0, 0], [resolution, 0], [0, resolution], [resolution, resolution]]), inv)
    x0, y0, x1, y1 = source_region(corners, rgb.shape, pad=2)
    m = matrix.copy()
    if x1 <= x0 or y1 <= y0:  # face entirely outside the photo: an empty (black) crop
        return np.zeros((resolution, resolution) + rgb.shape[2:], dtype=rgb.dtype)
    region = rgb[y0:y1, x0:x1]
    m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    factor = int(np.floor(1.0 / max(matrix_scale(matrix), 1e-6) / 1.5))
    if factor >= 2:
        rh, rw = region.shape[:2]
        nh, nw = max(1, rh // factor), max(1, rw // factor)
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        m[:, :2] *= np.array([[rw / nw, rh / nh]])
    return cv2.warpAffine(
        region, m, (resolution, resolution), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def align_face(
    rgb: np.ndarray, landmarks: np.ndarray, cfg: AlignConfig = AlignConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crop (res, res, 3) of one face and the photo->crop matrix."""
    m = align_matrix(landmarks, cfg)
    return warp_to_crop(rgb, m, cfg.resolution), m


def _eye_box(eye: np.ndarray, mcfg: MaskConfig, rng: np.random.Generator | None) -> Box:
    width = float(np.linalg.norm(eye[3] - eye[0]))  # outer corner to inner corner
    cx, cy = eye.mean(axis=0)
    cy -= mcfg.up_shift * width
    bw, bh = mcfg.width_scale * width, mcfg.height_scale * width
    if rng is not None:
        clip = mcfg.jitter_clip
        dx, dy = np.clip(rng.normal(size=2), -clip, clip) * mcfg.jitter_center * width
        sw, sh = 1.0 + np.clip(rng.normal(size=2), -clip, clip) * mcfg.jitter_scale
        cx, cy, bw, bh = cx + dx, cy + dy, bw * sw, bh * sh
    return (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)


def eye_boxes(
    landmarks: np.ndarray, mcfg: MaskConfig = MaskConfig(), rng: np.random.Generator | None = None
) -> list[Box]:
    """Boxes around the left and right eye for 68 landmarks (in whatever frame they are).

    With ``rng`` the boxes jitter in centre and size (training); without, they are the
    deterministic boxes used at inference and evaluation.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    return [_eye_box(lm[LEFT_EYE], mcfg, rng), _eye_box(lm[RIGHT_EYE], mcfg, rng)]


def boxes_to_mask(boxes: Sequence[Box], size: int | tuple[int, int]) -> np.ndarray:
    """Binary float32 mask (H, W), 1 inside any box; box edges rounded to whole pixels."""
    h, w = (size, size) if isinstance(size, int) else size
    mask = np.zeros((h, w), dtype=np.float32)
    for x0, y0, x1, y1 in boxes:
        xa, ya = max(0, int(round(x0))), max(0, int(round(y0)))
        xb, yb = min(w, int(round(x1))), min(h, int(round(y1)))
        if xb > xa and yb > ya:
            mask[ya:yb, xa:xb] = 1.0
    return mask


def eye_band(resolution: int, template: Sequence[tuple[float, float]] = DEFAULT_TEMPLATE) -> tuple[int, int, int, int]:
    """A fixed box of the aligned crop that holds both eyes and brows (for the eye encoder).

    Alignment puts the eyes at the template's positions, so the band is the same for every
    face: 2:1 wide, centred on the eyes, half the crop wide.
    """
    ex = (template[0][0] + template[1][0]) / 2
    ey = (template[0][1] + template[1][1]) / 2
    iod = template[1][0] - template[0][0]
    half_w = iod * 1.0  # eyes sit at a quarter and three quarters of the band
    half_h = half_w / 2
    x0 = int(round((ex - half_w) * resolution))
    y0 = int(round((ey - half_h) * resolution))
    side = int(round(2 * half_w * resolution))
    return (x0, y0, x0 + side, y0 + side // 2)
