"""Writing a retouched JPEG without recompressing it: only the changed 8x8 blocks are re-encoded.

A retouch changes a few hundred pixels around the eyes. Decoding the whole photo and encoding
it again would put every other pixel through one more round of JPEG loss (and change the file
size, the chroma sampling and the quantisation). Instead ``patch_jpeg`` works on the file's
own DCT coefficients (read and written losslessly with ``jpeglib``, which wraps libjpeg):

1. the input file is decoded again exactly as ``images.load_image`` decodes it (Pillow), and
   the retouched pixels are compared with it: the pixels that differ are the change;
2. every MCU (the file's minimum coded unit: 8x8 pixels for 4:4:4, 16x16 for 4:2:0, ...)
   holding a changed pixel is re-encoded; for each component block in it the change is
   taken to YCbCr, downsampled as the file's sampling factors say, transformed with an 8x8
   DCT, quantised with the file's own table and added to the block's stored coefficients
   (so a block whose pixels did not change, or changed by less than its quantisation step,
   keeps its coefficients bit for bit);
3. the coefficients are written back with the same quantisation tables and sampling factors
   (sequential input: sequential, with standard Huffman tables if it had them; progressive
   input: sequential with optimised tables when that keeps the size within 5%, ~4x faster to
   write than progressive scans and the same coefficients, hence the same pixels; otherwise
   progressive), and the input's APPn/COM segments (JFIF, EXIF, ICC, XMP, comments, ...) are
   copied back byte for byte;
4. the result is verified by decoding it: outside the changed MCUs the pixels must equal the
   decoded input (but for the one-pixel ring into which the decoder's fancy chroma upsampling
   blends a changed MCU's chroma when chroma is subsampled), inside they must be within the
   error a fresh encode with the same tables makes, and the file size within 5% of the input's.

Grey (one-component) JPEGs are patched the same way, their change taken in grey (the caller
hands their grey samples, kinds.own_samples). Anything this cannot do or verify (CMYK, 12-bit,
arithmetic coding) raises ``CannotPatch`` with a one-line reason, and the caller
(``images.save_image_info``) falls back to encoding the whole image.

The stored pixels of a photo with an EXIF orientation other than 1 are rotated relative to the
upright pixels the library works on; the retouched pixels are turned back to the stored
orientation before the comparison, and the output keeps the input's orientation tag (so it is
displayed exactly like the input, and no pixel has to be moved between blocks).

The file's byte layout (segments, Huffman tables, metadata splicing) is read in jpeg_markers.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exgan_cli.files.jpeg_blocks import apply_change, differ, mcu_grid_mask, mcu_pixels, mcu_tiles
from exgan_cli.files.jpeg_markers import (
    SOF_BASELINE,
    SOF_OTHER,
    SOF_PROGRESSIVE,
    CannotPatch,
    Layout,
    huffman_tables,
    parse,
    splice_metadata,
    standard_tables,
)

__all__ = ["CannotPatch", "Patched", "patch_jpeg", "to_stored"]

# Only this much larger or smaller than the input may the patched file be (check (c)).
SIZE_TOLERANCE = 0.05

# jpeglib switches its libjpeg build through process-wide state: one patch at a time.
_LIB_LOCK = threading.Lock()

# Coefficients being read ahead of a patch (prefetch_coefficients), by the SHA-256 of the bytes.
_PREFETCHED: dict[str, Future] = {}


def prefetch_coefficients(path: str | os.PathLike, sha256: str) -> None:
    """Start reading a JPEG's DCT coefficients on a daemon thread (importing jpeglib on the
    way), for a later ``patch_jpeg`` of the same bytes: ~0.5 s at 12 MP that a cold retouch's
    write then does not wait for, read while its one busy core retouches the faces."""
    from exgan_cli.background import in_background

    if sha256 in _PREFETCHED:
        return

    def read():
        data = Path(path).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise CannotPatch("the file changed")  # patch_jpeg then reads it itself
        return _read_coefficients(data, "turbo210")

    _PREFETCHED.clear()  # one photo's at a time: one whose save never came is not kept
    _PREFETCHED[sha256] = in_background(read, name="exgan-jpeg-prefetch")


def _read_coefficients(data: bytes, library: str):
    """jpeglib's DCTJPEG of ``data``, its coefficients loaded, read with ``library``."""
    import jpeglib

    with _LIB_LOCK, jpeglib.version(library), tempfile.TemporaryDirectory(prefix="exgan-jpeg-") as tmp:
        src = Path(tmp) / "in.jpg"
        src.write_bytes(data)
        jpeg = jpeglib.read_dct(str(src))
        jpeg.load()  # the object keeps the file's bytes: it is written later without this file
    return jpeg


