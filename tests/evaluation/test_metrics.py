"""Metric functions of `exgan evaluate` against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exgan_cli.evaluation import metrics as M


def _smooth(seed: int = 0, size: int = 48) -> np.ndarray:
    """A smooth float RGB image in 40..200 (no clipping when shifted by +-40)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 120 + 60 * np.sin(3 * xx + rng.uniform(0, 3)) * np.cos(2 * yy)
    return np.stack([base, base * 0.9 + 10, base * 0.8 + 20], axis=2)


def test_l1_whole_image_and_mask():
    a = np.zeros((10, 10, 3), np.uint8)
    b = np.full((10, 10, 3), 51, np.uint8)
    assert M.l1(a, b) == pytest.approx(0.2)
    mask = np.zeros((10, 10), np.float32)
    mask[:, :5] = 1
    b2 = b.copy()
    b2[:, 5:] = 0  # differs only inside the mask: the masked L1 sees 51 everywhere it looks
    assert M.l1(a, b2, mask) == pytest.approx(0.2)
    assert M.l1(a, b2) == pytest.approx(0.1)


def test_psnr_known_error_and_identical():
    x = _smooth().astype(np.uint8)
    mask = np.zeros(x.shape[:2], np.float32)
    mask[10:20, 5:30] = 1
    y = x.astype(np.int32)
    y[mask > 0] += 10  # MSE 100 inside the mask
    y = y.astype(np.uint8)
    assert M.psnr(x, y, mask) == pytest.approx(10 * math.log10(255**2 / 100))  # 28.13 dB
    assert M.psnr(x, x) == M.PSNR_MAX
    assert M.mse(x, y, mask) == pytest.approx(100.0)


def test_ssim_identical_is_one_and_constant_shift_known():
    x = _smooth()
    assert M.ssim(x, x) == pytest.approx(1.0)
    assert M.ms_ssim(x, x, scales=3) == pytest.approx(1.0)
    # Two flat images 100 and 120: no variance, so SSIM is the luminance term alone,
    # (2 * 100 * 120 + C1) / (100^2 + 120^2 + C1) with C1 = (0.01 * 255)^2.
    a, b = np.full((32, 32, 3), 100.0), np.full((32, 32, 3), 120.0)
    c1 = (0.01 * 255) ** 2
    assert M.ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), rel=1e-6)
    # A shift keeps contrast and structure (cs = 1): SSIM < 1 but close.
    s = M.ssim(x, x + 20)
    assert 0.9 < s < 1.0
    lum, cs = M.ssim_maps(x, x + 20)
    assert np.allclose(cs, 1.0, atol=1e-4)


def test_ssim_masked_region_and_noise():
    x = _smooth()
    rng = np.random.default_rng(1)
    y = x.copy()
    mask = np.zeros(x.shape[:2], np.float32)
    mask[16:32, 16:32] = 1
    y[16:32, 16:32] += rng.normal(0, 25, (16, 16, 3))
    inside, outside = M.ssim(x, y, mask), M.ssim(x, y, 1 - mask)
    assert inside < 0.7 < outside
    assert M.ms_ssim(x, y, mask, scales=1) == pytest.approx(inside)  # one scale: SSIM itself
    assert 0 < M.ms_ssim(x, y, mask, scales=2) < 1


def test_ms_ssim_scales_follow_the_region():
    assert M.ms_ssim_scales(18) == 2  # an eye box at 128 px
    assert M.ms_ssim_scales(36) == 3  # at 256 px
    assert M.ms_ssim_scales(5) == 1
    assert M.ms_ssim_scales(1000) == 5
    assert M.box_short_side([(0, 0, 30, 18), (40, 2, 70, 21)]) == 18
    with pytest.raises(ValueError):
        M.ms_ssim(_smooth(), _smooth(), scales=6)


def test_frechet_distance_of_known_gaussians():
    # diagonal covariances: tr term is sum (sqrt(a) - sqrt(b))^2
    fd = M.frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 9.0]))
    assert fd == pytest.approx(5 + (1 - 2) ** 2 + (2 - 3) ** 2)  # 7
    # same distribution: 0; a pure shift: the squared distance of the means
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    s = a @ a.T
    assert M.frechet_distance(np.ones(4), s, np.ones(4), s) == pytest.approx(0.0, abs=1e-9)
    assert M.frechet_distance(np.zeros(4), s, np.full(4, 2.0), s) == pytest.approx(16.0, abs=1e-8)
    # singular covariances are fine (eigendecompositions only)
    assert M.frechet_distance(np.zeros(3), np.diag([1.0, 0, 0]), np.zeros(3), np.diag([0, 1.0, 0])) == pytest.approx(2.0)


def test_frechet_from_samples_matches_covariance_formula_both_ways():
    rng = np.random.default_rng(2)
    for n, m, d in ((9, 12, 32), (60, 80, 8)):  # fewer samples than dimensions, and more
        x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 1.5 + 0.3
        ref = M.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        assert M.frechet_from_samples(x, y) == pytest.approx(ref, rel=1e-6)
    assert math.isnan(M.frechet_from_samples(np.zeros((1, 3)), np.zeros((5, 3))))


