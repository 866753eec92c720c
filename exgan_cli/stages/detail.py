"""Full-resolution detail for generated eyes: the photo's own texture plus the exemplar's.

The generator paints a 128 px face crop; on a 300 to 1,500 px face, pasted back at that size,
its eyes are 3 to 12 times softer than the lashes, skin and grain around them. Here the pasted
content is rebuilt at the target photo's full resolution from three frequency bands:

- low band: the (upsampled, colour-matched) generator output, low-passed with a Gaussian of
  ``split`` crop pixels. That is what a 128 px generator can say: where the eye is, its
  shape, colours and shading.
- everything above it comes from real pixels only:
  * inside the eyes (the outline of the target's eye and of the reference's eye, grown by
    ``eye_grow`` eye widths) from the REFERENCE photo. Its face is aligned onto the target's
    at the target's full resolution (target photo -> crop -> reference photo: the two
    alignments composed, then refined per eye so the reference's eye corners land on the
    target's) and sampled from the reference's own pixels (area-reduced first when it is
    the larger, so nothing aliases). Its detail is split into a mid band and the finest band
    (``grain_sigma``); each is scaled so that on the skin around the eyes it has the target's
    level (a sharper or noisier reference is toned down, a softer one lifted, within
    [min_gain, max_gain]). What the finest band still lacks (a reference face smaller than the
    target face) is filled with grain whose 3x3 colour covariance is measured on the
    target's skin around the eyes, and, inside the eyes, with the fine band that the
    reference's own edges would have at the target's resolution: the reference steepened by
    a one-step shock filter (``synthesize``), in proportion to the part of the finest octave
    it lacks and never beyond the eye/skin contrast of its own finest octave. Grain alone
    leaves the eyes only as sharp as the skin.
  * around the eyes (lids, brows, skin inside the paste box) from the TARGET photo itself:
    its own texture stays, so the feathered border blends two layers with the same fine
    detail and nothing softens where the paste ends.

The reference's eye is not the generator's: gaze and lids differ. Two safeguards against
ghost contours, both measured in the band the generator renders: the reference's eye is moved
onto the generator's when they look alike (optical flow reduced to a similarity,
``register_*``), and the reference's structure is kept only where it agrees locally with the
generator's (SSIM's contrast-structure term); where it does not, its fine-band energy stays as
texture. A generator eye with no structure at all (an untrained model, ``blank_contrast``)
has nothing to conflict with, and nothing is gated.

The exemplar idea carried to full resolution: the reference is real, high-resolution evidence
of this person's eyes, and the generator only has to be right at 128 px. docs/detail.md has
the method's figures.

Here: the stage (``DetailSource``, ``render_detail`` in steps) and ``sharpness_ratio``. Its
settings and inputs are in detail_config.py, the band maths in detail_bands.py, the geometry
and registration in detail_flow.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exgan_cli.background import in_background
from exgan_cli.files.images import luminance
from exgan_cli.stages.detail_bands import (
    band_gains,
    covariance,
    draw_grain,
    fine_band,
    fine_radius,
    lowpass,
    luma,
    psd_sqrt,
    smoothstep,
    synthesise_fine,
)
from exgan_cli.stages.detail_config import DetailConfig, Exemplar
from exgan_cli.stages.detail_flow import as3, eye_matrices, register_eye, translate, warp_from
from exgan_cli.stages.geometry import (
    LEFT_EYE,
    RIGHT_EYE,
    MaskConfig,
    boxes_to_mask,
    eye_boxes,
    invert,
    matrix_scale,
    transform_points,
)

__all__ = ["DetailConfig", "DetailSource", "Exemplar", "eye_matrices", "render_detail", "sharpness_ratio"]


@dataclass(eq=False)
class DetailSource:
    """What ``blend.paste_back`` needs to render one face's detail."""

    landmarks: np.ndarray  # the target face's 68 landmarks (photo coordinates)
    exemplar: Exemplar | None  # the reference face; None: the photo's own detail and grain only
    cfg: DetailConfig = DetailConfig()
    info: dict = field(default_factory=dict)  # filled by render: gain, registration

    def applies(self, matrix: np.ndarray) -> bool:
        """Whether the face is big enough for the crop to lack detail (``min_upscale``)."""
        return 1.0 / max(matrix_scale(matrix), 1e-9) >= self.cfg.min_upscale

    def context(self, matrix: np.ndarray) -> int:
        """Pixels of photo around the paste region the filters need to see."""
        crop_px = 1.0 / max(matrix_scale(matrix), 1e-9)
        return int(np.ceil(3.0 * max(self.cfg.split * crop_px, self.cfg.grain_sigma))) + 2

    def render(self, photo: np.ndarray, generated: np.ndarray, roi: tuple[int, int, int, int], matrix: np.ndarray) -> np.ndarray:
        return render_detail(photo, generated, roi, matrix, self.landmarks, self.exemplar, self.cfg, self.info)