def drop_prefetched(sha256: str | None) -> None:
    """Forget the coefficients read ahead for these bytes, if any (a save that never came)."""
    _PREFETCHED.pop(sha256, None)


def _prefetched(sha256: str | None, coding: str):
    """The coefficients prefetch_coefficients read for these bytes (once), or None."""
    future = _PREFETCHED.pop(sha256, None) if sha256 else None
    if future is None or coding != "sequential":
        return None
    try:
        return future.result()
    except Exception:
        return None


@dataclass(frozen=True)
class Patched:
    """A patched JPEG, verified, ready to write."""

    data: bytes
    changed_mcus: int  # MCUs re-encoded (holding at least one changed pixel)
    total_mcus: int
    changed_blocks: int  # 8x8 component blocks whose coefficients changed
    mcu_size: tuple[int, int]  # (width, height) of an MCU in pixels: (16, 16) for 4:2:0
    sampling: str  # "4:2:0", "4:4:4", ...
    progressive: bool  # the input's scans are progressive
    coding: str  # the output's: "sequential" or "progressive" (see _reencode: a progressive input is
    # written sequential, same coefficients, when that keeps the size within SIZE_TOLERANCE)
    size_ratio: float  # output bytes / input bytes (the primary image, see jpeg_markers.Layout.size)
    mean_error: float  # mean |decoded output - retouched pixels| inside the changed MCUs (0..255)
    max_error: int  # the largest such difference


# ---------------------------------------------------------------------------------------
# EXIF orientation: the stored pixels are the upright ones turned by one of 8 transforms.


def to_stored(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as the file stores them, given the upright pixels and the EXIF orientation:
    the inverse of what ``PIL.ImageOps.exif_transpose`` (and so ``load_image``) applies."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # exif_transpose flips left-right: its own inverse
        3: lambda a: a[::-1, ::-1],  # rotated 180
        4: lambda a: a[::-1],  # flipped top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, 1),  # exif_transpose turns it 90 deg clockwise: undo that
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, -1),  # exif_transpose turns it 90 deg counter-clockwise
    }
    if orientation not in ops:
        raise CannotPatch(f"unknown EXIF orientation {orientation}")
    return ops[orientation](upright)


# ---------------------------------------------------------------------------------------
# Pixels and MCUs


PATCHED_MODES = ("RGB", "L")  # Pillow's modes of the JPEGs patched: YCbCr colour, and grey
_NOT_PATCHED = "only YCbCr colour and grey JPEGs are patched"


def _orientation(data: bytes) -> int:
    """The EXIF orientation of a colour or grey JPEG, read without decoding its pixels."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format != "JPEG" or im.mode not in PATCHED_MODES:
            raise CannotPatch(f"{im.mode} JPEG ({_NOT_PATCHED})")
        return int(im.getexif().get(0x0112, 1) or 1)


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    """Stored (not re-oriented) pixels as Pillow decodes them, (H, W, 3) RGB or (H, W, 1) grey,
    and the EXIF orientation.

    The same decoder and settings as ``load_image``, so an unchanged pixel of the retouched
    image equals its decoded input pixel exactly.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format != "JPEG" or im.mode not in PATCHED_MODES:
            raise CannotPatch(f"{im.mode} JPEG ({_NOT_PATCHED})")
        im.load()
        orientation = im.getexif().get(0x0112, 1) or 1
        return _channels(np.asarray(im)), int(orientation)


def _channels(a: np.ndarray) -> np.ndarray:
    """(H, W) grey as (H, W, 1): every array here has a channel axis."""
    return a[..., None] if a.ndim == 2 else a


