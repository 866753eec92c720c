"""A retouched JPEG is patched, not recompressed: only the changed MCUs are re-encoded.

On real photos (tests/data) and on variants made from them here (4:4:4, 4:2:2, progressive,
odd sizes, EXIF orientations, every kind of metadata): outside the changed MCUs the output's DCT
coefficients are the input's, bit for bit, and its decoded pixels too; inside, the error is
that of a fresh encode with the file's own tables; the size stays within 5%.
"""

from __future__ import annotations

import dataclasses

import io
import json
import shutil
from pathlib import Path

import jpeglib
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin
from typer.testing import CliRunner

from exgan_cli.files import jpeg_markers, jpeg_patch
from exgan_cli.files.images import load_image, save_image, save_image_info

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, DATA, GROUP, POWELL

EYES = POWELL[0]  # the pixels pasted in as a stand-in for new eyes: another real photo
PORTRAIT = DATA / "photos" / "img6.jpg"  # progressive, 4:4:4, 750 x 1050


def retouch(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A stand-in for the eye retouch: a crop of another real photo blended into ``box``
    (x0, y0, x1, y1) with a feathered edge, so the change fades out as the real one does."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    other = np.asarray(Image.open(EYES).convert("RGB")).astype(np.float64)
    patch = other[95 - h // 2: 95 - h // 2 + h, 125 - w // 2: 125 - w // 2 + w]
    yy, xx = np.mgrid[0:h, 0:w]
    edge = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))
    alpha = np.clip((edge + 1) / 6, 0, 1)[..., None]
    out = pixels.copy()
    region = out[y0:y1, x0:x1].astype(np.float64)
    out[y0:y1, x0:x1] = np.clip(np.rint(alpha * patch + (1 - alpha) * region), 0, 255).astype(np.uint8)
    return out


