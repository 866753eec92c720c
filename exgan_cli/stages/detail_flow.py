"""Where the reference's eye goes on the target: the geometry of the detail stage (detail.py).

Per eye, a matrix from target photo coordinates to reference photo coordinates (the two
alignments composed, refined on the eye corners: ``eye_matrices``), sampling through it without
aliasing (``warp_from``), and the registration of the reference's eye onto the generator's with
an agreement map that keeps ghost contours out (``register_eye``).
"""

from __future__ import annotations

import numpy as np

from exgan_cli.files.images import luminance
from exgan_cli.stages.detail_bands import luma, ncc, smoothstep
from exgan_cli.stages.detail_config import DetailConfig, Exemplar
from exgan_cli.stages.geometry import (
    LEFT_EYE,
    RIGHT_EYE,
    invert,
    matrix_scale,
    similarity_transform,
    source_region,
    transform_points,
)


def as3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def eye_matrices(
    target_landmarks: np.ndarray, target_matrix: np.ndarray, exemplar: Exemplar, cfg: DetailConfig = DetailConfig()
) -> list[np.ndarray]:
    """Per eye (image-left, image-right), the 2x3 matrix taking target photo coordinates to
    reference photo coordinates.

    The global one is the two alignments composed: target photo -> crop (what the generator
    saw) -> reference photo. Each eye is then refined by the similarity that puts the
    reference's eye corners on the target's (the generator draws the eye between the target's
    corners, and the corners hardly move when an eye closes). A refinement that would change
    the global scale or rotation by more than the config allows keeps the global scale and
    rotation and only moves the eye centre.
    """
    glob = (as3(invert(exemplar.matrix)) @ as3(target_matrix))[:2]
    g_scale = matrix_scale(glob)
    g_angle = np.degrees(np.arctan2(glob[1, 0], glob[0, 0]))
    out = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        corners = [eye.start, eye.start + 3]
        src = np.asarray(target_landmarks, dtype=np.float64)[corners]
        dst = np.asarray(exemplar.landmarks, dtype=np.float64)[corners]
        m = similarity_transform(src, dst)
        scale_ok = abs(matrix_scale(m) / g_scale - 1.0) <= cfg.max_scale_change
        angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        turn_ok = abs((angle - g_angle + 180.0) % 360.0 - 180.0) <= cfg.max_rotation
        if not (scale_ok and turn_ok):
            m = glob.copy()
            m[:, 2] += dst.mean(0) - transform_points(src.mean(0)[None], glob)[0]
        out.append(m)
    return out