def sharpness_ratio(
    rgb: np.ndarray, landmarks: np.ndarray, mask_cfg: MaskConfig = MaskConfig(), ring: float = 0.35
) -> float:
    """R: variance of the Laplacian of luminance inside the eye boxes / the same on a skin ring.

    The boxes are ``geometry.eye_boxes`` of the landmarks (photo coordinates); the ring is
    those boxes grown by ``ring`` box heights, minus the boxes. Real open eyes in sharp
    photos score ~1.4 to 10 (median ~3); a blurry paste scores below 1.
    """
    import cv2

    boxes = eye_boxes(landmarks, mask_cfg)
    h = float(np.mean([b[3] - b[1] for b in boxes]))
    r = ring * h
    grown = [(x0 - r, y0 - r, x1 + r, y1 + r) for x0, y0, x1, y1 in boxes]
    # Only the region around the eyes is filtered (big photos).
    H, W = rgb.shape[:2]
    x0 = max(0, int(min(b[0] for b in grown)) - 2)
    y0 = max(0, int(min(b[1] for b in grown)) - 2)
    x1 = min(W, int(max(b[2] for b in grown)) + 3)
    y1 = min(H, int(max(b[3] for b in grown)) + 3)
    shift = lambda bs: [(a - x0, b - y0, c - x0, d - y0) for a, b, c, d in bs]  # noqa: E731
    size = (y1 - y0, x1 - x0)
    inner = boxes_to_mask(shift(boxes), size) > 0
    outer = (boxes_to_mask(shift(grown), size) > 0) & ~inner
    lap = cv2.Laplacian(luminance(rgb[y0:y1, x0:x1]), cv2.CV_32F)
    if inner.sum() < 4 or outer.sum() < 4:
        return float("nan")
    return float(lap[inner].var() / max(lap[outer].var(), 1e-9))


# ---------------------------------------------------------------------------------------
# Rendering, in steps: the eye regions, the reference's layers over the box around both
# eyes, its detail scaled to the target's skin, grain, the synthesised finest band, the paste.


@dataclass(eq=False)
class _Eye:
    """One eye of the target, in ROI coordinates."""

    width: float  # corner to corner, pixels
    roi_to_ref: np.ndarray | None  # ROI -> reference photo (2x3); None without an exemplar
    window: tuple[int, int, int, int]  # (x0, y0, x1, y1): the part of the ROI around the eye
    dist: np.ndarray  # in the window: distance to the eye's outline (the target's and the reference's)
    region: np.ndarray  # in the window: the soft region taking the reference's detail (1 inside)
    reach: float  # how far out the skin ring that calibrates the gains goes


@dataclass(eq=False)
class _Layers:
    """The reference's contribution, over the box around both eyes."""

    weight: np.ndarray  # (bh, bw): the eye regions (soft), where the output changes
    nearest: np.ndarray  # distance to the nearest eye outline
    ref_detail: np.ndarray  # (bh, bw, 3): the reference's detail above the generator's band
    ref_top: np.ndarray  # its own finest octave (luminance), for calibration
    ref_synth: np.ndarray  # the finest band it lacks, synthesised (luminance)
    has_ref: np.ndarray  # bool: where the reference was sampled
    agreement: np.ndarray  # its structure's agreement with the generator's (register_eye)
    missing: list = field(default_factory=list)  # per eye: the part of the finest octave it lacks
    registered: list = field(default_factory=list)  # per eye: the registration's correlations


