"""The kind of image a photo file holds (8 or 16 bits, grey, RGB, CMYK), kept when it is written back.

The library works on 8-bit RGB. ``load_image`` keeps aside, for the photos that are not 8-bit RGB,
the file's own samples (``source_samples``): 16-bit grey or RGB(A) values, CMYK inks. A retouched
photo is then written as the kind it was read (``as_source_kind``): only the pixels the retouch
changed take new values, converted to the file's kind (grey: their luminance, so that new eyes are
grey in a black-and-white photo; 16 bits: the 8-bit value times 257; CMYK: through the file's own
CMYK profile, or Pillow's formula without one); every other pixel keeps the file's own sample
exactly. Where the output format cannot hold the kind (16 bits or grey in WebP, CMYK in PNG,
16 bits in JPEG) the photo is written as near to it as the format allows and ``KindKept.lost``
says, in one line, what could not be kept.

16-bit RGB(A) PNGs are read with OpenCV (Pillow reads them as 8 bits) and written with OpenCV,
with the input's ICC profile and EXIF added as PNG chunks.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

GREY_MODES = ("L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I")
SIXTEEN_BIT = ("RGB;16", "RGBA;16", "I;16", "I;16B", "I;16L", "I;16N", "I")
_FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}


def source_samples(im: Image.Image, data: bytes, source_mode: str, orientation: int, pixels: np.ndarray) -> np.ndarray | None:
    """The file's own samples, upright, when they are not what ``pixels`` (8-bit RGB) holds:
    (H, W) uint16 for 16-bit grey, (H, W, 3 or 4) uint16 for 16-bit RGB(A), (H, W, 4) uint8 for
    CMYK; None for every other kind (8-bit grey is ``pixels[..., 0]``). ``im``: upright."""
    if source_mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return np.clip(np.asarray(im, dtype=np.int64), 0, 65535).astype(np.uint16)
    if source_mode == "CMYK":
        return np.asarray(im, dtype=np.uint8).copy()
    if source_mode in ("RGB;16", "RGBA;16"):
        import cv2

        stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # no EXIF rotation
        if stored is None or stored.dtype != np.uint16 or stored.ndim != 3:
            return None
        samples = np.ascontiguousarray(upright(stored[..., [2, 1, 0, 3][: stored.shape[2]]], orientation))
        # Pillow's 8-bit RGB of a 16-bit PNG is each sample's high byte: the two decodes must agree.
        return samples if np.array_equal((samples[..., :3] >> 8).astype(np.uint8), pixels) else None
    return None


def upright(stored: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as PIL.ImageOps.exif_transpose turns them for an EXIF orientation."""
    ops = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1),
    }
    return ops.get(orientation, lambda a: a)(stored)


@dataclass(frozen=True)
class KindKept:
    """What ``as_source_kind`` made of a retouched photo for the output format."""

    image: Image.Image | None  # to encode with Pillow; None when ``png`` holds the file
    png: bytes | None = None  # a 16-bit RGB(A) PNG, complete
    kind: str | None = None  # the input's kind, kept: "16-bit grey", "grey", "16-bit RGB", "CMYK"
    lost: str | None = None  # one line: what the output format could not keep
    icc: bytes | None = None  # the profile to embed (a grey or CMYK one for those kinds)


def describe_kind(source_mode: str) -> str:
    """ "16-bit RGB", "grey", "16-bit grey", "CMYK", "RGB" ... of a LoadedImage.source_mode."""
    if source_mode == "CMYK":
        return "CMYK"
    colour = "grey" if source_mode in GREY_MODES else "RGB"
    return f"16-bit {colour}" if source_mode in SIXTEEN_BIT else colour