def _sampling_name(factors: list[tuple[int, int]]) -> str:
    """"4:2:0" for luma (2, 2) and chroma (1, 1) (factors as (h, v)); "grey" for one component;
    "h,v:h,v:h,v" otherwise."""
    if len(factors) == 1:
        return "grey"
    names = {((1, 1), (1, 1)): "4:4:4", ((2, 1), (1, 1)): "4:2:2", ((2, 2), (1, 1)): "4:2:0",
             ((1, 2), (1, 1)): "4:4:0", ((4, 1), (1, 1)): "4:1:1"}
    if factors[1] == factors[2] and (factors[0], factors[1]) in names:
        return names[(factors[0], factors[1])]
    return ":".join(f"{h}x{v}" for h, v in factors)


# ---------------------------------------------------------------------------------------
# Patching: check, re-encode the changed MCUs, verify


def patch_jpeg(
    source: str | os.PathLike, pixels: np.ndarray, loaded: np.ndarray | None = None, loaded_sha256: str | None = None
) -> Patched:
    """The JPEG ``source`` with the blocks that ``pixels`` changed re-encoded, verified.

    ``pixels``: the retouched (H, W, 3) uint8 RGB image, upright (EXIF orientation applied, as
    ``load_image`` gives it); for a grey JPEG, its (H, W) grey samples (kinds.own_samples).
    ``loaded``: the upright pixels the retouch started from (the same kind), when at hand; the
    file is checked to still hold them: by the SHA-256 of the bytes they were decoded from
    (``loaded_sha256``, ``LoadedImage.sha256``) when given, which spares decoding the photo a
    second time, else by decoding it. Raises ``CannotPatch`` (one-line reason) when the file
    cannot be patched or the patch does not pass verification.
    """
    try:
        import jpeglib
    except ImportError:
        raise CannotPatch("jpeglib is not installed") from None
    data = Path(source).read_bytes()
    layout = parse(data)
    _check_frame(layout)
    progressive = layout.sof in SOF_PROGRESSIVE

    digest = hashlib.sha256(data).hexdigest()
    if loaded is not None and loaded_sha256 is not None and digest == loaded_sha256:
        # the very bytes load_image decoded: the stored pixels are the loaded ones, turned back
        orientation = _orientation(data)
        base = to_stored(_channels(np.asarray(loaded)), orientation)
    else:
        base, orientation = _decode(data)
        if loaded is not None and not np.array_equal(to_stored(_channels(np.asarray(loaded)), orientation), base):
            raise CannotPatch("the input file no longer holds the pixels it was loaded with")
    target = to_stored(_channels(np.asarray(pixels)), orientation)
    if target.shape[2] != len(layout.factors) or base.shape[2] != len(layout.factors):
        raise CannotPatch(f"{target.shape[2]}-channel pixels for a {len(layout.factors)}-component JPEG")
    if target.shape != base.shape or target.dtype != np.uint8:
        raise CannotPatch(f"the image ({target.shape}) is not the size of the input ({base.shape})")
    mcu_h, mcu_w = _mcu_shape(layout)
    changed = differ(target, base)
    mcu_mask = mcu_grid_mask(changed, mcu_h, mcu_w)
    info = dict(total_mcus=int(mcu_mask.size), mcu_size=(mcu_w, mcu_h), sampling=_sampling_name(layout.factors),
                progressive=progressive)
    if not mcu_mask.any():  # nothing changed: the input itself, byte for byte
        return Patched(data=data, changed_mcus=0, changed_blocks=0, size_ratio=1.0, mean_error=0.0,
                       max_error=0, coding="progressive" if progressive else "sequential", **info)

    # Progressive input: sequential first (libjpeg-turbo, optimised Huffman tables: ~0.35 s at 12 MP
    # where mozjpeg's progressive writer takes 1.3 to 2.3 s; the same coefficients, so the same
    # pixels), and progressive only when the sequential file would leave the size tolerance.
    for coding in ("sequential", "progressive") if progressive else ("sequential",):
        written, changed_blocks, tables = _reencode(jpeglib, data, layout, target, base, mcu_mask, coding, digest)
        patched = splice_metadata(layout, written)
        ratio = len(patched) / layout.size
        if abs(ratio - 1) <= SIZE_TOLERANCE:
            break
    else:
        raise CannotPatch(f"patched file is {ratio:.2f}x the input's size")
    with _LIB_LOCK, jpeglib.version("turbo210"), tempfile.TemporaryDirectory(prefix="exgan-jpeg-") as tmp:
        # plain libjpeg for the reference (mozjpeg would trellis-quantise)
        fresh_error = _fresh_encode_error(jpeglib, target, mcu_mask, *_mcu_shape(layout), layout.factors, *tables,
                                          Path(tmp) / "reference.jpg")
    mean_error, max_error = _verify(patched, layout, base, target, orientation, mcu_mask, fresh_error)
    return Patched(data=patched, changed_mcus=int(mcu_mask.sum()), changed_blocks=changed_blocks,
                   size_ratio=ratio, mean_error=mean_error, max_error=max_error, coding=coding, **info)


