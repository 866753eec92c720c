"""What the detail stage (detail.py) is given: its settings and the reference face.

Its own module so that the detail maths (detail_bands.py, detail_flow.py) and the public stage
(detail.py) can all use them without importing one another in a circle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    fine_floor: float = 1.0  # the finest band keeps at least this weight where the structures disagree
    # (1: never gated, it is texture; 0.75 before 2026-12-07 left eyes softer than the photo's own:
    # benchmarks/warp_fullres.py, docs/detail.md)
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