def test_t_interval_of_known_samples():
    iv = M.mean_ci([1, 2, 3, 4, 5])
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert iv.mean == 3 and iv.n == 5
    assert iv.low == pytest.approx(3 - half, rel=1e-6) and iv.high == pytest.approx(3 + half, rel=1e-6)
    assert M.t_quantile(0.95, 1) == pytest.approx(12.7062047, rel=1e-6)
    assert M.t_quantile(0.95, 30) == pytest.approx(2.0422725, rel=1e-6)
    assert M.t_quantile(0.95, 5000) == pytest.approx(1.9604386, rel=1e-5)
    one = M.mean_ci([2.0, float("nan")])
    assert one.n == 1 and math.isnan(one.low)
    assert M.mean_ci([]).n == 0
    d = iv.to_dict()
    assert set(d) == {"mean", "ci95", "n"} and d["ci95"][0] == pytest.approx(3 - half, abs=1e-5)


def test_proportion_and_bootstrap_intervals():
    p = M.proportion_ci(5, 10)
    assert p.mean == 0.5 and p.low == pytest.approx(0.2366, abs=1e-4) and p.high == pytest.approx(0.7634, abs=1e-4)
    z = M.proportion_ci(0, 10)
    assert z.low == 0.0 and z.high == pytest.approx(0.2775, abs=1e-4)
    x = np.arange(40, dtype=float)
    b1 = M.bootstrap_ci(lambda i: float(x[i].mean()), len(x), resamples=300, seed=3)
    b2 = M.bootstrap_ci(lambda i: float(x[i].mean()), len(x), resamples=300, seed=3)
    assert b1 == b2  # seeded
    assert b1.mean == pytest.approx(19.5) and b1.low < 19.5 < b1.high
    # the t-interval and the bootstrap agree roughly on a mean
    t = M.mean_ci(x)
    assert abs((b1.high - b1.low) - (t.high - t.low)) < 0.35 * (t.high - t.low)
    lo, hi, diff = M.bootstrap_cis(lambda i: [x[i].mean(), x[i].mean() + 1, 1.0], len(x), 50, 0)
    assert hi.mean == lo.mean + 1 and diff.low == diff.high == 1.0


def test_basic_bootstrap_corrects_the_frechet_resampling_bias():
    # Resampling with repeats inflates a Fréchet distance: the percentile interval lies above
    # the sample value and misses the truth; the basic interval with the bias-corrected value
    # covers the truth (0 for one distribution, ||shift||^2 = 1 for a shifted one).
    rng = np.random.default_rng(0)
    for shift, truth in ((0.0, 0.0), (0.5, 1.0)):
        x = rng.normal(size=(120, 4))
        y = rng.normal(size=(120, 4)) + shift  # 4 dims shifted by 0.5: ||d||^2 = 1
        stat = lambda i: M.frechet_from_samples(x[i], y[i])  # noqa: E731
        raw = M.frechet_from_samples(x, y)
        pct = M.bootstrap_ci(stat, len(x), resamples=200, seed=1)
        basic = M.bootstrap_ci(stat, len(x), resamples=200, seed=1, method="basic")
        assert pct.mean == raw and pct.low > truth if shift == 0 else pct.mean == raw
        assert basic.low <= truth <= basic.high, (shift, basic)
        assert basic.low <= basic.mean <= basic.high and basic.mean < raw
        assert basic.high - basic.low == pytest.approx(pct.high - pct.low)
    with pytest.raises(ValueError):
        M.bootstrap_ci(stat, len(x), method="bca")


def test_detail_ratio_sees_blur_not_the_paste_border():
    rng = np.random.default_rng(0)
    truth = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[20:40, 10:50] = 1
    assert M.detail_ratio(truth, truth, mask) == pytest.approx(1.0)
    import cv2

    soft = truth.copy()
    soft[20:40, 10:50] = cv2.GaussianBlur(truth, (0, 0), 2.0)[20:40, 10:50]
    assert M.detail_ratio(soft, truth, mask) < 0.1
    flat = truth.copy()
    flat[20:40, 10:50] = 128  # a flat fill: its hard border alone must not count as detail
    assert M.detail_ratio(flat, truth, mask) == pytest.approx(0.0, abs=1e-9)


def test_seam_error_measures_a_step_at_the_border_not_the_content():
    yy, xx = np.mgrid[0:64, 0:64]
    truth = np.repeat((60 + xx + 0.5 * yy)[..., None], 3, axis=2).astype(np.uint8)  # a smooth ramp
    mask = np.zeros((64, 64), np.float32)
    mask[20:40, 10:50] = 1
    assert M.seam_error(truth, truth, mask) == pytest.approx(0.0, abs=1e-12)
    step = truth.copy()
    step[20:40, 10:50] += 10  # the hole 10 levels brighter: a visible box
    assert M.seam_error(step, truth, mask) == pytest.approx(10 * 4 / 8 / 255, rel=0.15)  # Sobel: 5 levels/px
    smaller = truth.copy()
    smaller[20:40, 10:50] += 3
    assert M.seam_error(smaller, truth, mask) < M.seam_error(step, truth, mask) / 3
    inner = truth.copy()
    inner[24:36, 14:46] = 0  # different content well inside the hole, continuous at its border
    assert M.seam_error(inner, truth, mask) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(M.seam_error(truth, truth, np.zeros((64, 64), np.float32)))
