"""Image-quality and set metrics for `exgan evaluate`, and the confidence intervals around them.

All image metrics take RGB uint8 (or float 0..255) arrays (H, W, 3) and an optional mask
(H, W), 1 = the region to score (the eye boxes); without a mask the whole image counts. Only
numpy and OpenCV are used (no scipy, no scikit-image).

- ``l1``: mean absolute error in 0..1 intensity units (pixel values / 255).
- ``psnr``: 10 log10(255^2 / MSE) over the region's pixels and channels, capped at PSNR_MAX.
- ``ssim``: Wang et al. 2004 (Gaussian window sigma 1.5, 11x11; K1 0.01, K2 0.03, L 255). The
  local SSIM map is computed over the WHOLE image (reflected border), so windows near a hole's
  edge see its surroundings as they would in the photo, and then averaged over the region's
  pixels and the three channels.
- ``ms_ssim``: Wang, Simoncelli & Bovik 2003 on the same masked averages: contrast-structure
  terms at every scale, the luminance term (the full SSIM map) at the coarsest, each scale
  halving the image and the mask by 2x2 averaging (the downsampled mask weights the average),
  the standard weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). An eye box is ~15 px high in a
  128 px face, so the five scales of the original (down to 1/16) would leave less than one
  pixel of hole: ``ms_ssim_scales`` keeps only the scales at which the region is still at
  least MS_SSIM_MIN_SIDE px across (2 at 128 px, 3 at 256 px), and the weights of the kept
  scales are renormalised to sum to 1. Negative terms are clipped to 0 before the powers.
- ``frechet_distance``: ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) between two Gaussians,
  computed with symmetric eigendecompositions only (S1^1/2 S2 S1^1/2 is symmetric PSD and has the
  eigenvalues of S1 S2), so it is exact for singular covariances too.
- ``mean_ci``: mean and Student-t 95% interval; ``bootstrap_ci``: percentile bootstrap for
  statistics of a whole set (the Fréchet distance), seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

PSNR_MAX = 100.0  # dB: identical regions would give infinity, which no mean or interval survives
SSIM_SIGMA = 1.5  # Gaussian window of SSIM (Wang et al. 2004)
SSIM_WINDOW = 11  # its size in pixels
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = 6.0  # px: the region's shorter side at the coarsest scale kept


def _float(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    return a[..., None] if a.ndim == 2 else a


def _weights(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape[:2], dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask {m.shape} does not match image {shape[:2]}")
    return m


def _masked_mean(values: np.ndarray, w: np.ndarray) -> float:
    """Mean over pixels weighted by w (H, W) and over channels of values (H, W, C)."""
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    return float((values * w[..., None]).sum() / (total * values.shape[2]))


def l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean |a - b| / 255 over the region (all channels)."""
    x, y = _float(a), _float(b)
    return _masked_mean(np.abs(x - y), _weights(mask, x.shape)) / DATA_RANGE


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    x, y = _float(a), _float(b)
    return _masked_mean((x - y) ** 2, _weights(mask, x.shape))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB over the region, at most PSNR_MAX."""
    e = mse(a, b, mask)
    if math.isnan(e):
        return e
    if e <= DATA_RANGE**2 * 10 ** (-PSNR_MAX / 10):
        return PSNR_MAX
    return float(10.0 * math.log10(DATA_RANGE**2 / e))


def detail_ratio(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Fine detail of ``a`` relative to ``b`` inside the mask: the variance of the Laplacian of
    luminance over the mask (shrunk by 2 px, so that a hard paste's border is not counted),
    a over b. 1: as much fine detail as the real eyes; a soft, blurry in-painting scores
    well below 1 (a blind smooth fill such as Telea's near 0)."""
    import cv2

    from exgan_cli.files.images import luminance

    inner = cv2.erode((np.asarray(mask) > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if inner.sum() < 4:
        return float("nan")

    def lap_var(img: np.ndarray) -> float:
        x = _float(img)
        lum = x[..., 0] if x.shape[2] == 1 else luminance(x[..., :3]).astype(np.float64)
        return float(cv2.Laplacian(lum, cv2.CV_64F)[inner].var())

    return lap_var(a) / max(lap_var(b), 1e-9)


def seam_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """How visible the hole's border is in ``a`` compared with the truth ``b``: the mean length
    of the difference between their luminance gradients (3x3 Sobel / 8: levels per pixel)
    over a band two pixels wide straddling the border of the mask (its last pixel inside and
    first outside), in 0..1 units. 0: across the border the result changes exactly as the real
    photo does; a colour or brightness step between the in-painted hole and its surroundings
    adds about its size (a step of 10 levels on a flat surround: ~0.02). Lower is better."""
    import cv2

    from exgan_cli.files.images import luminance

    hole = (np.asarray(mask) > 0.5).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    band = (cv2.dilate(hole, k) > 0) & ~(cv2.erode(hole, k, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0)
    if band.sum() < 4:
        return float("nan")

    def grads(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _float(img)
        lum = x[..., 0] if x.shape[2] == 1 else luminance(x[..., :3]).astype(np.float64)
        return cv2.Sobel(lum, cv2.CV_64F, 1, 0, ksize=3) / 8.0, cv2.Sobel(lum, cv2.CV_64F, 0, 1, ksize=3) / 8.0

    (ax, ay), (bx, by) = grads(a), grads(b)
    return float(np.hypot(ax - bx, ay - by)[band].mean() / DATA_RANGE)


def _blur(a: np.ndarray) -> np.ndarray:
    import cv2

    out = cv2.GaussianBlur(a, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    return out[..., None] if out.ndim == 2 else out


def ssim_maps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel, per-channel (luminance, contrast-structure) maps (H, W, C) of two images.

    SSIM = luminance * contrast-structure.
    """
    x, y = _float(a), _float(b)  # float64: in float32, E[x^2] - E[x]^2 loses the variance of flat regions
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mx, my = _blur(x), _blur(y)
    xx, yy, xy = _blur(x * x), _blur(y * y), _blur(x * y)
    vx = np.maximum(xx - mx * mx, 0.0)
    vy = np.maximum(yy - my * my, 0.0)
    cov = xy - mx * my
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (2 * cov + c2) / (vx + vy + c2)
    return lum, cs


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM over the region (map over the whole image, averaged over region and channels)."""
    lum, cs = ssim_maps(a, b)
    return _masked_mean(lum * cs, _weights(mask, lum.shape))


def _halve(a: np.ndarray) -> np.ndarray:
    """2x2 average pooling (an odd last row/column is dropped)."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w]
    return a.reshape(h // 2, 2, w // 2, 2, *a.shape[2:]).mean(axis=(1, 3))


def ms_ssim_scales(region_side: float, max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """How many MS-SSIM scales a region whose shorter side is ``region_side`` px supports:
    the most (up to 5) at which it is still MS_SSIM_MIN_SIDE px across; at least 1."""
    n = 1
    while n < max_scales and region_side / 2**n >= MS_SSIM_MIN_SIDE:
        n += 1
    return n


def ms_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, scales: int = len(MS_SSIM_WEIGHTS)) -> float:
    """Multi-scale SSIM over the region with ``scales`` scales (weights renormalised)."""
    if not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"scales must be 1..{len(MS_SSIM_WEIGHTS)}, not {scales}")
    x, y = _float(a), _float(b)
    w = _weights(mask, x.shape)
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    value = 1.0
    for j in range(scales):
        if min(x.shape[:2]) < 2 and j < scales - 1:
            raise ValueError(f"image too small for {scales} MS-SSIM scales")
        lum, cs = ssim_maps(x, y)
        term = _masked_mean(lum * cs if j == scales - 1 else cs, w)
        if math.isnan(term):
            return term
        value *= max(term, 0.0) ** weights[j]
        if j < scales - 1:
            x, y, w = _halve(x), _halve(y), _halve(w)
    return float(value)


def box_short_side(boxes: Sequence[tuple[float, float, float, float]]) -> float:
    """The shortest side among boxes (x0, y0, x1, y1): what limits MS-SSIM's scales."""
    return float(min(min(b[2] - b[0], b[3] - b[1]) for b in boxes))


# ---------------------------------------------------------------------------------------
# Sets of vectors


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((s + s.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, s1) and N(mu2, s2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    r = _sqrt_psd(s1)
    m = r @ s2 @ r
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)


def frechet_from_samples(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of x and y (unbiased covariances).

    With centred data A (n x d) and B (m x d), tr (S1 S2)^1/2 is the sum of the singular values
    of A B^T over sqrt((n-1)(m-1)) (the non-zero eigenvalues of A^T A B^T B are those of
    (A B^T)(A B^T)^T), so small sets cost an n x m SVD instead of d x d square roots.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return float("nan")
    if min(n, m) > x.shape[1]:
        return frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    a, b = x - x.mean(0), y - y.mean(0)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / math.sqrt((n - 1) * (m - 1))
    value = ((x.mean(0) - y.mean(0)) ** 2).sum() + (a * a).sum() / (n - 1) + (b * b).sum() / (m - 1) - 2.0 * cross
    return max(float(value), 0.0)


# ---------------------------------------------------------------------------------------
# Confidence intervals


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer df (the closed-form finite series)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    term, total = 1.0, 1.0
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * math.cos(theta) * total)


def t_quantile(confidence: float, df: int) -> float:
    """The t value with P(|T| < t) = confidence for df degrees of freedom (bisection)."""
    if df < 1:
        raise ValueError("t_quantile needs df >= 1")
    if df > 2000:  # the series gets long and the normal is within 1e-3 of it
        z = {0.95: 1.959963984540054, 0.99: 2.5758293035489}.get(round(confidence, 6))
        if z is not None:
            return z * (1 + (1 + z * z) / (4 * df))
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, df) < confidence:
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        if _t_two_sided(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self, digits: int = 5) -> dict:
        def r(v: Optional[float]) -> Optional[float]:
            return None if v is None or not math.isfinite(v) else round(float(v), digits)

        return {"mean": r(self.mean), "ci95": [r(self.low), r(self.high)], "n": self.n}


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Sample mean with its Student-t confidence interval (NaNs are left out)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    m = float(v.mean())
    if n == 1:
        return Interval(m, float("nan"), float("nan"), 1)
    se = float(v.std(ddof=1)) / math.sqrt(n)
    h = t_quantile(confidence, n - 1) * se
    return Interval(m, m - h, m + h, n)


def bootstrap_cis(
    statistic: Callable[[np.ndarray], Sequence[float]],
    n: int,
    resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
) -> list[Interval]:
    """Bootstrap intervals of several statistics of n paired items, from the same resamples:
    ``statistic(indices)`` returns one value per statistic; each gets its value on all items
    and its interval (seeded).

    ``method``: "percentile" (the resamples' quantiles) suits nearly unbiased statistics such
    as means. "basic" is for statistics with a bias the bootstrap can see: a Fréchet distance
    from finite samples is too large, and a resample (which repeats items) is larger still, so
    the percentile interval sits above the value and can miss both it and the truth. "basic"
    returns the bias-corrected value (2 * value - mean of the resamples) and the basic
    interval (2 * value - the quantiles, reversed) around it.
    """
    if method not in ("percentile", "basic"):
        raise ValueError(f"method must be 'percentile' or 'basic', not {method!r}")
    values = np.atleast_1d(np.asarray(statistic(np.arange(n)), dtype=np.float64))
    if n < 2 or resamples < 1:
        return [Interval(float(v), float("nan"), float("nan"), n) for v in values]
    rng = np.random.default_rng(seed)
    stats = np.array([np.atleast_1d(statistic(rng.integers(0, n, n))) for _ in range(resamples)], dtype=np.float64)
    alpha = (1 - confidence) / 2
    out = []
    for k, v in enumerate(values):
        col = stats[:, k][np.isfinite(stats[:, k])]
        if len(col) == 0:
            out.append(Interval(float(v), float("nan"), float("nan"), n))
        else:
            lo, hi = float(np.quantile(col, alpha)), float(np.quantile(col, 1 - alpha))
            if method == "basic":
                v, lo, hi = 2 * float(v) - float(col.mean()), 2 * float(v) - hi, 2 * float(v) - lo
            out.append(Interval(float(v), lo, hi, n))
    return out


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
) -> Interval:
    """Bootstrap interval of ``statistic(indices)`` over n paired items (seeded; see
    ``bootstrap_cis`` for ``method``)."""
    return bootstrap_cis(lambda i: [statistic(i)], n, resamples, seed, confidence, method)[0]


def proportion_ci(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A share with its Wilson score interval (sound near 0 and 1, unlike mean +- t se)."""
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    z = {0.95: 1.959963984540054, 0.99: 2.5758293035489}[round(confidence, 6)]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)