def render_detail(
    photo: np.ndarray,
    generated: np.ndarray,
    roi: tuple[int, int, int, int],
    target_matrix: np.ndarray,
    target_landmarks: np.ndarray,
    exemplar: Exemplar | None,
    cfg: DetailConfig = DetailConfig(),
    info: dict | None = None,
) -> np.ndarray:
    """The content to paste in ``roi`` (x0, y0, x1, y1) of ``photo``: float32 (h, w, 3).

    ``generated`` is the generator's (colour-matched) crop already warped into the ROI
    (float32 (h, w, 3)). Its low band is kept; the high band comes from the exemplar inside
    the eyes and from ``photo`` around them (see the module's doc). With no exemplar the
    eyes get the target's grain only. The caller blends the result with its alpha.
    ``info``, when given, receives what was measured (gains, registration) for reports.
    """
    x0, y0, x1, y1 = roi
    crop_px = 1.0 / max(matrix_scale(target_matrix), 1e-9)  # photo pixels per crop pixel
    sigma = max(cfg.split * crop_px, 0.5)
    gs = cfg.grain_sigma

    target = photo[y0:y1, x0:x1].astype(np.float32)
    base = lowpass(np.asarray(generated, dtype=np.float32), sigma)
    own = target - lowpass(target, sigma)  # the target's own detail
    out = base + own  # around the eyes: the generator's low band with the photo's own detail
    eyes = _eye_regions(target_landmarks, target_matrix, exemplar, roi, sigma, cfg)
    if not eyes:
        return out

    # Everything below lives in the box around both eyes.
    bx0, by0 = min(e.window[0] for e in eyes), min(e.window[1] for e in eyes)
    bx1, by1 = max(e.window[2] for e in eyes), max(e.window[3] for e in eyes)
    box = (slice(by0, by1), slice(bx0, bx1))
    # The grain (used below where the skin ring is big enough to measure: nearly always) is
    # drawn on the whole box while the reference's detail is prepared.
    # ~10 ms for a big face's noise: numpy releases the GIL, so it is drawn beside the per-eye
    # work (the same seed, the same numbers)
    grain = in_background(draw_grain, (by1 - by0, bx1 - bx0), [cfg.seed, x0 + bx0, y0 + by0], gs, name="exgan-grain")
    layers = _reference_layers(eyes, base, exemplar, (bx0, by0, bx1, by1), sigma, cfg)

    width = float(np.mean([e.width for e in eyes]))
    outer = (cfg.eye_grow + 2 * cfg.eye_soft) * width
    calib = (layers.nearest > outer) & (layers.nearest <= outer + cfg.calib_width * width)
    own_box, target_box = own[box], target[box]
    sel = calib & layers.has_ref
    eye_sel = (layers.weight > 0.5) & layers.has_ref
    work = _work_window(layers.weight, gs)

    detail, gains, ref_fine_cov = _scaled_reference_detail(layers, own_box, sel, work, exemplar is not None, cfg)
    # Grain for what the reference lacks in the finest band (all of it without a reference):
    # band-limited like the finest band, with the skin's colour covariance. It is drawn (and
    # normalised) on the whole box, so that the same photo gives the same grain.
    target_fine = None
    if calib.sum() >= 50:
        import cv2

        target_fine = fine_band(target_box, gs)
        noise, noise_std = grain.result()
        root = psd_sqrt(covariance(target_fine, calib) - ref_fine_cov) / noise_std
        detail += cv2.transform(noise[work], root.astype(np.float32))  # per pixel: root @ rgb
    synth_gain = 0.0
    if exemplar is not None and cfg.synthesize and max(layers.missing, default=0.0) > 0 and eye_sel.sum() >= 50 and sel.sum() >= 50:
        synth_gain = _add_synthesised(detail, layers, eye_sel, sel, calib, target_fine, work, cfg)
    if info is not None:
        info.update({"gain_mid": round(gains[0], 3), "gain_fine": round(gains[1], 3), "registration": layers.registered,
                     "missing_fine": layers.missing, "synth_gain": round(synth_gain, 3)})

    out[box][work] += layers.weight[work][..., None] * (detail - own_box[work])
    return out


