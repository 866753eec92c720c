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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from exgan_cli.stages.geometry import (
    LEFT_EYE,
    RIGHT_EYE,
    MaskConfig,
    boxes_to_mask,
    eye_boxes,
    invert,
    matrix_scale,
    similarity_transform,
    source_region,
    transform_points,
)
from exgan_cli.files.images import LUMA, luminance


@dataclass(frozen=True)
class DetailConfig:
    min_upscale: float = 1.5  # photo pixels per crop pixel from which detail is added (face ~130 px wide);
    # a smaller face's crop is about as fine as the photo, and the plain paste lacks nothing
    split: float = 0.75  # Gaussian sigma, in crop pixels, below which the generator is kept
    grain_sigma: float = 1.0  # Gaussian sigma, in photo pixels: the finest band, where grain is matched
    eye_grow: float = 0.3  # the eye region taking the reference's detail: eye outline grown by this, in eye widths
    eye_soft: float = 0.08  # softness of that region's edge (a smoothstep over +-2 of these), in eye widths
    calib_width: float = 0.35  # skin band around the eye regions used to calibrate gain and grain, in eye widths
    min_gain: float = 0.33  # the reference's detail is scaled by skin(target) / skin(reference), per band,
    max_gain: float = 3.0  # clipped to this range (a blurred reference is not amplified into noise: grain)
    max_scale_change: float = 0.2  # per-eye corner fit and registration may change the scale by at most this
    max_rotation: float = 10.0  # ... and the rotation by at most this many degrees (corner fit: else translation only)
    register: bool = True  # move the reference's eye onto the generator's (optical flow -> similarity, low band)
    register_max: float = 0.25  # largest move of that registration, in eye widths
    register_min_corr: float = 0.4  # ... only if the two eyes already correlate this much (they look alike)
    register_min_gain: float = 0.05  # ... and only if it raises that correlation this much
    fine_floor: float = 0.75  # the finest band keeps at least this weight where the structures disagree
    blank_contrast: float = 0.3  # generator eye contrast / reference's below which G's eye counts as blank (no gating)
    synthesize: bool = True  # rebuild the finest band a smaller reference lacks by steepening its edges (shock filter)
    shock_sigma: float = 0.5  # Gaussian sigma of the shock filter's edge detector, in reference pixels
    shock_steps: int = 1  # shock filter steps (each moves an edge by up to one target pixel)
    synth_calibrate: bool = True  # never make the eye's finest band stronger, relative to the skin, than the reference's own
    seed: int = 0  # grain is deterministic: the same photo gives the same result

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)
class Exemplar:
    """The reference face the generator copied the eyes from, at the reference's full resolution."""

    pixels: np.ndarray  # the reference photo, RGB uint8 (H, W, 3)
    landmarks: np.ndarray  # its face's 68 landmarks, reference photo coordinates
    matrix: np.ndarray  # reference photo -> aligned crop (the same alignment as the target's)


# ---------------------------------------------------------------------------------------
# Measuring


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
# Geometry of the transfer


def _as3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _translate(x: float, y: float) -> np.ndarray:
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
    glob = (_as3(invert(exemplar.matrix)) @ _as3(target_matrix))[:2]
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


