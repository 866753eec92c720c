"""Reading and writing photos: EXIF orientation, colour profiles, alpha and safe writes.

``load_image`` gives every supported photo as the library's common form, an (H, W, 3) uint8
RGB array upright as the camera meant it, and keeps what ``save_image`` needs to write the
result back like the input (EXIF, ICC profile, alpha, and for grey, 16-bit and CMYK photos
their own samples: kinds.py). Any file a user can hand us that is not a readable JPEG, PNG or
WebP raises ``BadInputError`` with one line naming the file.

Writes are atomic (atomic.py): a temporary file in the destination folder, fsync, then
``os.replace``, so a crash or a full disk never leaves a half-written photo under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Photos over MAX_PIXELS are refused by load_image itself, with one clear line; Pillow's warning
# for big ones is noise. Set once here: warnings.catch_warnings() around each open is not
# thread-safe, and photos and references are decoded on two threads (apps/one_photo.py).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

from exgan_cli.errors import BadInputError, OutputError
from exgan_cli.files.atomic import atomic_write_bytes, atomic_writer, one_line as _one_line  # noqa: F401 (re-exported)
from exgan_cli.files.kinds import KindKept, as_source_kind, own_samples, source_samples
from exgan_cli.files.pixels import LUMA, icc_colour_space, luminance, pillow_mode, to_rgb_and_alpha  # noqa: F401 (LUMA, luminance: re-exported)

# Decompression-bomb guard: a photo above this many pixels is refused before it is decoded
# (250 MP = a 20,000 x 12,500 panorama; decoded it alone takes 750 MB as RGB). Pillow's own
# guard is set to the same limit so that it does not refuse smaller photos first (its default
# of ~89 MP would reject some real panoramas).
MAX_PIXELS = 250_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Pillow format name for each output suffix we write.
SUFFIX_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")
IMAGE_SUFFIXES = tuple(SUFFIX_FORMATS)

_ORIENTATION = 0x0112  # EXIF tag


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, EXIF orientation already applied
    path: Path  # the file it was read from
    format: str  # "JPEG" | "PNG" | "WEBP"
    exif: bytes | None  # raw EXIF (Orientation reset to 1), written back on save
    icc: bytes | None  # RGB ICC profile, written back on save (None: sRGB assumed)
    alpha: np.ndarray | None  # (H, W) uint8 alpha of an RGBA/LA/transparent source, else None
    source_mode: str  # the file's Pillow mode: "RGB", "L", "CMYK", "I;16", "RGBA", "P", ...
    sha256: str | None = None  # of the bytes decoded: a later patch of the file knows it still holds
    # exactly these pixels without decoding it again (jpeg_patch.patch_jpeg)
    samples: np.ndarray | None = None  # the file's own 16-bit or CMYK samples, upright (kinds.source_samples)
    source_icc: bytes | None = None  # the file's grey or CMYK ICC profile, written back with its kind

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, after orientation."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def _bad(path: Path, reason: str) -> BadInputError:
    return BadInputError(f"{path}: {reason}")


def check_photo_path(path: str | os.PathLike) -> Path:
    """BadInputError unless ``path`` names a file with bytes in it: missing, a folder (one photo is
    wanted), something else (a device, a socket), or empty."""
    path = Path(path)
    if path.is_dir():
        raise _bad(path, "is a folder, not a photo (give one photo file; `exgan batch` takes a folder)")
    if not path.exists():
        raise _bad(path, "no such file")
    if not path.is_file():
        raise _bad(path, "not a regular file")
    if path.stat().st_size == 0:
        raise _bad(path, "empty file (0 bytes)")
    return path


def _open(path: Path, source: str | os.PathLike | IO[bytes]) -> Image.Image:
    """Pillow's lazy open of ``source`` (the photo at ``path``), its header held to what
    load_image reads: a JPEG, PNG or WebP of at most MAX_PIXELS; BadInputError (one line) if not."""
    try:
        im = Image.open(source)
    except UnidentifiedImageError:
        raise _bad(path, "not an image, or a corrupt one (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise _bad(path, f"image too large ({_one_line(e)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _bad(path, f"cannot read image ({_one_line(e)})") from None
    fmt, (w, h) = im.format or "unknown", im.size
    problem = (f"unsupported format {fmt} (use JPEG, PNG or WebP)" if fmt not in SUPPORTED_FORMATS
               else f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP > {MAX_PIXELS / 1e6:.0f} MP limit)" if w * h > MAX_PIXELS
               else "image has no pixels" if w == 0 or h == 0 else None)
    if problem:
        im.close()
        raise _bad(path, problem)
    return im


def check_photo(path: str | os.PathLike) -> None:
    """BadInputError, before any work, for a photo load_image would refuse by its file or header
    (its pixels are decoded, and a truncated or corrupt one refused, by load_image itself)."""
    path = check_photo_path(path)
    _open(path, path).close()


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read a JPEG, PNG or WebP photo as upright RGB; BadInputError (one line) if it can't."""
    path = check_photo_path(path)
    # A truncated photo must fail, not come back with a grey bottom half.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        data = path.read_bytes()  # read once: decoded from memory, and its digest kept
    except OSError as e:
        raise _bad(path, f"cannot read file ({_one_line(e)})") from None
    with _open(path, io.BytesIO(data)) as im:
        fmt = im.format or "unknown"
        source_mode = pillow_mode(im)
        try:
            im.load()  # decode everything now: truncation and corruption surface here
            exif = im.getexif()
            orientation = exif.get(_ORIENTATION, 1)
            icc = im.info.get("icc_profile") or None
            upright = ImageOps.exif_transpose(im) if orientation not in (1, None) else im
            pixels, alpha = to_rgb_and_alpha(upright, icc)
            samples = source_samples(upright, data, source_mode, orientation or 1, pixels)
        except Image.DecompressionBombError as e:
            raise _bad(path, f"image too large ({_one_line(e)})") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as e:
            raise _bad(path, f"truncated or corrupt image ({_one_line(e)})") from None
        exif_bytes: bytes | None = None
        if len(exif):
            if _ORIENTATION in exif:
                exif[_ORIENTATION] = 1  # the pixels are upright now
            try:
                exif_bytes = exif.tobytes()
            except Exception:  # malformed EXIF: keep the photo, drop the metadata
                exif_bytes = None
        source_icc = icc if icc is not None and icc_colour_space(icc) in ("GRAY", "CMYK") else None
        if icc is not None and (source_mode == "CMYK" or icc_colour_space(icc) != "RGB"):
            # A CMYK profile was applied above; a grey (or broken) one cannot describe the
            # RGB pixels we hand back. Without a profile viewers assume sRGB.
            icc = None
    return LoadedImage(
        pixels=pixels, path=path, format=fmt, exif=exif_bytes, icc=icc, alpha=alpha, source_mode=source_mode,
        sha256=hashlib.sha256(data).hexdigest(), samples=samples, source_icc=source_icc,
    )


