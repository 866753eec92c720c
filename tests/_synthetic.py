"""A tiny synthetic face cache for training tests that need no face detector.

Each "person" has a skin colour and an iris colour; each of their "photos" is the same drawing
with a little noise and shift, eyes as dark almonds with the person's iris. The 68 landmarks
put the eyes where alignment would (geometry.DEFAULT_TEMPLATE), so the eye boxes land on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exgan_cli.training.dataset import encode_crop, save_dataset
from exgan_cli.stages.geometry import DEFAULT_TEMPLATE, AlignConfig


def synthetic_landmarks(resolution: int, dx: float = 0.0, dy: float = 0.0, ear: float = 0.3) -> np.ndarray:
    r = resolution
    lm = np.zeros((68, 2))
    t = np.array(DEFAULT_TEMPLATE) * r + [dx, dy]
    # jaw, brows, nose and mouth: roughly where they are, only the eyes matter to the masks
    angles = np.linspace(np.pi, 0, 17)
    lm[0:17] = np.stack([r / 2 - 0.42 * r * np.cos(angles), 0.45 * r + 0.45 * r * np.sin(angles)], 1) + [dx, dy]
    lm[17:22] = np.stack([np.linspace(t[0, 0] - 0.1 * r, t[0, 0] + 0.08 * r, 5), np.full(5, t[0, 1] - 0.1 * r)], 1)
    lm[22:27] = np.stack([np.linspace(t[1, 0] - 0.08 * r, t[1, 0] + 0.1 * r, 5), np.full(5, t[1, 1] - 0.1 * r)], 1)
    lm[27:31] = np.stack([np.full(4, t[2, 0]), np.linspace(t[0, 1], t[2, 1], 4)], 1)
    lm[31:36] = np.stack([np.linspace(t[2, 0] - 0.06 * r, t[2, 0] + 0.06 * r, 5), np.full(5, t[2, 1] + 0.02 * r)], 1)
    w = 0.15 * r
    h = ear * w / 2
    for centre, first in ((t[0], 36), (t[1], 42)):
        cx, cy = centre
        pts = [(cx - w / 2, cy), (cx - w / 6, cy - h), (cx + w / 6, cy - h), (cx + w / 2, cy), (cx + w / 6, cy + h), (cx - w / 6, cy + h)]
        lm[first : first + 6] = pts
    mouth = np.linspace(t[3, 0], t[4, 0], 7)
    lm[48:55] = np.stack([mouth, np.full(7, t[3, 1])], 1)
    lm[55:60] = np.stack([mouth[5:0:-1], np.full(5, t[3, 1] + 0.04 * r)], 1)
    lm[60:65] = np.stack([np.linspace(t[3, 0] + 0.02 * r, t[4, 0] - 0.02 * r, 5), np.full(5, t[3, 1])], 1)
    lm[65:68] = np.stack([np.linspace(t[4, 0] - 0.05 * r, t[3, 0] + 0.05 * r, 3), np.full(3, t[3, 1] + 0.01 * r)], 1)
    return lm


def synthetic_face(rng: np.random.Generator, resolution: int, skin, iris, lm: np.ndarray) -> np.ndarray:
    r = resolution
    yy, xx = np.mgrid[0:r, 0:r].astype(np.float64)
    img = np.empty((r, r, 3))
    img[:] = np.asarray(skin, dtype=np.float64)
    img *= (0.8 + 0.4 * yy / r)[..., None]  # a vertical gradient, so the holes are not flat
    for first in (36, 42):
        eye = lm[first : first + 6]
        cx, cy = eye.mean(0)
        w = np.linalg.norm(eye[3] - eye[0]) / 2
        h = max(np.abs(eye[1:3, 1] - cy).mean(), 0.5)
        almond = ((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2 <= 1
        img[almond] = (235, 235, 235)
        pupil = ((xx - cx) / (0.45 * h + 0.5)) ** 2 + ((yy - cy) / (0.9 * h + 0.5)) ** 2 <= 1
        img[almond & pupil] = iris
    img += rng.normal(0, 4, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_synthetic_cache(path: Path, persons: int = 4, per_person: int = 5, resolution: int = 32, seed: int = 0) -> Path:
    """A cache of persons x per_person open-eyed synthetic faces (plus one closed-eyed face and one
    squinting face for the first person, which training must leave out)."""
    rng = np.random.default_rng(seed)
    jpegs, lms, ears, closed, person, paths = [], [], [], [], [], []
    names = [f"Person_{i}" for i in range(persons)]
    for p in range(persons):
        skin = rng.uniform(120, 220, size=3)
        iris = rng.uniform(0, 160, size=3)
        kinds = ["open"] * per_person + (["closed", "squint"] if p == 0 else [])
        for k, kind in enumerate(kinds):
            ear = {"open": 0.3, "closed": 0.08, "squint": 0.17}[kind]
            lm = synthetic_landmarks(resolution, *rng.uniform(-0.03, 0.03, size=2) * resolution, ear=ear)
            jpegs.append(encode_crop(synthetic_face(rng, resolution, skin, iris, lm)))
            lms.append(lm)
            ears.append((ear, ear))
            closed.append(kind == "closed")
            person.append(p)
            paths.append(f"{names[p]}/{names[p]}_{k:04d}.jpg")
    return save_dataset(
        path, jpegs, np.array(lms), np.array(ears), np.array(closed), np.array(person), names, paths,
        AlignConfig(resolution=resolution), meta={"photos_seen": len(paths), "synthetic": True},
    )