def coefficients(path: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """DCT coefficients of Y, Cb, Cr, the quantisation tables and the (v, h) sampling factors."""
    j = jpeglib.read_dct(str(path))
    return [np.array(j.Y), np.array(j.Cb), np.array(j.Cr)], np.array(j.qt), np.array(j.samp_factor)


def changed_mcus_in_coefficients(a: Path, b: Path) -> np.ndarray:
    """(rows, cols) of MCUs: True where any component block's coefficients differ."""
    (ca, qa, fa), (cb, qb, fb) = coefficients(a), coefficients(b)
    assert np.array_equal(qa, qb) and np.array_equal(fa, fb)  # same tables, same sampling
    vmax, hmax = fa[:, 0].max(), fa[:, 1].max()
    rows, cols = -(-ca[0].shape[0] // vmax), -(-ca[0].shape[1] // hmax)
    mask = np.zeros((rows, cols), dtype=bool)
    for x, y, (v, h) in zip(ca, cb, fa):
        assert x.shape == y.shape
        by, bx = np.nonzero((x != y).any(axis=(2, 3)))
        mask[by // v, bx // h] = True
    return mask


def mcu_mask_of(changed: np.ndarray, mcu: tuple[int, int]) -> np.ndarray:
    mh, mw = mcu
    rows, cols = -(-changed.shape[0] // mh), -(-changed.shape[1] // mw)
    padded = np.zeros((rows * mh, cols * mw), dtype=bool)
    padded[: changed.shape[0], : changed.shape[1]] = changed
    return padded.reshape(rows, mh, cols, mw).any(axis=(1, 3))


def pixel_mask(mask: np.ndarray, mcu: tuple[int, int], shape: tuple[int, int], grow: int = 0) -> np.ndarray:
    px = np.repeat(np.repeat(mask, mcu[0], axis=0), mcu[1], axis=1)[: shape[0], : shape[1]]
    if grow:
        padded, out = np.pad(px, grow), np.zeros_like(px)
        for dy in range(2 * grow + 1):
            for dx in range(2 * grow + 1):
                out |= padded[dy: dy + shape[0], dx: dx + shape[1]]
        px = out
    return px


def decode(path: Path) -> np.ndarray:
    """Stored pixels (no EXIF orientation applied)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# Inputs: real files as they are, and variants of a real photo made by Pillow.
VARIANTS = {
    # name: (how to make it, the change's box as fractions of the image)
    "baseline-420 (real LFW file)": (lambda p: shutil.copyfile(CHAVEZ_CLOSED, p), (0.35, 0.38, 0.65, 0.5)),
    "progressive-420 (real group photo)": (lambda p: shutil.copyfile(GROUP, p), (0.3, 0.3, 0.42, 0.36)),
    "progressive-444 (real portrait)": (lambda p: shutil.copyfile(PORTRAIT, p), (0.35, 0.35, 0.6, 0.42)),
    "baseline-444": (lambda p: Image.open(GROUP).save(p, quality=90, subsampling=0), (0.3, 0.3, 0.42, 0.36)),
    "baseline-422-optimised": (lambda p: Image.open(GROUP).save(p, quality=70, subsampling=1, optimize=True),
                               (0.3, 0.3, 0.42, 0.36)),
    "baseline-420-restart-markers": (lambda p: Image.open(GROUP).save(p, quality=85, restart_marker_rows=1),
                                     (0.3, 0.3, 0.42, 0.36)),
    "progressive-420-odd-size-corner": (
        lambda p: Image.open(GROUP).crop((3, 5, 304, 208)).save(p, quality=80, progressive=True),
        (0.8, 0.8, 1.0, 1.0),  # the change reaches the partial MCUs at the right and bottom edges
    ),
}


@pytest.fixture(params=list(VARIANTS), ids=lambda name: name.split(" ")[0])
def variant(request, tmp_path) -> tuple[str, Path, tuple[int, int, int, int]]:
    make, (fx0, fy0, fx1, fy1) = VARIANTS[request.param]
    path = tmp_path / "in.jpg"
    make(path)
    w, h = Image.open(path).size
    return request.param, path, (int(fx0 * w), int(fy0 * h), int(fx1 * w), int(fy1 * h))


def test_only_the_changed_mcus_are_re_encoded(variant, tmp_path):
    name, src, box = variant
    like = load_image(src)
    result = retouch(like.pixels, box)
    info = save_image_info(result, tmp_path / "out.jpg", like=like)
    assert info.method == "patched", info.reason
    out = info.path

    _, _, factors = coefficients(src)
    mcu = (8 * int(factors[:, 0].max()), 8 * int(factors[:, 1].max()))
    changed = (result != like.pixels).any(axis=2)
    expected = mcu_mask_of(changed, mcu)
    assert info.changed_mcus == expected.sum() and info.total_mcus == expected.size

    # (a) Every block outside the changed MCUs keeps its coefficients, bit for bit, and so its
    # decoded pixels: exactly outside the MCUs, one pixel further out where chroma is subsampled
    # (fancy upsampling blends a changed MCU's chroma into its neighbours' edge pixels).
    in_coeffs = changed_mcus_in_coefficients(src, out)
    assert in_coeffs.any() and not (in_coeffs & ~expected).any()
    subsampled = (factors != factors[0]).any()
    near = pixel_mask(expected, mcu, changed.shape, grow=1 if subsampled else 0)
    before, after = decode(src), decode(out)
    assert np.array_equal(after[~near], before[~near])
    untouched = ~changed
    assert (after != before).any(axis=2)[untouched].mean() < 0.02  # the old full encode: 25-45%

    # (b) Inside: the error of a fresh encode of the whole photo with the same tables and
    # sampling (Pillow, independent of the patcher's own check), or better.
    with Image.open(src) as im:
        tables, sampling = im.quantization, JpegImagePlugin.get_sampling(im)
    buf = io.BytesIO()
    Image.fromarray(result).save(buf, "JPEG", qtables=tables, subsampling=sampling)
    fresh = np.asarray(Image.open(buf))
    inside = pixel_mask(expected, mcu, changed.shape)
    ours = np.abs(after.astype(int) - result)[inside]
    ref = np.abs(fresh.astype(int) - result)[inside]
    assert ours.mean() <= 1.25 * ref.mean() + 0.25, (name, ours.mean(), ref.mean())
    assert ours.max() <= 1.25 * ref.max() + 2, (name, ours.max(), ref.max())
    assert info.mean_error == pytest.approx(ours.mean(), abs=1e-6)

    # (c) Same tables and sampling; the size within 5%. A sequential input stays sequential; a
    # progressive one is written with sequential scans (the same coefficients, checked in (a))
    # where that keeps the size within 5% (the portrait), else progressive (the group photo's
    # sequential rewrite would be 5.7% larger), and the report says which.
    with Image.open(src) as a, Image.open(out) as b:
        assert a.quantization == b.quantization
        assert JpegImagePlugin.get_sampling(a) == JpegImagePlugin.get_sampling(b)
        progressive_in, progressive_out = bool(a.info.get("progressive")), bool(b.info.get("progressive"))
    assert progressive_in or not progressive_out
    assert info.coding == ("progressive" if progressive_out else "sequential")
    assert info.input_coding == ("progressive" if progressive_in else "sequential")
    assert ("progressive scans written sequential" in info.describe()) == (progressive_in and not progressive_out)
    assert abs(out.stat().st_size / src.stat().st_size - 1) <= 0.05
    assert info.size_ratio == pytest.approx(out.stat().st_size / src.stat().st_size)


def test_metadata_segments_kept_byte_for_byte(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "ExganTestCam"
    exif[0x0110] = "Model 1"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    src = tmp_path / "meta.jpg"
    Image.open(CHAVEZ_CLOSED).save(src, quality=85, exif=exif, icc_profile=icc, xmp=xmp, comment=b"exgan test comment")
    like = load_image(src)
    info = save_image_info(retouch(like.pixels, (90, 95, 160, 125)), tmp_path / "out.jpg", like=like)
    assert info.method == "patched", info.reason

    def meta(path: Path) -> list[bytes]:
        layout = jpeg_markers.parse(path.read_bytes())
        return [s.data for s in layout.header if 0xE0 <= s.marker <= 0xEF or s.marker == 0xFE]

    segments = meta(src)
    assert len(segments) >= 5  # JFIF, EXIF, XMP, ICC, COM
    assert meta(info.path) == segments  # same segments, same order, same bytes
    with Image.open(info.path) as im:
        assert im.getexif()[0x010F] == "ExganTestCam"
        assert im.info["icc_profile"] == icc and im.info["xmp"] == xmp and im.info["comment"] == b"exgan test comment"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_mapped_back_to_the_stored_pixels(orientation, tmp_path):
    # Stored pixels that Pillow turns upright with this orientation (a non-square real photo).
    upright = Image.open(GROUP).crop((0, 0, 400, 300))
    stored = upright.transpose({2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                                6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
                                8: Image.Transpose.ROTATE_270}[orientation]) if orientation > 1 else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "in.jpg"
    stored.save(src, quality=88, exif=exif)
    like = load_image(src)
    assert like.size == (400, 300)
    result = retouch(like.pixels, (150, 100, 230, 140))
    info = save_image_info(result, tmp_path / "out.jpg", like=like)
    assert info.method == "patched", info.reason
    again = load_image(info.path)  # upright again, through the kept orientation tag
    assert Image.open(info.path).getexif().get(0x0112, 1) == orientation
    changed = (result != like.pixels).any(axis=2)
    assert np.array_equal(again.pixels[:80], like.pixels[:80])  # far from the change: identical
    assert np.abs(again.pixels.astype(int) - result)[changed].mean() < 3  # the change is where it was put


@pytest.mark.parametrize("orientation", range(1, 9))
def test_to_stored_inverts_pillows_exif_transpose(orientation):
    stored = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im = Image.fromarray(stored)
    im.info["exif"] = exif.tobytes()
    upright = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(jpeg_patch.to_stored(upright, orientation), stored)


def test_nothing_changed_writes_the_input_byte_for_byte(tmp_path):
    like = load_image(GROUP)
    info = save_image_info(like.pixels, tmp_path / "same.jpg", like=like)
    assert info.method == "patched" and info.changed_mcus == 0
    assert info.path.read_bytes() == GROUP.read_bytes()


@pytest.mark.parametrize("quality,orientation", [(90, 1), (75, 6)])
def test_grey_jpeg_is_patched_in_grey(tmp_path, quality, orientation):
    """A black-and-white JPEG: only the MCUs around the change are re-encoded, in grey (the new
    pixels' luminance), every other block keeps its coefficients; stored turned, it stays so."""
    src = tmp_path / "grey.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    grey = Image.open(CHAVEZ_CLOSED).convert("L")
    (grey.rotate(90, expand=True) if orientation == 6 else grey).save(src, quality=quality, exif=exif)
    like = load_image(src)
    new = retouch(like.pixels, (90, 95, 160, 125))
    info = save_image_info(new, tmp_path / "out.jpg", like=like)
    assert info.method == "patched" and info.sampling == "grey" and 0 < info.changed_mcus < info.total_mcus // 4
    with Image.open(src) as a, Image.open(info.path) as b:
        assert b.mode == "L" and b.getexif().get(0x0112, 1) == orientation and b.quantization == a.quantization
        before, after = np.asarray(a).astype(int), np.asarray(b).astype(int)
    ca, cb = jpeglib.read_dct(str(src)).Y, jpeglib.read_dct(str(info.path)).Y
    blocks = (np.array(ca) != np.array(cb)).any(axis=(2, 3))
    assert blocks.sum() == info.changed_blocks
    moved = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[: before.shape[0], : before.shape[1]]
    assert np.array_equal(before[~moved], after[~moved])  # every other pixel decodes as before
    assert np.abs(before[moved] - after[moved]).mean() > 3  # the change is there
    drawn = save_image_info(new, tmp_path / "drawn.jpg", like=like, keep_kind=False)  # RGB marks: not grey
    assert drawn.method == "full" and "3-channel pixels for a 1-component JPEG" in drawn.reason


def test_grey_jpeg_with_2x2_factors_patched_at_its_edges(tmp_path):
    """A grey JPEG whose one component says 2x2 sampling (some encoders write it), 187 x 201 px
    (partial blocks at the right and bottom): a change reaching the corner is patched, and every
    block away from it keeps its coefficients."""
    src = tmp_path / "grey22.jpg"
    grey = np.asarray(Image.open(CHAVEZ_CLOSED).convert("L"))[:187, :201]
    jpeg = jpeglib.from_spatial(np.ascontiguousarray(grey[..., None]))
    jpeg.samp_factor = np.array([[2, 2]])
    jpeg.write_spatial(str(src), qt=85)
    like = load_image(src)
    new = retouch(like.pixels, (160, 150, 201, 187))
    info = save_image_info(new, tmp_path / "out.jpg", like=like)
    assert info.method == "patched" and info.sampling == "grey", info.describe()
    ca, cb = np.array(jpeglib.read_dct(str(src)).Y), np.array(jpeglib.read_dct(str(info.path)).Y)
    blocks = (ca != cb).any(axis=(2, 3))
    assert blocks.sum() == info.changed_blocks > 0 and not blocks[: 144 // 8].any() and not blocks[:, : 144 // 8].any()
    with Image.open(info.path) as out:
        got = np.asarray(out).astype(int)
    want = np.rint(new[..., 0] * 0.299 + new[..., 1] * 0.587 + new[..., 2] * 0.114)
    assert np.abs(got[150:, 160:] - want[150:, 160:]).mean() < 3  # the change is there, in grey


def test_arithmetic_coded_jpeg_falls_back(tmp_path):
    src = tmp_path / "arith.jpg"
    with jpeglib.version("turbo210"):
        jpeglib.read_dct(str(CHAVEZ_CLOSED)).write_dct(str(src), flags=["+ARITH_CODE"])
    like = load_image(src)
    info = save_image_info(retouch(like.pixels, (90, 95, 160, 125)), tmp_path / "out.jpg", like=like)
    assert info.method == "full" and info.reason == "input not patchable: arithmetic-coded JPEG"


def test_failed_verification_falls_back(tmp_path, monkeypatch):
    """A patch that would touch a block outside the change is refused, and the photo written
    in full: here a forced bug changes the first block of the image."""
    real_apply = jpeg_patch.apply_change

    def buggy_apply(comps, *args, **kwargs):
        n = real_apply(comps, *args, **kwargs)
        comps[0][0, 0, 0, 0] += 5
        return n

    monkeypatch.setattr(jpeg_patch, "apply_change", buggy_apply)
    like = load_image(CHAVEZ_CLOSED)
    info = save_image_info(retouch(like.pixels, (90, 95, 160, 125)), tmp_path / "out.jpg", like=like)
    assert info.method == "full" and "outside the re-encoded blocks changed" in info.reason
    assert "encoded in full" in info.describe()


def test_input_changed_since_loading_falls_back(tmp_path):
    src = tmp_path / "in.jpg"
    shutil.copyfile(CHAVEZ_CLOSED, src)
    like = load_image(src)
    Image.open(GROUP).resize((250, 250)).save(src)  # replaced behind our back, same size
    info = save_image_info(retouch(like.pixels, (90, 95, 160, 125)), tmp_path / "out.jpg", like=like)
    assert info.method == "full" and "no longer holds" in info.reason


def test_progressive_input_stays_progressive_when_sequential_would_change_the_size(tmp_path, monkeypatch):
    """The sequential rewrite of a progressive file is kept only within the 5% size tolerance:
    here it is made to overshoot, and the progressive writer is used instead."""
    real_reencode, real_splice, tried = jpeg_patch._reencode, jpeg_patch.splice_metadata, []

    def spy_reencode(jpeglib_, data, layout, target, base, mcu_mask, coding, sha256=None):
        tried.append(coding)
        return real_reencode(jpeglib_, data, layout, target, base, mcu_mask, coding, sha256)

    def fat_sequential(layout, written):  # 10% of padding after a sequential file's end
        spliced = real_splice(layout, written)
        return spliced + bytes(len(spliced) // 10) if tried[-1] == "sequential" else spliced

    monkeypatch.setattr(jpeg_patch, "_reencode", spy_reencode)
    monkeypatch.setattr(jpeg_patch, "splice_metadata", fat_sequential)
    like = load_image(PORTRAIT)
    result = retouch(like.pixels, (260, 360, 450, 440))
    info = save_image_info(result, tmp_path / "out.jpg", like=like)
    assert info.method == "patched", info.reason
    assert tried == ["sequential", "progressive"] and info.coding == info.input_coding == "progressive"
    with Image.open(info.path) as im:
        assert im.info.get("progressive")
    assert abs(info.size_ratio - 1) <= 0.05
    changed = (result != like.pixels).any(axis=2)
    assert np.array_equal(decode(info.path)[~changed.any(axis=1)], decode(PORTRAIT)[~changed.any(axis=1)])


def test_the_photo_is_decoded_once_when_its_bytes_are_unchanged(tmp_path, monkeypatch):
    """load_image keeps the digest of the bytes it decoded: the patch then trusts the loaded
    pixels instead of decoding the photo again (it decodes only its own output, to verify it)."""
    decodes = []
    real_decode = jpeg_patch._decode
    photo_bytes = GROUP.read_bytes()
    monkeypatch.setattr(jpeg_patch, "_decode", lambda data: decodes.append(data == photo_bytes) or real_decode(data))
    like = load_image(GROUP)
    result = retouch(like.pixels, (90, 95, 160, 125))
    assert save_image_info(result, tmp_path / "a.jpg", like=like).method == "patched"
    assert decodes.count(True) == 0 and decodes.count(False) >= 1  # its output, verified; never the photo
    decodes.clear()
    assert jpeg_patch.patch_jpeg(GROUP, result, like.pixels).changed_mcus > 0  # no digest: decoded to check
    assert decodes.count(True) == 1


def test_prefetched_coefficients_give_the_same_file(tmp_path, monkeypatch):
    """prepare_save reads the input's coefficients ahead (open-eyes does it while it retouches):
    the patch uses them instead of reading the file again, and writes the same bytes; ahead-read
    coefficients of other bytes are never used."""
    from exgan_cli.files.images import prepare_save

    photo = tmp_path / "in.jpg"
    Image.open(GROUP).save(photo, quality=90)  # sequential: one read (a progressive one may need two)
    like = load_image(photo)
    result = retouch(like.pixels, (90, 95, 160, 125))
    plain = jpeg_patch.patch_jpeg(photo, result, like.pixels, like.sha256).data
    reads = []
    real_read = jpeg_patch._read_coefficients
    monkeypatch.setattr(jpeg_patch, "_read_coefficients", lambda data, lib: reads.append(lib) or real_read(data, lib))
    prepare_save(tmp_path / "a.jpg", like)
    jpeg_patch._PREFETCHED[like.sha256].result(timeout=60)
    assert reads == ["turbo210"]
    assert save_image_info(result, tmp_path / "a.jpg", like=like).method == "patched"
    assert reads == ["turbo210"]  # not read again
    assert (tmp_path / "a.jpg").read_bytes() == plain
    assert like.sha256 not in jpeg_patch._PREFETCHED  # used once, then dropped
    # a prefetch keyed by a digest the file does not have is ignored
    prepare_save(tmp_path / "b.jpg", dataclasses.replace(like, sha256="0" * 64))
    assert jpeg_patch.patch_jpeg(photo, result, like.pixels, like.sha256).data == plain
    assert reads == ["turbo210", "turbo210"]  # read for itself


def test_other_formats_are_encoded_in_full(tmp_path):
    like = load_image(CHAVEZ_CLOSED)
    result = retouch(like.pixels, (90, 95, 160, 125))
    assert save_image_info(result, tmp_path / "o.png", like=like).reason == "JPEG input, PNG output"
    assert save_image_info(result, tmp_path / "o.jpg").reason == "no input photo to patch"
    # save_image itself still returns the path
    assert save_image(result, tmp_path / "p.jpg", like=like) == tmp_path / "p.jpg"


def test_open_eyes_leaves_every_block_outside_the_eyes_bit_identical(tmp_path):
    """End to end with the bundled weights: the real closed-eyed photo, its open-eyed references
    (the self-check, which has tests of its own, is off: whatever the eyes, the file is the point)."""
    from exgan_cli.cli import app

    out, report = tmp_path / "open.jpg", tmp_path / "report.json"
    res = CliRunner().invoke(app, ["open-eyes", str(CHAVEZ_CLOSED), "--ref", str(CHAVEZ_OPEN[0]), "--ref",
                                   str(CHAVEZ_OPEN[1]), "-o", str(out), "--report", str(report), "--no-self-check"])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["faces"][0]["status"] == "retouched"
    save = data["save"]
    assert save["method"] == "patched" and save["sampling"] == "4:2:0", save
    assert 0 < save["changed_mcus"] < 0.1 * save["total_mcus"]
    assert "JPEG patched" in " ".join(res.output.split())  # said on the console too

    # Every MCU whose coefficients changed lies on the eyes (their mask boxes, grown by one MCU).
    mask = changed_mcus_in_coefficients(CHAVEZ_CLOSED, out)
    assert mask.sum() == save["changed_mcus"]
    eyes = np.zeros(mask.shape, dtype=bool)
    for x0, y0, x1, y1 in data["faces"][0]["mask_boxes"]:
        eyes[max(0, int(y0) // 16 - 1): int(y1) // 16 + 2, max(0, int(x0) // 16 - 1): int(x1) // 16 + 2] = True
    assert not (mask & ~eyes).any()
    before, after = decode(CHAVEZ_CLOSED), decode(out)
    near = pixel_mask(mask, (16, 16), before.shape[:2], grow=1)
    assert np.array_equal(after[~near], before[~near])
    assert abs(out.stat().st_size / CHAVEZ_CLOSED.stat().st_size - 1) <= 0.05
