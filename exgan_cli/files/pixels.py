"""Decoded photo pixels to the library's form, RGB uint8: colour profiles, CMYK, 16 bits, alpha.

files/images.load_image reads the file and its metadata; these turn what Pillow decoded into
an (H, W, 3) uint8 RGB array (and the alpha channel, kept aside for writing back).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Rec. 601 weights of R, G, B


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an (..., 3) RGB array as float32 (what cv2's RGB2GRAY computes, without
    rounding)."""
    a = np.asarray(rgb, dtype=np.float32)
    return a[..., 0] * LUMA[0] + a[..., 1] * LUMA[1] + a[..., 2] * LUMA[2]


def icc_colour_space(icc: bytes) -> str | None:
    """The ICC profile's data colour space ("RGB", "GRAY", "CMYK", ...), None if unreadable."""
    try:
        from PIL import ImageCms

        return ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except Exception:  # a broken profile is dropped, not fatal: the pixels are still fine
        return None


def cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK to sRGB through the embedded profile when there is one (naive formula otherwise)."""
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
        except Exception:  # unusable profile: fall back to Pillow's plain conversion
            pass
    return im.convert("RGB")


def to_rgb_and_alpha(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale (PNG): map 0..65535 onto 0..255 with rounding; Pillow's own
        # convert("L") would clip everything above 255 to white.
        v = np.asarray(im, dtype=np.int64)
        g = ((np.clip(v, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2)), None
    if mode == "CMYK":
        return np.asarray(cmyk_to_rgb(im, icc), dtype=np.uint8).copy(), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    if mode == "RGB":  # the common case: no convert() (it would copy the whole photo once more)
        return np.array(im, dtype=np.uint8), None
    return np.array(im.convert("RGB"), dtype=np.uint8), None


def pillow_mode(im: Image.Image) -> str:
    """Pillow mode, marking 16-bit RGB(A) PNGs (which Pillow decodes to 8 bits itself)."""
    try:
        rawmode = im.tile[0][3] if im.tile else ""
        rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
        if im.mode in ("RGB", "RGBA") and isinstance(rawmode, str) and rawmode.endswith(";16B"):
            return im.mode + ";16"
    except Exception:
        pass
    return im.mode