# ---------------------------------------------------------------------------------------
# Writing


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (through links too); a path that does not exist names none."""
    a, b = Path(a), Path(b)
    try:
        return (a.exists() and b.exists() and os.path.samefile(a, b)) or a.resolve() == b.resolve()
    except OSError:
        return a.resolve() == b.resolve()


def check_output(path: str | os.PathLike, *, overwrite: bool, inputs: Sequence[str | os.PathLike] = (), image: bool = False) -> None:
    """Refuse, before any work, an output that is one of the ``inputs``, exists (unless
    ``overwrite``) or has no folder; with ``image``, also a suffix no photo format has.
    Every command checks its outputs here, so they all refuse the same things the same way."""
    path = Path(path)
    if image:
        output_format(path)
    if any(same_file(path, p) for p in inputs):
        raise OutputError(f"{path}: refusing to write over the input photo")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")


def output_format(path: str | os.PathLike) -> str:
    """Pillow format for an output path from its suffix; OutputError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        shown = suffix or "(no suffix)"
        raise OutputError(f"{path}: cannot write {shown} files (use .jpg, .jpeg, .png or .webp)")
    return SUFFIX_FORMATS[suffix]


@dataclass(frozen=True)
class SaveInfo:
    """How ``save_image_info`` wrote a photo.

    ``method``: "patched" (JPEG in, JPEG out: only the 8x8 blocks the retouch changed were
    re-encoded, with the input's own quantisation tables and sampling; every other block is
    bit-identical to the input's, see jpeg_patch.py) or "full" (the whole image encoded).
    ``reason`` says why a save was "full" (None when patched).
    """

    path: Path
    method: str  # "patched" | "full"
    reason: str | None = None
    changed_mcus: int | None = None  # patched: MCUs re-encoded, of total_mcus
    total_mcus: int | None = None
    changed_blocks: int | None = None  # patched: 8x8 component blocks whose coefficients changed
    sampling: str | None = None  # patched: the input's (and output's) chroma sampling, "4:2:0", ...
    size_ratio: float | None = None  # patched: output bytes / input bytes
    mean_error: float | None = None  # patched: mean |decoded - retouched| in the re-encoded MCUs
    max_error: int | None = None
    coding: str | None = None  # patched: the output's scans, "sequential" or "progressive"
    input_coding: str | None = None  # patched: the input's (a progressive input is written sequential,
    # the same coefficients hence the same pixels, when that keeps the size within 5%: 4x faster)
    kind: str | None = None  # full: the input's kind of image kept ("16-bit grey", "CMYK", ...; kinds.py)
    lost: str | None = None  # full: what of the input's kind the output format could not keep, one line

    def to_dict(self) -> dict:
        d = {"path": str(self.path), "method": self.method, "reason": self.reason}
        d.update({k: v for k, v in (("kind", self.kind), ("lost", self.lost)) if v})
        if self.method == "patched":
            d.update(changed_mcus=self.changed_mcus, total_mcus=self.total_mcus, changed_blocks=self.changed_blocks,
                     sampling=self.sampling, size_ratio=round(float(self.size_ratio or 0), 4),
                     mean_error=round(float(self.mean_error or 0), 3), max_error=self.max_error,
                     coding=self.coding, input_coding=self.input_coding)
        return d

    def describe(self) -> str:
        """One line for logs: how the file was written."""
        if self.method == "patched":
            return (f"{self.path}: JPEG patched: {self.changed_mcus} of {self.total_mcus} MCUs re-encoded with the "
                    f"input's own tables ({self.sampling}), every other block unchanged; size {self.size_ratio:.3f}x"
                    + (f"; {self.input_coding} scans written {self.coding}" if self.coding != self.input_coding else ""))
        kind = f"; {self.kind} as the input" if self.kind else ""
        return (f"{self.path}: encoded in full" + (f" ({self.reason})" if self.reason else "") + kind
                + (f"; {self.lost}" if self.lost else ""))


