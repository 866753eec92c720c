"""The warp model's field applied at the photo's own resolution: the person's real eye, bent into place.

A warp generator (ModelConfig.warp, model/generator.py) says, per pixel of its 128 px crop, how
far to move the reference's eyes (already relit and warped onto the target's eyes by their
corners, exemplar.warp_eyes) and how much of that moved reference to take instead of its own
pixels. At 128 px that is a blend of two 128 px images; here the same field is followed back to
the reference *photo*, so that where the weight is high the new eye is the reference's real
iris, lashes, catchlights and lid line at the full resolution of the photos, not a 128 px
rendering of them upsampled.

For every pixel p of the target photo's region:

    q  = target photo -> target crop (the alignment)            (crop pixels, continuous)
    q' = q + displacement(q)                                    (the field, bilinear)
    r  = target crop -> reference crop, by the similarity that warp_eyes used for the eye
         whose window holds q' (the inverse of exemplar.eye_warp)
    s  = reference crop -> reference photo (the reference's alignment, inverted)

and the reference photo is sampled at s (bicubic; area-reduced first where it is the finer of
the two, so nothing aliases), scaled by the relighting gain G read the reference with, and
blended over the pasted content with the field's weight (bilinear, zero outside the holes).
Where the weight is low the content is what the rest of the pipeline made (G's pixels with the
detail stage's full-resolution texture).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exgan_cli.stages.detail_bands import fine_band, luma, synthesise_fine
from exgan_cli.stages.detail_config import DetailConfig
from exgan_cli.stages.detail_flow import as3
from exgan_cli.stages.geometry import invert, matrix_scale

MIN_WEIGHT = 1e-3  # below this the reference is not sampled at all


@dataclass(eq=False)
class WarpSource:
    """One face's warp: what ``render`` needs besides the content it blends over."""

    flow: np.ndarray  # (R, R, 2) float32: the displacement in crop pixels (dx, dy), as G output it
    weight: np.ndarray  # (R, R) float32 in [0, 1]: how much of the moved reference, zero outside the holes
    crop_to_ref_crop: list[np.ndarray]  # per eye window: 2x3 target crop -> reference crop
    windows: list[tuple[int, int, int, int]]  # exemplar.eye_windows of the target's holes
    ref_crop_to_photo: np.ndarray  # 2x3: reference crop -> reference photo
    ref_pixels: np.ndarray  # the reference photo, RGB uint8 (H, W, 3)
    gain: np.ndarray  # (3,) the per-channel relighting gain G read the reference with
    detail_cfg: DetailConfig = DetailConfig()  # grain and shock-filter settings, shared with the detail stage
    info: dict = field(default_factory=dict)  # filled by render: weight and displacement figures

    def render(self, content: np.ndarray, roi: tuple[int, int, int, int], target_matrix: np.ndarray) -> np.ndarray:
        return render_warp(content, roi, target_matrix, self)


def warp_source(model, target, reference, ref_pixels: np.ndarray, flow: np.ndarray, weight: np.ndarray,
                detail_cfg: DetailConfig = DetailConfig()) -> WarpSource:
    """The WarpSource of one generated face: ``target`` and ``reference`` are the AlignedFace
    pair G read (stages/generate.py), ``flow`` (R, R, 2) and ``weight`` (R, R) its warp outputs."""
    from exgan_cli.stages.exemplar import eye_warp, eye_windows, relight_ratio

    cfg = model.model_cfg
    r = target.crop.shape[0]
    gain = (
        relight_ratio(reference.crop, reference.landmarks, target.crop, target.landmarks, target.mask)
        if cfg.relight
        else np.ones(3, dtype=np.float32)
    )
    return WarpSource(
        flow=np.asarray(flow, dtype=np.float32),
        weight=(np.asarray(weight, dtype=np.float32) * (np.asarray(target.mask) > 0.5)).astype(np.float32),
        crop_to_ref_crop=[invert(eye_warp(reference.landmarks, target.landmarks, side)) for side in (0, 1)],
        windows=eye_windows(target.boxes, r),
        ref_crop_to_photo=invert(reference.matrix),
        ref_pixels=ref_pixels,
        gain=np.asarray(gain, dtype=np.float32),
        detail_cfg=detail_cfg,
    )