def _eye_regions(
    target_landmarks: np.ndarray, target_matrix: np.ndarray, exemplar: Exemplar | None,
    roi: tuple[int, int, int, int], sigma: float, cfg: DetailConfig,
) -> list[_Eye]:
    """Per eye: its region (soft), the distance to it, and how it maps onto the reference.

    The region is the target's eye outline together with the reference's (mapped into the
    ROI), grown by ``eye_grow`` eye widths; an eye whose window is (nearly) outside the ROI is
    left out.
    """
    import cv2

    x0, y0, x1, y1 = roi
    w, h = x1 - x0, y1 - y0
    lm = np.asarray(target_landmarks, dtype=np.float64) - (x0, y0)  # ROI coordinates
    mats = eye_matrices(target_landmarks, target_matrix, exemplar, cfg) if exemplar is not None else [None, None]
    eyes = []
    for eye, m in zip((LEFT_EYE, RIGHT_EYE), mats):
        pts = [lm[eye]]
        width = float(np.linalg.norm(lm[eye][3] - lm[eye][0]))
        roi_to_ref = None
        if m is not None:
            roi_to_ref = (as3(m) @ translate(x0, y0))[:2]
            pts.append(transform_points(np.asarray(exemplar.landmarks, dtype=np.float64)[eye], invert(roi_to_ref)))
        grow, soft = cfg.eye_grow * width, cfg.eye_soft * width
        reach = grow + 2 * soft + cfg.calib_width * width
        allp = np.vstack(pts)
        margin = reach + 3 * sigma + 2
        sx0, sy0 = max(0, int(allp[:, 0].min() - margin)), max(0, int(allp[:, 1].min() - margin))
        sx1, sy1 = min(w, int(allp[:, 0].max() + margin) + 1), min(h, int(allp[:, 1].max() + margin) + 1)
        if sx1 - sx0 < 4 or sy1 - sy0 < 4:
            continue
        outline = np.full((sy1 - sy0, sx1 - sx0), 255, dtype=np.uint8)
        for p in pts:
            cv2.fillPoly(outline, [np.round((p - (sx0, sy0)) * 16).astype(np.int32)], 0, lineType=cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(outline, cv2.DIST_L2, 5)
        region = 1.0 - smoothstep(dist, grow - 2 * soft, grow + 2 * soft)
        eyes.append(_Eye(width, roi_to_ref, (sx0, sy0, sx1, sy1), dist, region, reach))
    return eyes


def _reference_layers(
    eyes: list[_Eye], base: np.ndarray, exemplar: Exemplar | None, box: tuple[int, int, int, int],
    sigma: float, cfg: DetailConfig,
) -> _Layers:
    """The eye regions and the reference's detail, registered per eye, over ``box`` (ROI coordinates)."""
    bx0, by0, bx1, by1 = box
    bw, bh = bx1 - bx0, by1 - by0
    layers = _Layers(
        weight=np.zeros((bh, bw), dtype=np.float32),
        nearest=np.full((bh, bw), np.inf, dtype=np.float32),
        ref_detail=np.zeros((bh, bw, 3), dtype=np.float32),
        ref_top=np.zeros((bh, bw), dtype=np.float32),
        ref_synth=np.zeros((bh, bw), dtype=np.float32),
        has_ref=np.zeros((bh, bw), dtype=bool),
        agreement=np.ones((bh, bw), dtype=np.float32),
    )
    for e in eyes:
        sx0, sy0, sx1, sy1 = e.window
        view = (slice(sy0 - by0, sy1 - by0), slice(sx0 - bx0, sx1 - bx0))
        layers.weight[view] = np.maximum(layers.weight[view], e.region)
        mine = e.dist < layers.nearest[view]
        layers.nearest[view] = np.where(mine, e.dist, layers.nearest[view])
        if e.roi_to_ref is None:
            continue
        sub_to_ref = (as3(e.roi_to_ref) @ translate(sx0, sy0))[:2]
        sub_to_ref, agree, before, after = register_eye(base[sy0:sy1, sx0:sx1], exemplar, sub_to_ref, e.region, e.width, sigma, cfg)
        inside = e.region > 0.5
        layers.registered.append(
            {
                "correlation_before": round(before, 3),
                "correlation_after": round(after, 3),
                "agreement": round(float(agree[inside].mean()) if inside.any() else 1.0, 3),
            }
        )
        ref = warp_from(exemplar.pixels, sub_to_ref, (sx1 - sx0, sy1 - sy0))
        ok = mine & (e.dist <= e.reach + 1)
        # np.copyto(..., where=): a masked copy into the views (a boolean-indexed assignment
        # of a 3-channel view costs several times more).
        np.copyto(layers.ref_detail[view], ref - lowpass(ref, sigma), where=ok[..., None])
        if cfg.synthesize:
            top, synth, lack = synthesise_fine(luma(ref), 1.0 / max(matrix_scale(sub_to_ref), 1e-9), cfg)
            np.copyto(layers.ref_top[view], top, where=ok)
            np.copyto(layers.ref_synth[view], lack * synth, where=ok)
            layers.missing.append(round(lack, 3))
        np.copyto(layers.agreement[view], agree, where=ok)
        layers.has_ref[view] |= ok
    return layers


def _work_window(weight: np.ndarray, grain_sigma: float) -> tuple[slice, slice]:
    """Where in the box the detail is built.

    The output changes only where the eye regions have weight: the detail to paste is built
    in the box around that, grown by the finest band's kernel so that its filter sees the same
    pixels as on the whole box. (The calibration statistics are taken on the skin ring, which
    reaches further: they use the whole box.)
    """
    rows, cols = np.flatnonzero(weight.any(1)), np.flatnonzero(weight.any(0))
    if not rows.size:  # no weight anywhere: nothing is pasted; the whole box
        return (slice(None), slice(None))
    r = fine_radius(grain_sigma)
    return (slice(max(0, rows[0] - r), rows[-1] + 1 + r), slice(max(0, cols[0] - r), cols[-1] + 1 + r))


def _scaled_reference_detail(
    layers: _Layers, own_box: np.ndarray, sel: np.ndarray, work: tuple[slice, slice], has_exemplar: bool,
    cfg: DetailConfig,
) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """(detail in ``work``, (gain_mid, gain_fine), the scaled reference's fine-band covariance).

    The reference's detail, in two bands, each scaled so that on the skin around the eyes it
    has the target's level: the band between the generator's and the finest (gain_mid), and
    the finest (gain_fine, the one a smaller, upsampled reference lacks). Both are clipped to
    [min_gain, max_gain]; what the clipped fine band still lacks is filled with grain.
    Without an exemplar: zeros (a view of ``layers.ref_detail``), to which the grain is added.
    """
    gains = (1.0, 1.0)
    ref_fine_cov = np.zeros((3, 3))
    detail = layers.ref_detail[work]
    if has_exemplar:
        ref_fine = fine_band(layers.ref_detail, cfg.grain_sigma)
        if sel.sum() >= 50:
            gains = band_gains(own_box, layers.ref_detail, ref_fine, sel, cfg)
            ref_fine_cov = gains[1] ** 2 * covariance(ref_fine, sel)
        # Structure only where it agrees with the generator's eye (no ghost contours). The
        # finest band is gated less (``fine_floor``; by default not at all): it is texture more
        # than contour, and without it a gated eye would be smoother than the skin around it.
        a, fine_w = layers.agreement[work][..., None], ref_fine[work]
        detail = (gains[0] * a) * (detail - fine_w) + (gains[1] * (cfg.fine_floor + (1.0 - cfg.fine_floor) * a)) * fine_w
    return detail, gains, ref_fine_cov


def _add_synthesised(
    detail: np.ndarray, layers: _Layers, eye_sel: np.ndarray, sel: np.ndarray, calib: np.ndarray,
    target_fine: np.ndarray, work: tuple[slice, slice], cfg: DetailConfig,
) -> float:
    """Add to ``detail`` (in place) the finest band a smaller reference lacks, rebuilt from its
    own edges (``synthesise_fine``) and gated like its structure; returns its gain.

    It is added at most at its natural strength, and only up to the eye/skin contrast the
    reference's eye has in its own finest octave.
    """
    synth = layers.ref_synth[work] * layers.agreement[work]
    eye_w = eye_sel[work]
    synth_var = float(np.var(synth[eye_w]))
    synth_gain = 1.0
    if cfg.synth_calibrate:  # (sel is inside calib: target_fine is there)
        ratio = float(np.var(layers.ref_top[eye_sel]) / max(float(np.var(layers.ref_top[sel])), 1e-6))
        skin = float(np.var(luma(target_fine)[calib]))
        have = float(np.var(fine_band(luma(detail), cfg.grain_sigma)[eye_w]))
        need = ratio * skin - have
        synth_gain = float(np.clip(np.sqrt(max(need, 0.0) / max(synth_var, 1e-9)), 0.0, 1.0))
    detail += synth_gain * synth[..., None]
    return synth_gain