def save_image(
    pixels: np.ndarray,
    path: str | os.PathLike,
    like: LoadedImage | None = None,
    *,
    overwrite: bool = False,
    quality: int = 95,
    keep_kind: bool = True,
) -> Path:
    """Write an (H, W, 3) uint8 RGB array to ``path``; format from the suffix. Returns the path.

    See ``save_image_info``, which this calls, for how; it also says whether a JPEG was patched.
    """
    return save_image_info(pixels, path, like, overwrite=overwrite, quality=quality, keep_kind=keep_kind).path


def _patchable(fmt: str, like: LoadedImage | None) -> bool:
    """JPEG in, JPEG out: save_image_info patches the input's blocks instead of encoding."""
    return fmt == "JPEG" and like is not None and like.format == "JPEG"


def prepare_save(path: str | os.PathLike, like: LoadedImage) -> None:
    """Start, on another thread, the part of a later ``save_image_info(pixels, path, like)`` that
    does not depend on the pixels: reading the input JPEG's coefficients for the patch. Best
    effort: the save itself reports any problem. ``drop_prepared`` frees it if no save comes."""
    from exgan_cli.files.jpeg_patch import prefetch_coefficients

    with contextlib.suppress(OutputError):
        if _patchable(output_format(path), like) and like.sha256:
            prefetch_coefficients(like.path, like.sha256)


def drop_prepared(like: LoadedImage) -> None:
    """Forget what ``prepare_save`` read for ``like`` (after a run that wrote nothing)."""
    from exgan_cli.files.jpeg_patch import drop_prefetched

    drop_prefetched(like.sha256)