def as_source_kind(pixels: np.ndarray, like: Any, fmt: str) -> KindKept:
    """The retouched RGB ``pixels`` as the kind of image ``like`` (a LoadedImage) was read as,
    as far as ``fmt`` ("JPEG", "PNG", "WEBP") holds it; see the module doc."""
    from exgan_cli.files.jpeg_blocks import differ

    mode, kind = like.source_mode, describe_kind(like.source_mode)
    changed = differ(pixels, like.pixels)
    samples = getattr(like, "samples", None)
    name = _FORMAT_NAMES.get(fmt, fmt)
    if mode in GREY_MODES:
        grey8 = _grey8(pixels, like, changed)
        if fmt == "WEBP":
            return KindKept(_with_alpha(Image.fromarray(np.repeat(grey8[..., None], 3, axis=2), "RGB"), like),
                            lost=f"written as RGB ({name} has no grey), the new eyes grey")
        if samples is not None and fmt == "PNG":  # 16-bit grey
            out = samples.copy()
            out[changed] = np.clip(np.rint(_luma(pixels[changed]) * 257), 0, 65535).astype(np.uint16)
            return KindKept(Image.fromarray(out), kind=kind, icc=like.source_icc)
        lost = f"written with 8 bits ({name} has no 16)" if samples is not None else None
        return KindKept(_with_alpha(Image.fromarray(grey8, "L"), like), kind="grey", lost=lost, icc=like.source_icc)
    if mode in ("RGB;16", "RGBA;16") and samples is not None:
        if fmt != "PNG":
            return KindKept(None, lost=f"written with 8 bits ({name} has no 16)")
        out = samples.copy()
        out[..., :3][changed] = pixels[changed].astype(np.uint16) * 257
        return KindKept(None, png=png16(out, like.icc, like.exif), kind=kind)
    if mode == "CMYK" and samples is not None:
        if fmt != "JPEG":
            return KindKept(None, lost=f"written as RGB ({name} has no CMYK)")
        out = samples.copy()
        out[changed] = rgb_to_cmyk(pixels[changed], like.source_icc)
        return KindKept(Image.fromarray(out, "CMYK"), kind=kind, icc=like.source_icc)
    return KindKept(None)


def own_samples(pixels: np.ndarray, like: Any) -> tuple[np.ndarray, np.ndarray]:
    """(retouched, as loaded) in the samples a JPEG patch of ``like``'s file works on: the grey
    values of a grey JPEG (the changed pixels' luminance), else the RGB pixels themselves."""
    if like.source_mode == "L":
        from exgan_cli.files.jpeg_blocks import differ

        return _grey8(pixels, like, differ(pixels, like.pixels)), like.pixels[..., 0]
    return pixels, like.pixels


def _grey8(pixels: np.ndarray, like: Any, changed: np.ndarray) -> np.ndarray:
    """The 8-bit grey photo: the loaded one's values, the changed pixels' rounded luminance."""
    grey8 = like.pixels[..., 0].copy()
    grey8[changed] = np.clip(np.rint(_luma(pixels[changed])), 0, 255).astype(np.uint8)
    return grey8


def _luma(rgb: np.ndarray) -> np.ndarray:
    from exgan_cli.files.pixels import luminance

    return luminance(rgb)


def _with_alpha(im: Image.Image, like: Any) -> Image.Image:
    if like.alpha is not None and like.alpha.shape == (im.height, im.width):
        im.putalpha(Image.fromarray(np.ascontiguousarray(like.alpha), "L"))
    return im


def rgb_to_cmyk(rgb: np.ndarray, icc: bytes | None) -> np.ndarray:
    """(N, 3) uint8 RGB as (N, 4) CMYK inks: through the file's CMYK profile (from sRGB, the
    inverse of how load_image read it), or Pillow's formula when there is none or it fails."""
    strip = Image.fromarray(np.ascontiguousarray(rgb.reshape(1, -1, 3)), "RGB")
    if icc:
        try:
            from PIL import ImageCms

            dst = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            cmyk = ImageCms.profileToProfile(strip, ImageCms.createProfile("sRGB"), dst, outputMode="CMYK")
            return np.asarray(cmyk, dtype=np.uint8).reshape(-1, 4)
        except Exception:  # an unusable profile: the plain formula, as load_image's fallback
            pass
    return np.asarray(strip.convert("CMYK"), dtype=np.uint8).reshape(-1, 4)


# ---------------------------------------------------------------------------------------
# 16-bit PNG out (Pillow writes no 16-bit RGB)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png16(samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    """A 16-bit RGB(A) PNG of (H, W, 3 or 4) uint16 RGB(A) ``samples``, with the ICC profile
    (iCCP) and EXIF (eXIf) given, inserted after the header as the PNG specification orders them."""
    import cv2

    order = [2, 1, 0, 3][: samples.shape[2]]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(samples[..., order]))
    if not ok:
        raise ValueError("OpenCV could not encode the 16-bit PNG")
    data = encoded.tobytes()
    end = 8 + 8 + 13 + 4  # signature, then IHDR (length, type, 13 bytes, CRC)
    extra = b""
    if icc:
        extra += _chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc))
    if exif:
        extra += _chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    return data[:end] + extra + data[end:]