def _warp_from(src: np.ndarray, dst_to_src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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
    m = _translate(-x0, -y0) @ _as3(dst_to_src.astype(np.float64))
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


def _luma(rgb: np.ndarray) -> np.ndarray:
    """``images.luminance`` of a float32 (h, w, 3) array (or a view of one) in a single OpenCV
    pass: the same weights, float rounding aside, several times faster on big regions."""
    import cv2

    return cv2.transform(rgb, LUMA[None])


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ---------------------------------------------------------------------------------------
# Statistics


def _median(x: np.ndarray) -> float:
    """``np.median`` of a 1-D array, from one single-k partition of a copy: numpy's vectorised
    quickselect, an order of magnitude faster than np.median's multi-k partition (which also
    looks for NaNs). The same value: the middle element, or the mean of the two middle ones."""
    a = np.array(x, copy=True)
    k = a.size // 2
    a.partition(k)
    if a.size % 2:
        return float(a[k])
    return float((a[:k].max() + a[k]) / 2)


def _robust_std(x: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (robust to hair, a mole)."""
    if x.size == 0:
        return 0.0
    return float(1.4826 * _median(np.abs(x - _median(x))))


def _covariance(x: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """3x3 covariance of the colours ``x`` (h, w, 3) at the pixels ``sel``: ``np.cov(x[sel].T)``,
    computed channel by channel with plain numpy sums (selecting 3-channel pixels, and BLAS
    products while OpenCV's threads hold the cores, are several times slower)."""
    chans = [x[..., c][sel].astype(np.float64) for c in range(3)]
    chans = [c - c.mean() for c in chans]
    n = max(len(chans[0]) - 1, 1)
    cov = np.empty((3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[i, j] = cov[j, i] = float(np.sum(chans[i] * chans[j])) / n
    return cov


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance, negative eigenvalues clipped to zero."""
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def _ncc(a: np.ndarray, b: np.ndarray, sel: np.ndarray) -> float:
    x, y = a[sel].astype(np.float64), b[sel].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else 0.0


# ---------------------------------------------------------------------------------------
# Registration of the reference eye onto the generator's


def _match(
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
    g = cv2.resize(_luma(generated_low), (gw, gh), interpolation=cv2.INTER_AREA)
    r = luminance(_warp_from(exemplar.pixels, (_as3(sub_to_ref) @ grid_to_sub)[:2], (gw, gh)))
    r = cv2.GaussianBlur(r, (0, 0), max(sigma / f, 0.5))
    reg = cv2.resize(region, (gw, gh), interpolation=cv2.INTER_AREA)
    sel = reg > 0.5
    if sel.sum() < 50:
        return sub_to_ref, np.ones((h, w), dtype=np.float32), 0.0, 0.0
    contrast = float(g[sel].std()) / max(float(r[sel].std()), 1e-3)
    g = (g - g[sel].mean()) / max(float(g[sel].std()), 1e-3)
    r = (r - r[sel].mean()) / max(float(r[sel].std()), 1e-3)
    before = after = _ncc(g, r, sel)
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
            after = _ncc(g, moved, sel)
            if after - before >= cfg.register_min_gain:
                r = moved
                sub_sim = grid_to_sub @ _as3(sim) @ np.linalg.inv(grid_to_sub)
                sub_to_ref = (_as3(sub_to_ref) @ sub_sim)[:2]
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
    informative = float(_smoothstep(np.array(contrast), 0.5 * lo, 1.5 * lo))
    agree = 1.0 - informative * (1.0 - agree)
    return sub_to_ref, cv2.resize(agree, (w, h), interpolation=cv2.INTER_LINEAR), before, after


# ---------------------------------------------------------------------------------------
# Rendering


def _lowpass(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of ``a`` with ``sigma`` pixels (reflected border).

    Wide kernels (a 1,500 px face: sigma ~15 px) run on an area-reduced copy and come back
    with linear interpolation, the three blurs' variances adding up to sigma^2: the same
    band split at a fraction of the cost.
    """
    import cv2

    if sigma <= 4.0:
        return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = a.shape[:2]
    k = sigma / 2.0
    sw, sh = max(2, int(np.ceil(w / k))), max(2, int(np.ceil(h / k)))
    kx = w / sw
    small = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)  # box of kx: variance kx^2/12
    rest = np.sqrt(max(sigma * sigma - kx * kx / 12.0 - kx * kx / 6.0, 0.25)) / kx  # linear up: kx^2/6
    small = cv2.GaussianBlur(small, (0, 0), rest, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _fine(a: np.ndarray, sigma: float) -> np.ndarray:
    """The finest band of ``a``: ``a`` minus its Gaussian blur of ``sigma`` pixels (reflected border)."""
    import cv2

    return a - cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _fine_radius(sigma: float) -> int:
    """How far (pixels) ``_fine`` looks: OpenCV's kernel for float images spans +-4 sigma."""
    return int(np.ceil(4.0 * sigma)) + 1


def _shock(lum: np.ndarray, sigma: float, steps: int) -> np.ndarray:
    """Steepen the edges of ``lum`` (float32) with a morphological shock filter.

    Each step replaces a pixel by the minimum of its 3x3 cross where the Laplacian of the
    image blurred by ``sigma`` is positive (the dark side of an edge) and by the maximum
    where it is negative (the bright side) (Kramer & Bruckner 1975; Osher & Rudin 1990).
    Edges get steeper without overshoot: no halo, no ringing, and levels stay within the
    local range. Flat areas and the middle of smooth ramps hardly move.
    """
    import cv2

    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = lum
    for _ in range(steps):
        lap = cv2.Laplacian(cv2.GaussianBlur(out, (0, 0), max(sigma, 0.5), borderType=cv2.BORDER_REFLECT), cv2.CV_32F)
        out = np.where(lap > 0, cv2.erode(out, cross), cv2.dilate(out, cross)).astype(np.float32)
    return out


def _synthesise_fine(lum_ref: np.ndarray, upscale: float, cfg: DetailConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """For a reference sampled at the target's resolution (luminance ``lum_ref``, ``upscale``
    target pixels per reference pixel): its own finest octave, the finest band (Gaussian of
    ``grain_sigma``) that steeper edges would add, and the fraction of that band it lacks.

    A reference ``upscale`` times smaller holds detail up to 1 / (2 upscale) cycles per target
    pixel; the finest octave is 0.25 to 0.5 cycles, so it lacks ``clip(2 - 2 / upscale, 0, 1)``
    of it: nothing at 1x, half at 1.33x, all of it from 2x. What is synthesised is the fine
    band of the shock-filtered reference minus its own: new high frequencies in phase with
    the reference's real edges (lashes, iris rim, lid lines), not noise and not an unsharp
    mask's overshoot.
    """
    import cv2

    u = max(1.0, upscale)
    lack = float(np.clip(2.0 - 2.0 / upscale, 0.0, 1.0))
    top = lum_ref - cv2.GaussianBlur(lum_ref, (0, 0), cfg.grain_sigma * u, borderType=cv2.BORDER_REFLECT)
    if lack <= 0.0:
        return top, np.zeros_like(lum_ref), 0.0
    sharp = _shock(lum_ref, cfg.shock_sigma * u, cfg.shock_steps)
    return top, _fine(sharp - lum_ref, cfg.grain_sigma), lack  # = fine(sharp) - fine(lum_ref): the band is linear


def _band_gains(
    own: np.ndarray, ref_detail: np.ndarray, ref_fine: np.ndarray, sel: np.ndarray, cfg: DetailConfig
) -> tuple[float, float]:
    """(gain_mid, gain_fine): per band, the target's level on the skin ``sel`` over the
    reference's (robust standard deviations of luminance), clipped to [min_gain, max_gain].

    ``own`` is the target's detail (above the generator's band), ``ref_detail`` the reference's
    and ``ref_fine`` its finest band (``grain_sigma``). The bands are linear in the colours, so
    they are split on luminance directly: one channel to filter instead of three.
    """
    own_l = _luma(own)
    own_fine = _fine(own_l, cfg.grain_sigma)[sel]
    own_mid = own_l[sel] - own_fine
    ref_fine_l = _luma(ref_fine)[sel]
    ref_mid = _luma(ref_detail)[sel] - ref_fine_l
    g_mid = _robust_std(own_mid) / max(_robust_std(ref_mid), 1e-6)
    g_fine = _robust_std(own_fine) / max(_robust_std(ref_fine_l), 1e-6)
    return float(np.clip(g_mid, cfg.min_gain, cfg.max_gain)), float(np.clip(g_fine, cfg.min_gain, cfg.max_gain))


def _grain(shape: tuple[int, int], seed: list[int], sigma: float) -> tuple[np.ndarray, float]:
    """White Gaussian noise (h, w, 3) band-limited like the finest band (``_fine`` of ``sigma``),
    and its standard deviation (to normalise it by). Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    noise = _fine(rng.standard_normal(shape + (3,), dtype=np.float32), sigma)
    return noise, max(float(noise.std()), 1e-6)


def _in_background(fn, *args):
    """``fn(*args)`` started on a thread now; the returned future's ``result()`` waits for it.

    For the grain: drawing a big face's million normal numbers takes ~10 ms, and numpy's
    generator (like OpenCV) releases the GIL, so it runs beside the per-eye work. The values
    do not depend on it: the same seed, the same numbers. A one-thread executor per call that is
    shut down at once (its thread ends with the job): nothing is kept, so forked or spawned
    workers are safe.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exgan-grain")
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


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
    import cv2

    x0, y0, x1, y1 = roi
    w, h = x1 - x0, y1 - y0
    crop_px = 1.0 / max(matrix_scale(target_matrix), 1e-9)  # photo pixels per crop pixel
    sigma = max(cfg.split * crop_px, 0.5)
    gs = cfg.grain_sigma

    target = photo[y0:y1, x0:x1].astype(np.float32)
    base = _lowpass(np.asarray(generated, dtype=np.float32), sigma)
    own = target - _lowpass(target, sigma)  # the target's own detail
    out = base + own  # around the eyes: the generator's low band with the photo's own detail

    # Per eye: its region (soft), the distance to it, and the reference's detail around it.
    lm = np.asarray(target_landmarks, dtype=np.float64) - (x0, y0)  # ROI coordinates
    mats = eye_matrices(target_landmarks, target_matrix, exemplar, cfg) if exemplar is not None else [None, None]
    eyes = []
    for eye, m in zip((LEFT_EYE, RIGHT_EYE), mats):
        pts = [lm[eye]]
        width = float(np.linalg.norm(lm[eye][3] - lm[eye][0]))
        roi_to_ref = None
        if m is not None:
            roi_to_ref = (_as3(m) @ _translate(x0, y0))[:2]
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
        eyes.append((width, roi_to_ref, (sx0, sy0, sx1, sy1), dist, 1.0 - _smoothstep(dist, grow - 2 * soft, grow + 2 * soft), reach))
    if not eyes:
        return out

    # Everything below lives in the box around both eyes.
    bx0, by0 = min(e[2][0] for e in eyes), min(e[2][1] for e in eyes)
    bx1, by1 = max(e[2][2] for e in eyes), max(e[2][3] for e in eyes)
    bw, bh = bx1 - bx0, by1 - by0
    box = (slice(by0, by1), slice(bx0, bx1))
    # The grain (used below where the skin ring is big enough to measure: nearly always) is
    # drawn on the whole box while the reference's detail is prepared.
    grain = _in_background(_grain, (bh, bw), [cfg.seed, x0 + bx0, y0 + by0], gs)
    weight = np.zeros((bh, bw), dtype=np.float32)
    nearest = np.full((bh, bw), np.inf, dtype=np.float32)  # distance to the nearest eye outline
    ref_detail = np.zeros((bh, bw, 3), dtype=np.float32)
    ref_top = np.zeros((bh, bw), dtype=np.float32)  # the reference's own finest octave (luminance), for calibration
    ref_synth = np.zeros((bh, bw), dtype=np.float32)  # the finest band it lacks, synthesised (luminance)
    missing = []
    has_ref = np.zeros((bh, bw), dtype=bool)
    agreement = np.ones((bh, bw), dtype=np.float32)
    registered = []
    for width, roi_to_ref, (sx0, sy0, sx1, sy1), dist, region, reach in eyes:
        view = (slice(sy0 - by0, sy1 - by0), slice(sx0 - bx0, sx1 - bx0))
        weight[view] = np.maximum(weight[view], region)
        mine = dist < nearest[view]
        nearest[view] = np.where(mine, dist, nearest[view])
        if roi_to_ref is None:
            continue
        sub_to_ref = (_as3(roi_to_ref) @ _translate(sx0, sy0))[:2]
        sub_to_ref, agree, before, after = _match(base[sy0:sy1, sx0:sx1], exemplar, sub_to_ref, region, width, sigma, cfg)
        inside = region > 0.5
        registered.append(
            {
                "correlation_before": round(before, 3),
                "correlation_after": round(after, 3),
                "agreement": round(float(agree[inside].mean()) if inside.any() else 1.0, 3),
            }
        )
        ref = _warp_from(exemplar.pixels, sub_to_ref, (sx1 - sx0, sy1 - sy0))
        ok = mine & (dist <= reach + 1)
        # np.copyto(..., where=): a masked copy into the views (a boolean-indexed assignment
        # of a 3-channel view costs several times more).
        np.copyto(ref_detail[view], ref - _lowpass(ref, sigma), where=ok[..., None])
        if cfg.synthesize:
            top, synth, lack = _synthesise_fine(_luma(ref), 1.0 / max(matrix_scale(sub_to_ref), 1e-9), cfg)
            np.copyto(ref_top[view], top, where=ok)
            np.copyto(ref_synth[view], lack * synth, where=ok)
            missing.append(round(lack, 3))
        np.copyto(agreement[view], agree, where=ok)
        has_ref[view] |= ok

    width = float(np.mean([e[0] for e in eyes]))
    outer = (cfg.eye_grow + 2 * cfg.eye_soft) * width
    calib = (nearest > outer) & (nearest <= outer + cfg.calib_width * width)
    own_box, target_box = own[box], target[box]
    sel = calib & has_ref
    eye_sel = (weight > 0.5) & has_ref
    # The output changes only where the eye regions have weight: the detail to paste is built
    # in the box around that (``work``), grown by the finest band's kernel so that its filter
    # sees the same pixels as on the whole box. The calibration statistics are taken on the
    # skin ring, which reaches further: they use the whole box.
    rows, cols = np.flatnonzero(weight.any(1)), np.flatnonzero(weight.any(0))
    work = (slice(None), slice(None))  # (no weight anywhere: nothing is pasted; the whole box, as before)
    if rows.size:
        r = _fine_radius(gs)
        work = (slice(max(0, rows[0] - r), rows[-1] + 1 + r), slice(max(0, cols[0] - r), cols[-1] + 1 + r))

    # The reference's detail, in two bands, each scaled so that on the skin around the eyes it
    # has the target's level: the band between the generator's and the finest (gain_mid), and
    # the finest (gain_fine, the one a smaller, upsampled reference lacks). Both are clipped to
    # [min_gain, max_gain]; what the clipped fine band still lacks is filled with grain below.
    gains = (1.0, 1.0)
    ref_fine_cov = np.zeros((3, 3))
    detail = ref_detail[work]  # without an exemplar: zeros, to which the grain is added
    if exemplar is not None:
        ref_fine = _fine(ref_detail, gs)
        if sel.sum() >= 50:
            gains = _band_gains(own_box, ref_detail, ref_fine, sel, cfg)
            ref_fine_cov = gains[1] ** 2 * _covariance(ref_fine, sel)
        # Structure only where it agrees with the generator's eye (no ghost contours). The
        # finest band is gated less (``fine_floor``): it is texture more than contour, and
        # without it a gated eye would be smoother than the skin around it.
        a, fine_w = agreement[work][..., None], ref_fine[work]
        detail = (gains[0] * a) * (detail - fine_w) + (gains[1] * (cfg.fine_floor + (1.0 - cfg.fine_floor) * a)) * fine_w

    # Grain for what the reference lacks in the finest band (all of it without a reference):
    # band-limited like the finest band, with the skin's colour covariance. It is drawn (and
    # normalised) on the whole box, so that the same photo gives the same grain.
    target_fine = None
    if calib.sum() >= 50:
        target_fine = _fine(target_box, gs)
        noise, noise_std = grain.result()
        root = _psd_sqrt(_covariance(target_fine, calib) - ref_fine_cov) / noise_std
        detail += cv2.transform(noise[work], root.astype(np.float32))  # per pixel: root @ rgb

    # The finest band a smaller reference lacks, rebuilt from its own edges (_synthesise_fine),
    # gated like its structure. It is added at most at its natural strength, and only up to
    # the eye/skin contrast the reference's eye has in its own finest octave.
    synth_gain = 0.0
    if exemplar is not None and cfg.synthesize and max(missing, default=0.0) > 0 and eye_sel.sum() >= 50 and sel.sum() >= 50:
        synth = ref_synth[work] * agreement[work]
        eye_w = eye_sel[work]
        synth_var = float(np.var(synth[eye_w]))
        synth_gain = 1.0
        if cfg.synth_calibrate:  # (sel is inside calib: target_fine is there)
            ratio = float(np.var(ref_top[eye_sel]) / max(float(np.var(ref_top[sel])), 1e-6))
            skin = float(np.var(_luma(target_fine)[calib]))
            have = float(np.var(_fine(_luma(detail), gs)[eye_w]))
            need = ratio * skin - have
            synth_gain = float(np.clip(np.sqrt(max(need, 0.0) / max(synth_var, 1e-9)), 0.0, 1.0))
        detail += synth_gain * synth[..., None]
    if info is not None:
        info.update({"gain_mid": round(gains[0], 3), "gain_fine": round(gains[1], 3), "registration": registered,
                     "missing_fine": missing, "synth_gain": round(synth_gain, 3)})

    out[box][work] += weight[work][..., None] * (detail - own_box[work])
    return out


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
