"""Paste generated eyes back into the full photo without a visible box.

The generator works on a small aligned crop. Only the eye boxes are taken from it: a
feathered alpha (a box blurred at its border) is built in crop space, the crop and the
alpha are warped back with the inverse alignment into a region of interest of the photo,
and blended there. Before that, the generated pixels are shifted in colour so that the
generator's rendering of the skin on a rim just inside the boxes matches the real skin there,
which removes a brightness/colour step a generator might leave. (Measured on real closed eyes,
benchmarks/seams.py: the trained models leave none, so this changes nothing today; the feather
is what hides the box.) Every photo pixel
where the alpha is exactly zero keeps its decoded value.

With ``BlendConfig.detail`` (the default) the pasted content is not the plain upsampled crop:
``exgan_cli.stages.detail`` keeps the generator's low frequencies and takes the high frequencies
from real pixels at the photo's full resolution (the aligned reference photo inside the
eyes, the photo itself around them, plus matched grain), so the eyes are as sharp as the
face around them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from exgan_cli.stages.detail import DetailConfig
from exgan_cli.stages.geometry import Box, boxes_to_mask, invert, transform_points

if TYPE_CHECKING:
    from exgan_cli.stages.detail import DetailSource
    from exgan_cli.stages.warp import WarpSource


@dataclass(frozen=True)
class BlendConfig:
    feather: float = 0.18  # Gaussian sigma of the alpha border, in box heights
    inset: float = 0.10  # alpha reaches 0.5 this far inside the box edge, in box heights
    ring: float = 0.15  # width of the rim just inside the eye boxes used for colour matching, in box heights
    colour_match: bool = True  # shift generated colours to match the surrounding skin
    detail: bool = True  # full-resolution detail from the reference and the photo (exgan_cli.stages.detail)
    detail_cfg: DetailConfig = field(default_factory=DetailConfig)  # its settings
    warp: bool = True  # a warp model's field takes the reference photo's own pixels at full resolution
    # (stages/warp.py) where its ModelConfig.warp_fullres says so; off: only its 128 px output is pasted,
    # as for the other models
    iris_colour: bool = True  # move the new irises to the reference's colour relative to the skin
    # (eye_colour.match_iris_colour; faces of selfcheck.COLOUR_MIN_FACE px and more, where it can be read)

    def to_dict(self) -> dict:
        return asdict(self)


def _box_height(boxes: Sequence[Box]) -> float:
    return float(np.mean([b[3] - b[1] for b in boxes]))


def feather_alpha(boxes: Sequence[Box], resolution: int, cfg: BlendConfig = BlendConfig()) -> np.ndarray:
    """Soft alpha (res, res) float32 in [0, 1]: ~1 inside the eye boxes, 0 well outside.

    The support ends about three sigmas outside the shrunken boxes; beyond it the alpha
    is exactly zero so those pixels are never touched.
    """
    import cv2

    h = _box_height(boxes)
    inset = cfg.inset * h
    shrunk = [(x0 + inset, y0 + inset, x1 - inset, y1 - inset) for x0, y0, x1, y1 in boxes]
    # Work at 4x so the border of a small crop is smooth, then reduce.
    up = 4
    hard = boxes_to_mask([tuple(v * up for v in b) for b in shrunk], resolution * up)
    sigma = max(cfg.feather * h * up, 0.5)
    soft = cv2.GaussianBlur(hard, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    alpha = cv2.resize(soft, (resolution, resolution), interpolation=cv2.INTER_AREA)
    alpha[alpha < 1e-3] = 0.0  # a hard zero so untouched pixels stay bit-exact
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def match_colour(
    generated: np.ndarray, original: np.ndarray, boxes: Sequence[Box], cfg: BlendConfig = BlendConfig()
) -> np.ndarray:
    """Shift generated colours by their median difference from the photo on a rim of skin just
    inside the eye boxes. Returns float32 (res, res, 3).

    Only the holes are the generator's trained output (its loss sees the composite), so the
    comparison is made inside them: on a rim ``cfg.ring`` box heights wide along the boxes'
    edges, mostly skin, which G repaints from the surroundings it sees. The per-channel median
    of photo - generated there (robust to the lashes and brows G draws differently) is applied
    to the whole crop. G's raw output outside the holes is never looked at: it is arbitrary
    (an earlier version compared a ring there, and a generator whose untrained outside drifted
    would have shifted the new eyes by as much, tests/apps/test_retouch.py).
    """
    import cv2

    gen = generated.astype(np.float32)
    if not cfg.colour_match:
        return gen
    res = gen.shape[0]
    r = max(1, round(cfg.ring * _box_height(boxes)))
    hole = (boxes_to_mask(boxes, res) > 0.5).astype(np.uint8)
    core = cv2.erode(hole, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    rim = (hole > 0) & (core == 0)
    if rim.sum() < 10:
        return gen
    offset = np.median(original.astype(np.float32)[rim] - gen[rim], axis=0)
    return gen + offset


def paste_back(
    photo: np.ndarray,
    crop: np.ndarray,
    alpha: np.ndarray,
    matrix: np.ndarray,
    detail: "DetailSource | None" = None,
    warp: "WarpSource | None" = None,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Blend ``crop`` (res, res, 3) into a copy of ``photo`` with ``alpha`` (res, res).

    ``matrix`` maps photo coordinates to crop coordinates (the alignment). With ``detail``
    (and a face big enough for it to apply) the content blended in is ``detail.render`` of the
    upsampled crop (its low band, with full-resolution high frequencies) instead of the
    upsampled crop itself; the alpha and the pixels it leaves alone are the same. With ``warp`` (a
    warp model's field, stages/warp.py) the reference photo's own pixels, moved by the field, are
    blended over that content with the field's weight. Returns the new photo and the photo box that
    was touched (None if nothing was).
    """
    import cv2

    ys, xs = np.nonzero(alpha > 0)
    out = photo.copy()
    if len(xs) == 0:
        return out, None
    # Region of the photo covered by the alpha's support, with a pixel of slack.
    corners = np.array(
        [[xs.min() - 1, ys.min() - 1], [xs.max() + 2, ys.min() - 1], [xs.min() - 1, ys.max() + 2], [xs.max() + 2, ys.max() + 2]],
        dtype=np.float64,
    )
    pc = transform_points(corners, invert(matrix))
    h, w = photo.shape[:2]
    x0, y0 = max(0, int(np.floor(pc[:, 0].min()))), max(0, int(np.floor(pc[:, 1].min())))
    x1, y1 = min(w, int(np.ceil(pc[:, 0].max())) + 1), min(h, int(np.ceil(pc[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return out, None
    # crop -> ROI matrix: inverse alignment, then shift by the ROI origin.
    to_roi = invert(matrix)
    to_roi[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    if detail is None or not detail.applies(matrix):
        warped = cv2.warpAffine(crop.astype(np.float32), to_roi, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    else:
        # The detail filters need context around the ROI: render on a padded box, keep the ROI.
        pad = detail.context(matrix)
        X0, Y0, X1, Y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        to_pad = invert(matrix)
        to_pad[:, 2] -= (X0, Y0)
        up = cv2.warpAffine(crop.astype(np.float32), to_pad, (X1 - X0, Y1 - Y0), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        content = detail.render(photo, up, (X0, Y0, X1, Y1), matrix)
        warped = content[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0]
    if warp is not None:
        warped = warp.render(warped, (x0, y0, x1, y1), matrix)
    a = cv2.warpAffine(alpha.astype(np.float32), to_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = np.clip(a, 0.0, 1.0)[..., None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    blended = np.clip(np.rint(a * warped + (1.0 - a) * roi), 0, 255).astype(np.uint8)
    touched = a[..., 0] > 0
    out[y0:y1, x0:x1][touched] = blended[touched]
    return out, (x0, y0, x1, y1)


def photo_boxes(boxes: Sequence[Box], matrix: np.ndarray) -> list[Box]:
    """Crop-space boxes as axis-aligned boxes in photo coordinates (for reports)."""
    inv = invert(matrix)
    result = []
    for x0, y0, x1, y1 in boxes:
        p = transform_points(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]), inv)
        result.append((float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())))
    return result