def _patch(pixels: np.ndarray, path: Path, like: LoadedImage, keep_kind: bool, overwrite: bool) -> tuple[SaveInfo | None, str]:
    """The input JPEG patched and written to ``path`` (its SaveInfo), or (None, why not)."""
    from exgan_cli.files.jpeg_patch import CannotPatch, patch_jpeg

    try:
        target, base = own_samples(pixels, like) if keep_kind else (pixels, like.pixels)  # a grey JPEG: in grey
        patched = patch_jpeg(like.path, target, base, like.sha256)
    except CannotPatch as e:
        return None, f"input not patchable: {e}"
    except Exception as e:  # unreadable input, a libjpeg error, a bug: the photo is still written, in full
        return None, f"patching failed: {type(e).__name__}: {_one_line(e)}"
    atomic_write_bytes(path, patched.data, overwrite=overwrite)
    return SaveInfo(
        path=path, method="patched", changed_mcus=patched.changed_mcus, total_mcus=patched.total_mcus,
        changed_blocks=patched.changed_blocks, sampling=patched.sampling, size_ratio=patched.size_ratio,
        mean_error=patched.mean_error, max_error=patched.max_error, coding=patched.coding,
        input_coding="progressive" if patched.progressive else "sequential",
    ), ""


def save_image_info(
    pixels: np.ndarray,
    path: str | os.PathLike,
    like: LoadedImage | None = None,
    *,
    overwrite: bool = False,
    quality: int = 95,
    keep_kind: bool = True,
) -> SaveInfo:
    """Write an (H, W, 3) uint8 RGB array to ``path``; format from the suffix.

    JPEG in (``like``, read from a file still there) and JPEG out: the input file is patched,
    only the blocks whose pixels changed are re-encoded with its own quantisation tables and
    chroma sampling, every other block keeps its coefficients bit for bit, and all of the
    input's metadata segments (EXIF with its orientation, ICC, XMP, comments) are kept byte
    for byte (jpeg_patch.py). When that cannot be done or does not verify, and for every other
    case, the whole image is encoded: with ``like`` its EXIF (orientation 1) and ICC profile
    are written back, and its alpha too when the output is PNG or WebP and the size is
    unchanged; JPEG and WebP use ``quality``, JPEG keeps full chroma resolution (4:4:4). With
    ``keep_kind`` a grey, 16-bit or CMYK input is written as that kind, as far as the format holds
    it, only the changed pixels converted (kinds.py; off for drawings, which are not retouches).
    Refuses to write over the input photo, and over an existing file unless ``overwrite``.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"save_image needs (H, W, 3) uint8 RGB, got {pixels.dtype} {pixels.shape}")
    path = Path(path)
    fmt = output_format(path)
    if like is not None and same_file(path, like.path):
        raise OutputError(f"{path}: refusing to write over the input photo")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output already exists (use --overwrite to replace it)")

    if _patchable(fmt, like):
        patched, reason = _patch(pixels, path, like, keep_kind, overwrite)
        if patched is not None:
            return patched
    elif like is None:
        reason = "no input photo to patch"
    else:
        reason = f"{like.format} input, {fmt} output" if like.format != fmt else f"{fmt} output"

    kept = as_source_kind(pixels, like, fmt) if like is not None and keep_kind else KindKept(None)
    info = SaveInfo(path=path, method="full", reason=reason, kind=kept.kind, lost=kept.lost)
    if kept.png is not None:  # 16-bit RGB(A) PNG
        atomic_write_bytes(path, kept.png, overwrite=overwrite)
        return info
    im = kept.image or Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    params: dict = {}
    if like is not None:
        if kept.image is None and like.alpha is not None and fmt in ("PNG", "WEBP") and like.alpha.shape == pixels.shape[:2]:
            im.putalpha(Image.fromarray(np.ascontiguousarray(like.alpha), "L"))
        if kept.icc or (like.icc and kept.image is None):
            params["icc_profile"] = kept.icc or like.icc
        if like.exif:
            # A JPEG APP1 segment holds at most 65,533 bytes; a longer EXIF (huge maker notes)
            # is dropped rather than failing the whole write.
            if fmt != "JPEG" or len(like.exif) <= 65533:
                params["exif"] = like.exif
    if fmt == "JPEG":
        # No optimize=True: its second Huffman pass doubles the encode time for ~5% smaller files.
        params.update(quality=int(quality), subsampling=0)
    elif fmt == "WEBP":
        params.update(quality=int(quality), method=4)
    with atomic_writer(path, "wb", overwrite=overwrite) as f:
        im.save(f, format=fmt, **params)
    return info