def _check_frame(layout: Layout) -> None:
    """CannotPatch unless the frame is an 8-bit, 3-component (or grey, 1-component), Huffman-coded
    (baseline or progressive) one whose sampling factors divide the largest."""
    if layout.sof not in SOF_BASELINE | SOF_PROGRESSIVE:
        raise CannotPatch(f"{SOF_OTHER.get(layout.sof, 'unknown kind of')} JPEG")
    if layout.precision != 8:
        raise CannotPatch(f"{layout.precision}-bit JPEG")
    if len(layout.factors) not in (1, 3):
        raise CannotPatch(f"{len(layout.factors)}-component JPEG ({_NOT_PATCHED})")
    hmax, vmax = max(h for h, _ in layout.factors), max(v for _, v in layout.factors)
    if any(hmax % h or vmax % v for h, v in layout.factors):
        raise CannotPatch(f"unusual chroma sampling {_sampling_name(layout.factors)}")


def _mcu_shape(layout: Layout) -> tuple[int, int]:
    """(height, width) of an MCU in pixels."""
    return 8 * max(v for _, v in layout.factors), 8 * max(h for h, _ in layout.factors)


def _reencode(jpeglib, data: bytes, layout: Layout, target: np.ndarray, base: np.ndarray, mcu_mask: np.ndarray,
              coding: str, sha256: str | None = None) -> tuple[bytes, int, tuple[np.ndarray, np.ndarray]]:
    """(the file written with the changed MCUs' coefficients, its scans coded ``coding``
    ("sequential" or "progressive"), component blocks changed, the file's quantisation tables
    and which component uses which). ``sha256`` of ``data`` finds coefficients read ahead."""
    progressive = coding == "progressive"
    mcu_h, mcu_w = _mcu_shape(layout)
    # Progressive: mozjpeg's writer (libjpeg-turbo's, through jpeglib, writes coefficients
    # only as sequential scans), with its scan script optimised for size. Sequential:
    # libjpeg-turbo, standard Huffman tables when the input had them, else optimised ones.
    writer = "mozjpeg403" if progressive else "turbo210"
    jpeg = _prefetched(sha256, coding) or _read_coefficients(data, writer)
    with _LIB_LOCK, tempfile.TemporaryDirectory(prefix="exgan-jpeg-") as tmp, jpeglib.version(writer):
        dst = Path(tmp) / "out.jpg"
        grey = jpeg.num_components == 1
        expected = jpeglib.JCS_GRAYSCALE if grey else jpeglib.JCS_YCbCr
        if int(jpeg.jpeg_color_space) != int(expected) or jpeg.num_components != len(layout.factors):
            raise CannotPatch(f"{jpeg.jpeg_color_space} JPEG ({_NOT_PATCHED})")
        comps = [np.array(jpeg.Y)] if grey else [np.array(jpeg.Y), np.array(jpeg.Cb), np.array(jpeg.Cr)]
        qtables = [np.asarray(jpeg.qt[jpeg.quant_tbl_no[c]], dtype=np.float64) for c in range(len(comps))]
        changed_blocks = apply_change(comps, qtables, layout.factors, target, base, mcu_mask, mcu_h, mcu_w)
        if grey:
            jpeg.Y = comps[0]
        else:
            jpeg.Y, jpeg.Cb, jpeg.Cr = comps
        jpeg.markers = []  # the input's own segments are spliced back byte for byte (splice_metadata)
        standard = layout.sof in SOF_BASELINE and huffman_tables(layout.header) <= standard_tables()
        flags = [] if progressive or standard else ["+OPTIMIZE_CODING"]
        jpeg.write_dct(str(dst), flags=flags)
        written = dst.read_bytes()
    return written, changed_blocks, (np.array(jpeg.qt), np.array(jpeg.quant_tbl_no))