def warp_from(src: np.ndarray, dst_to_src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sample ``src`` at ``dst_to_src @ p`` for every pixel p of a (w, h) = ``size`` image.

    Only the source region that is sampled is touched; when the source is finer than the
    destination it is first reduced to the destination's scale with area averaging (no
    aliasing). Float32 result, bicubic.
    """
    import cv2

    w, h = size
    corners = transform_points(np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64), dst_to_src)
    x0, y0, x1, y1 = source_region(corners, src.shape, pad=3)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the region is outside the reference photo
        return np.zeros((h, w) + src.shape[2:], dtype=np.float32)
    region = src[y0:y1, x0:x1]
    m = translate(-x0, -y0) @ as3(dst_to_src.astype(np.float64))
    factor = matrix_scale(m[:2])  # source pixels per destination pixel
    if factor > 1.05:  # reduce to the destination's scale first (area averaging: no aliasing)
        rh, rw = region.shape[:2]
        nh, nw = max(1, int(round(rh / factor))), max(1, int(round(rw / factor)))
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        # pixel centres: x_new + 0.5 = (x_old + 0.5) * nw / rw
        sx, sy = nw / rw, nh / rh
        m = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]]) @ m
    return cv2.warpAffine(
        region.astype(np.float32), m[:2], (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )


# ---------------------------------------------------------------------------------------
# Registration of the reference eye onto the generator's


def register_eye(
    generated_low: np.ndarray,
    exemplar: Exemplar,
    sub_to_ref: np.ndarray,
    region: np.ndarray,
    width: float,
    sigma: float,
    cfg: DetailConfig,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """How the reference's eye lines up with the generator's, in the band both render.

    Both are compared blurred by ``sigma`` (the generator's band) on a grid where the eye is
    ~48 px wide, on luminance normalised inside the eye region. Returns:

    - ``sub_to_ref``, refined: DIS optical flow (Kroeger et al. 2016) from the generator's eye
      to the reference's, reduced to the similarity that fits it best (a rigid move: a
      non-rigid warp would smear sharp things like catchlights into streaks). It is used only
      if the two eyes already correlate (``register_min_corr``: an untrained generator's eye
      does not look like the reference's), stays within ``register_max`` eye widths and the
      per-eye scale/rotation limits, and raises the correlation by ``register_min_gain``;
    - an agreement map (h, w) in [0, 1]: SSIM's contrast-structure term over a window of 0.1
      eye widths. It is ~1 where both show the same edge or both are flat, and ~0 where one
      has an edge the other lacks (the reference's iris where the generator put the white of
      the eye): there the reference's structure would draw a ghost contour. A generator eye
      with almost no contrast (``blank_contrast``) has nothing to conflict with: all 1;
    - the correlation before and after the refinement.
    """
    import cv2

    h, w = region.shape
    f = max(1.0, width / 48.0)
    gw, gh = max(8, int(round(w / f))), max(8, int(round(h / f)))
    fx, fy = w / gw, h / gh  # grid -> sub pixels
    grid_to_sub = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])
    g = cv2.resize(luma(generated_low), (gw, gh), interpolation=cv2.INTER_AREA)
    r = luminance(warp_from(exemplar.pixels, (as3(sub_to_ref) @ grid_to_sub)[:2], (gw, gh)))
    r = cv2.GaussianBlur(r, (0, 0), max(sigma / f, 0.5))
    reg = cv2.resize(region, (gw, gh), interpolation=cv2.INTER_AREA)
    sel = reg > 0.5
    if sel.sum() < 50:
        return sub_to_ref, np.ones((h, w), dtype=np.float32), 0.0, 0.0
    contrast = float(g[sel].std()) / max(float(r[sel].std()), 1e-3)
    g = (g - g[sel].mean()) / max(float(g[sel].std()), 1e-3)
    r = (r - r[sel].mean()) / max(float(r[sel].std()), 1e-3)
    before = after = ncc(g, r, sel)
    if cfg.register and before >= cfg.register_min_corr:
        to8 = lambda a: np.clip(128.0 + 40.0 * a, 0, 255).astype(np.uint8)  # noqa: E731
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(to8(g), to8(r), None)
        ys, xs = np.nonzero(sel)
        step = max(1, len(xs) // 500)
        src = np.stack([xs, ys], 1)[::step].astype(np.float64)
        sim = similarity_transform(src, src + flow[ys, xs][::step])  # grid p -> where r is sampled
        centre = src.mean(0)
        shift = float(np.linalg.norm(transform_points(centre[None], sim)[0] - centre)) * f
        angle = abs(np.degrees(np.arctan2(sim[1, 0], sim[0, 0])))
        if (
            shift <= cfg.register_max * width
            and abs(matrix_scale(sim) - 1.0) <= cfg.max_scale_change
            and angle <= cfg.max_rotation
        ):
            moved = cv2.warpAffine(r, sim, (gw, gh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
            after = ncc(g, moved, sel)
            if after - before >= cfg.register_min_gain:
                r = moved
                sub_sim = grid_to_sub @ as3(sim) @ np.linalg.inv(grid_to_sub)
                sub_to_ref = (as3(sub_to_ref) @ sub_sim)[:2]
            else:
                after = before
    # SSIM's contrast-structure term, local.
    win = max(0.1 * width / f, 1.0)
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), win)  # noqa: E731
    mg, mr = blur(g), blur(r)
    vg, vr, cov = blur(g * g) - mg * mg, blur(r * r) - mr * mr, blur(g * r) - mg * mr
    c = 0.05
    agree = np.clip((2 * cov + c) / (np.maximum(vg, 0) + np.maximum(vr, 0) + c), 0.0, 1.0)
    lo = cfg.blank_contrast
    informative = float(smoothstep(np.array(contrast), 0.5 * lo, 1.5 * lo))
    agree = 1.0 - informative * (1.0 - agree)
    return sub_to_ref, cv2.resize(agree, (w, h), interpolation=cv2.INTER_LINEAR), before, after
