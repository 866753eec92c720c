"""The band maths of the detail stage (detail.py): filters, robust statistics, grain, edge synthesis.

Everything here works on float32 arrays of one region (a face's ROI or the box around its eyes);
nothing knows about faces or photos. The detail stage splits an image into the generator's low
band (``lowpass``), the band above it, and the finest band (``fine_band``, where grain lives).
"""

from __future__ import annotations

import numpy as np

from exgan_cli.files.images import LUMA
from exgan_cli.stages.detail_config import DetailConfig


def luma(rgb: np.ndarray) -> np.ndarray:
    """``images.luminance`` of a float32 (h, w, 3) array (or a view of one) in a single OpenCV
    pass: the same weights, float rounding aside, several times faster on big regions."""
    import cv2

    return cv2.transform(rgb, LUMA[None])


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ---------------------------------------------------------------------------------------
# Statistics


def median(x: np.ndarray) -> float:
    """``np.median`` of a 1-D array, from one single-k partition of a copy: numpy's vectorised
    quickselect, an order of magnitude faster than np.median's multi-k partition (which also
    looks for NaNs). The same value: the middle element, or the mean of the two middle ones."""
    a = np.array(x, copy=True)
    k = a.size // 2
    a.partition(k)
    if a.size % 2:
        return float(a[k])
    return float((a[:k].max() + a[k]) / 2)


def robust_std(x: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (robust to hair, a mole)."""
    if x.size == 0:
        return 0.0
    return float(1.4826 * median(np.abs(x - median(x))))


def covariance(x: np.ndarray, sel: np.ndarray) -> np.ndarray:
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


def psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance, negative eigenvalues clipped to zero."""
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def ncc(a: np.ndarray, b: np.ndarray, sel: np.ndarray) -> float:
    x, y = a[sel].astype(np.float64), b[sel].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else 0.0


# ---------------------------------------------------------------------------------------
# Bands


def lowpass(a: np.ndarray, sigma: float) -> np.ndarray:
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


def fine_band(a: np.ndarray, sigma: float) -> np.ndarray:
    """The finest band of ``a``: ``a`` minus its Gaussian blur of ``sigma`` pixels (reflected border)."""
    import cv2

    return a - cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def fine_radius(sigma: float) -> int:
    """How far (pixels) ``fine_band`` looks: OpenCV's kernel for float images spans +-4 sigma."""
    return int(np.ceil(4.0 * sigma)) + 1


def band_gains(
    own: np.ndarray, ref_detail: np.ndarray, ref_fine: np.ndarray, sel: np.ndarray, cfg: DetailConfig
) -> tuple[float, float]:
    """(gain_mid, gain_fine): per band, the target's level on the skin ``sel`` over the
    reference's (robust standard deviations of luminance), clipped to [min_gain, max_gain].

    ``own`` is the target's detail (above the generator's band), ``ref_detail`` the reference's
    and ``ref_fine`` its finest band (``grain_sigma``). The bands are linear in the colours, so
    they are split on luminance directly: one channel to filter instead of three.
    """
    own_l = luma(own)
    own_fine = fine_band(own_l, cfg.grain_sigma)[sel]
    own_mid = own_l[sel] - own_fine
    ref_fine_l = luma(ref_fine)[sel]
    ref_mid = luma(ref_detail)[sel] - ref_fine_l
    g_mid = robust_std(own_mid) / max(robust_std(ref_mid), 1e-6)
    g_fine = robust_std(own_fine) / max(robust_std(ref_fine_l), 1e-6)
    return float(np.clip(g_mid, cfg.min_gain, cfg.max_gain)), float(np.clip(g_fine, cfg.min_gain, cfg.max_gain))


# ---------------------------------------------------------------------------------------
# What a smaller reference lacks: synthesised edges, grain


def shock(lum: np.ndarray, sigma: float, steps: int) -> np.ndarray:
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


def synthesise_fine(lum_ref: np.ndarray, upscale: float, cfg: DetailConfig) -> tuple[np.ndarray, np.ndarray, float]:
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
    sharp = shock(lum_ref, cfg.shock_sigma * u, cfg.shock_steps)
    return top, fine_band(sharp - lum_ref, cfg.grain_sigma), lack  # = fine(sharp) - fine(lum_ref): the band is linear


def draw_grain(shape: tuple[int, int], seed: list[int], sigma: float) -> tuple[np.ndarray, float]:
    """White Gaussian noise (h, w, 3) band-limited like the finest band (``fine_band`` of ``sigma``),
    and its standard deviation (to normalise it by). Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    noise = fine_band(rng.standard_normal(shape + (3,), dtype=np.float32), sigma)
    return noise, max(float(noise.std()), 1e-6)