def _verify(patched: bytes, layout: Layout, base: np.ndarray, target: np.ndarray, orientation: int,
            mcu_mask: np.ndarray, fresh_error: tuple[float, int]) -> tuple[float, int]:
    """Decode the patched file as load_image would and hold it to the input outside the changed
    MCUs and to a fresh encode inside; (mean, max) error inside, or CannotPatch."""
    height, width = base.shape[:2]
    mcu_h, mcu_w = _mcu_shape(layout)
    hmax, vmax = mcu_w // 8, mcu_h // 8
    out, out_orientation = _decode(patched)
    if out_orientation != orientation or out.shape != base.shape:
        raise CannotPatch("the patched file does not decode to the input's size and orientation")
    # Fancy chroma upsampling blends each chroma sample with its neighbour: a changed MCU's
    # chroma reaches one pixel into the next MCU when chroma is subsampled.
    reach = 1 if any((h, v) != (hmax, vmax) for h, v in layout.factors) else 0
    near = mcu_pixels(mcu_mask, (height, width), mcu_h, mcu_w, reach)
    outside = differ(out, base) & ~near
    if outside.any():
        raise CannotPatch(f"{int(outside.sum())} pixels outside the re-encoded blocks changed")
    # Inside: no worse than encoding those MCUs afresh with the same tables and sampling (with
    # a margin for the mosaic's borders, where the fresh encode's chroma meets other MCUs).
    ref_mean, ref_max = fresh_error
    inside = mcu_pixels(mcu_mask, (height, width), mcu_h, mcu_w, 0)[near]
    err = np.abs(out[near].astype(np.int16) - target[near])
    mean_error, max_error = float(err[inside].mean()), int(err.max())
    mean_bound, max_bound = 1.25 * ref_mean + 0.25, 1.25 * ref_max + 2
    if mean_error > mean_bound or max_error > max_bound:
        raise CannotPatch(f"re-encoded blocks off by {mean_error:.2f} on average and {max_error} at most "
                          f"(a fresh encode: {ref_mean:.2f}, {ref_max})")
    return mean_error, max_error


def _fresh_encode_error(jpeglib, target: np.ndarray, mcu_mask: np.ndarray, mcu_h: int, mcu_w: int,
                        factors: list[tuple[int, int]], qt: np.ndarray, quant_tbl_no: np.ndarray,
                        tmp: Path) -> tuple[float, int]:
    """(mean, max) |error| of encoding the marked MCUs of ``target`` afresh, with the file's own
    quantisation tables and sampling: the quantisation error the patch is held to.

    The MCUs are laid side by side in a mosaic, encoded with libjpeg and decoded with Pillow.
    """
    my, mx = np.nonzero(mcu_mask)
    tiles = mcu_tiles(target, my, mx, mcu_h, mcu_w)
    n = len(tiles)
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    channels = target.shape[2]
    mosaic = np.full((rows * cols, mcu_h, mcu_w, channels), 128, dtype=np.uint8)
    mosaic[:n] = tiles
    mosaic = np.ascontiguousarray(mosaic.reshape(rows, cols, mcu_h, mcu_w, channels).transpose(0, 2, 1, 3, 4)
                                  .reshape(rows * mcu_h, cols * mcu_w, channels))
    ref = jpeglib.from_spatial(mosaic)
    ref.samp_factor = np.array([[v, h] for h, v in factors])
    ref.write_spatial(str(tmp), qt=np.asarray(qt), quant_tbl_no=np.asarray(quant_tbl_no))
    decoded, _ = _decode(tmp.read_bytes())
    err = np.abs(decoded.astype(np.int16) - mosaic).reshape(rows, mcu_h, cols, mcu_w, channels).transpose(0, 2, 1, 3, 4)
    err = err.reshape(rows * cols, mcu_h, mcu_w, channels)[:n]
    return float(err.mean()), int(err.max())