def _apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def render_warp(content: np.ndarray, roi: tuple[int, int, int, int], target_matrix: np.ndarray, src: WarpSource) -> np.ndarray:
    """``content`` (float32 (h, w, 3), the pasted content of ``roi`` = (x0, y0, x1, y1) of the
    target photo) with the reference photo, moved by the field, blended in with its weight."""
    import cv2

    x0, y0, x1, y1 = roi
    h, w = y1 - y0, x1 - x0
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    qx, qy = _apply(np.asarray(target_matrix, dtype=np.float64), xs, ys)
    qx, qy = qx.astype(np.float32), qy.astype(np.float32)
    weight = cv2.remap(src.weight, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sel = weight > MIN_WEIGHT
    src.info.update({"weight_max": round(float(weight.max()) if weight.size else 0.0, 3)})
    if not sel.any():
        src.info.update({"weight_mean": 0.0, "taken": 0, "mixed": 0.0, "displacement_max": 0.0})
        return content
    rows, cols = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    qx, qy, wb = qx[box], qy[box], weight[box]
    dx = cv2.remap(src.flow[..., 0], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    dy = cv2.remap(src.flow[..., 1], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mx, my = qx + dx, qy + dy
    # which eye's similarity rendered the warped reference at q' (warp_eyes: the first window keeps overlaps)
    ix, iy = np.floor(mx + 0.5), np.floor(my + 0.5)
    wx0, wy0, wx1, wy1 = src.windows[0]
    first = (ix >= wx0) & (ix < wx1) & (iy >= wy0) & (iy < wy1)
    px = np.empty_like(mx)
    py = np.empty_like(my)
    for side, where in ((0, first), (1, ~first)):
        m = (as3(src.ref_crop_to_photo) @ as3(src.crop_to_ref_crop[side]))[:2]
        sx, sy = _apply(m, mx[where], my[where])
        px[where], py[where] = sx, sy
    factor = _ref_per_target(src, target_matrix)
    sampled = _sample(src.ref_pixels, px, py, factor)
    sampled *= src.gain
    lack = _sharpen(sampled, content[box], 1.0 / max(factor, 1e-6), src.detail_cfg)
    out = content.copy()
    a = wb[..., None]
    out[box] = a * sampled + (1.0 - a) * content[box]
    inside = wb > 0.5
    src.info.update(
        {
            "weight_mean": round(float(wb[wb > MIN_WEIGHT].mean()), 3),
            "taken": int(inside.sum()),  # photo pixels where the reference weighs more than G
            # of the pixels the reference reaches, the share where it is mixed half and half with G
            # (0.2 < weight < 0.8): two irises, two pupils or two lid lines that do not lie on each
            # other show there as a ghost (the figure a photographer sees that the L1 does not)
            "mixed": round(float(((wb > 0.2) & (wb < 0.8)).sum() / max(int((wb > MIN_WEIGHT).sum()), 1)), 3),
            "displacement_max": round(float(np.hypot(dx, dy)[sel[box]].max()), 2),
            "upscale": round(1.0 / max(factor, 1e-6), 2),  # target pixels per reference pixel
            "lacks_fine": round(lack, 3),  # the share of the finest octave the reference lacks (rebuilt)
        }
    )
    return np.clip(out, 0.0, 255.0)


def _ref_per_target(src: WarpSource, target_matrix: np.ndarray) -> float:
    """Reference photo pixels per target photo pixel (the scale of the composed map)."""
    crop_per_target = matrix_scale(np.asarray(target_matrix, dtype=np.float64))
    ref_per_crop = matrix_scale(src.ref_crop_to_photo) * float(np.mean([matrix_scale(m) for m in src.crop_to_ref_crop]))
    return crop_per_target * ref_per_crop


def _sharpen(sampled: np.ndarray, content: np.ndarray, upscale: float, cfg: DetailConfig) -> float:
    """A reference face smaller than the target's is upsampled here, and lacks the finest octave
    (``synthesise_fine``: nothing at 1x, all of it from 2x). Add it back in place: the band its own
    edges would have (shock filter, in phase with its lashes and iris rim) and the target's own
    grain (the content's finest band, measured on the photo by the detail stage). Returns the
    share that was lacking."""
    if upscale <= 1.0:
        return 0.0
    _, synth, lack = synthesise_fine(luma(sampled), upscale, cfg)
    if lack <= 0.0:
        return 0.0
    sampled += lack * (synth[..., None] + fine_band(np.ascontiguousarray(content), cfg.grain_sigma))
    return lack


def _sample(pixels: np.ndarray, px: np.ndarray, py: np.ndarray, factor: float) -> np.ndarray:
    """Bicubic samples (n, m, 3) float32 of ``pixels`` at (px, py); where the reference is finer
    than the target (``factor`` > 1.05 reference pixels per target pixel) the sampled region is
    first area-reduced to the target's scale."""
    import cv2

    H, W = pixels.shape[:2]
    pad = 4
    rx0 = int(np.clip(np.floor(px.min()) - pad, 0, W - 1))
    ry0 = int(np.clip(np.floor(py.min()) - pad, 0, H - 1))
    rx1 = int(np.clip(np.ceil(px.max()) + pad + 1, rx0 + 1, W))
    ry1 = int(np.clip(np.ceil(py.max()) + pad + 1, ry0 + 1, H))
    region = pixels[ry0:ry1, rx0:rx1].astype(np.float32)
    mx, my = px - rx0, py - ry0
    if factor > 1.05:
        rh, rw = region.shape[:2]
        nh, nw = max(1, int(round(rh / factor))), max(1, int(round(rw / factor)))
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = nw / rw, nh / rh  # pixel centres: x_new + 0.5 = (x_old + 0.5) * sx
        mx, my = (mx + 0.5) * sx - 0.5, (my + 0.5) * sy - 0.5
    out = cv2.remap(region, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(px.shape + (3,)).astype(np.float32)
