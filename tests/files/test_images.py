"""images.py: loading every supported kind of photo, refusing bad ones, writing safely."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from exgan_cli.errors import BadInputError, OutputError
from exgan_cli.files.images import LoadedImage, atomic_write_bytes, atomic_writer, load_image, save_image

from conftest import GROUP, HIGHRES

ORIENTATION = 0x0112
MAKE = 0x010F


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "ExganTestCam"
    return exif


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    """A real photo (600 x 604, not square so a wrong rotation changes the shape)."""
    return np.asarray(Image.open(GROUP).convert("RGB"))


def _stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that applying ``orientation`` shows ``upright``."""
    return {
        3: np.rot90(upright, 2),
        6: np.rot90(upright, 1),  # displayed after rotating 90 deg clockwise
        8: np.rot90(upright, -1),  # displayed after rotating 90 deg counter-clockwise
        2: upright[:, ::-1],
    }[orientation]


# ---------------------------------------------------------------------------------------
# Loading


def test_load_real_jpeg():
    img = load_image(GROUP)
    assert isinstance(img, LoadedImage)
    assert img.pixels.shape == (604, 600, 3) and img.pixels.dtype == np.uint8
    assert img.pixels.flags["C_CONTIGUOUS"]
    assert img.format == "JPEG" and img.source_mode == "RGB"
    assert img.alpha is None and img.path == GROUP
    assert img.size == (600, 604)


@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
def test_exif_orientation_applied_png(tmp_path, upright, orientation):
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(np.ascontiguousarray(_stored_for(upright, orientation))).save(path, exif=_exif(orientation))
    img = load_image(path)
    assert np.array_equal(img.pixels, upright)  # lossless: exactly the upright photo
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "ExganTestCam"


def test_exif_orientation_applied_jpeg(tmp_path, upright):
    path = tmp_path / "rotated.jpg"
    stored = np.ascontiguousarray(_stored_for(upright, 6))
    Image.fromarray(stored).save(path, exif=_exif(6), quality=95, subsampling=0)
    img = load_image(path)
    assert img.pixels.shape == upright.shape
    assert np.abs(img.pixels.astype(int) - upright).mean() < 3.0


def test_exif_and_icc_kept_on_save(tmp_path, upright):
    src = tmp_path / "src.jpg"
    icc = _srgb_icc()
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(src, exif=_exif(6), icc_profile=icc)
    img = load_image(src)
    assert img.icc == icc
    for suffix in (".jpg", ".png", ".webp"):
        out = save_image(img.pixels, tmp_path / f"out{suffix}", like=img)
        with Image.open(out) as im:
            assert im.info.get("icc_profile") == icc, suffix
            exif = im.getexif()
            assert exif.get(MAKE) == "ExganTestCam", suffix
            if suffix == ".jpg":  # JPEG in, JPEG out: patched (jpeg_patch.py), stored as the input, tag kept
                assert exif.get(ORIENTATION) == 6 and im.size == (604, 600)
            else:  # encoded in full: stored upright
                assert exif.get(ORIENTATION) == 1 and im.size == (600, 604), suffix
        again = load_image(out)
        assert again.pixels.shape == upright.shape  # not rotated a second time
        if suffix == ".jpg":
            assert np.array_equal(again.pixels, img.pixels)  # nothing changed: not one pixel


def test_jpeg_saved_with_quality_and_444(tmp_path, upright):
    out = save_image(upright, tmp_path / "q.jpg")
    with Image.open(out) as im:
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    assert np.abs(load_image(out).pixels.astype(int) - upright).mean() < 2.0


def test_rgba_png_keeps_alpha(tmp_path, upright):
    alpha = np.tile(np.linspace(0, 255, upright.shape[1]).astype(np.uint8), (upright.shape[0], 1))
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([upright, alpha]), "RGBA").save(path)
    img = load_image(path)
    assert img.source_mode == "RGBA"
    assert np.array_equal(img.pixels, upright) and np.array_equal(img.alpha, alpha)
    out = save_image(img.pixels, tmp_path / "out.png", like=img)
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im)[:, :, 3], alpha)
    webp = save_image(img.pixels, tmp_path / "out.webp", like=img)
    with Image.open(webp) as im:
        assert im.mode == "RGBA"
        assert np.abs(np.asarray(im)[:, :, 3].astype(int) - alpha).max() <= 2
    jpg = save_image(img.pixels, tmp_path / "out.jpg", like=img)  # JPEG has no alpha
    with Image.open(jpg) as im:
        assert im.mode == "RGB"


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (40, 30), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.info["transparency"] = 0
    im.paste(0, (0, 0, 10, 30))
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)
    img = load_image(path)
    assert img.source_mode == "P"
    assert img.alpha is not None and img.alpha[:, :10].max() == 0 and img.alpha[:, 10:].min() == 255
    assert (img.pixels[:, 10:] == [255, 0, 0]).all()


def test_16bit_grayscale_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(3, axis=0)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)  # uint16 -> mode I;16, written as 16-bit grey PNG
    img = load_image(path)
    assert img.source_mode.startswith("I")
    expected = np.array([0, 1, 128, 255], dtype=np.uint8)
    for c in range(3):
        assert np.array_equal(img.pixels[0, :, c], expected)


def test_16bit_rgb(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), rgb16[:, :, ::-1])  # OpenCV writes BGR
    img = load_image(path)
    assert img.source_mode == "RGB;16"
    assert np.abs(img.pixels.astype(float) - rgb16 / 257.0).max() <= 1.0


def test_grayscale_jpeg(tmp_path, upright):
    grey = np.asarray(Image.fromarray(upright).convert("L"))
    path = tmp_path / "grey.jpg"
    Image.fromarray(grey, "L").save(path, quality=95)
    img = load_image(path)
    assert img.source_mode == "L" and img.pixels.shape == upright.shape
    assert np.array_equal(img.pixels[:, :, 0], img.pixels[:, :, 2])
    assert np.abs(img.pixels[:, :, 0].astype(int) - grey).mean() < 2.0


def test_cmyk_jpeg(tmp_path, upright):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(upright).convert("CMYK").save(path, quality=95)
    img = load_image(path)
    assert img.source_mode == "CMYK" and img.pixels.shape == upright.shape
    assert np.abs(img.pixels.astype(int) - upright).mean() < 6.0
    assert img.icc is None  # no CMYK profile is ever attached to the RGB pixels


def test_webp_round_trip(tmp_path, upright):
    out = save_image(upright, tmp_path / "x.webp")
    img = load_image(out)
    assert img.format == "WEBP" and img.pixels.shape == upright.shape
    assert np.abs(img.pixels.astype(int) - upright).mean() < 4.0


def test_png_lossless_round_trip(tmp_path, upright):
    out = save_image(upright, tmp_path / "x.png")
    assert np.array_equal(load_image(out).pixels, upright)


def test_highres_loads():
    img = load_image(HIGHRES)
    assert img.size == (2500, 1728)


# ---------------------------------------------------------------------------------------
# Bad inputs: one line, naming the file


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the data is a single pixel)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    raw = GROUP.read_bytes()
    buf = io.BytesIO()
    Image.open(GROUP).save(buf, "PNG")
    png = buf.getvalue()
    corrupt = bytearray(raw)
    corrupt[5000:9000] = bytes((i * 37) % 256 for i in range(4000))
    files = {
        "zero-byte": (tmp / "empty.jpg", b"", "empty"),
        "truncated jpeg": (tmp / "half.jpg", raw[: len(raw) // 2], "truncated"),
        "truncated jpeg end": (tmp / "cut.jpg", raw[:-300], "truncated"),
        "truncated png": (tmp / "half.png", png[: len(png) // 2], "truncated"),
        "corrupt jpeg": (tmp / "corrupt.jpg", bytes(corrupt), "corrupt"),
        "header only": (tmp / "header.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "image"),
        "text file": (tmp / "notes.jpg", b"just some text\n", "not an image"),
        "gif": (tmp / "anim.gif", None, "unsupported format GIF"),
        "bmp": (tmp / "pic.bmp", None, "unsupported format BMP"),
        "bomb": (tmp / "bomb.png", _png_with_size(20000, 20000), "too large"),
    }
    out = {}
    for name, (path, data, expect) in files.items():
        if data is None:
            Image.open(GROUP).save(path)
        else:
            path.write_bytes(data)
        out[name] = (path, expect)
    return out


def test_bad_inputs_raise_one_line_naming_file(tmp_path):
    for name, (path, expect) in _bad_files(tmp_path).items():
        with pytest.raises(BadInputError) as info:
            load_image(path)
        msg = str(info.value)
        assert str(path) in msg, name
        assert "\n" not in msg, name
        assert expect in msg, (name, msg)
        assert info.value.exit_code == 3


def test_missing_and_folder(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    folder = tmp_path / "folder.jpg"  # named like a photo: still said to be a folder
    folder.mkdir()
    with pytest.raises(BadInputError, match=r"folder\.jpg: is a folder, not a photo"):
        load_image(folder)


# ---------------------------------------------------------------------------------------
# Writing safely


def test_save_refuses_input_and_existing(tmp_path, upright):
    src = save_image(upright, tmp_path / "in.png")
    img = load_image(src)
    with pytest.raises(OutputError, match="input photo"):
        save_image(img.pixels, src, like=img, overwrite=True)
    with pytest.raises(OutputError, match="input photo"):  # another spelling of the same path
        save_image(img.pixels, tmp_path / "." / "in.png", like=img, overwrite=True)
    out = save_image(img.pixels, tmp_path / "out.png", like=img)
    before = out.read_bytes()
    with pytest.raises(OutputError, match="already exists") as info:
        save_image(np.zeros_like(upright), out, like=img)
    assert str(out) in str(info.value) and info.value.exit_code == 7
    assert out.read_bytes() == before
    save_image(np.zeros_like(upright), out, like=img, overwrite=True)
    assert load_image(out).pixels.max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # no temp files


def test_save_bad_suffix_and_folder(tmp_path, upright):
    with pytest.raises(OutputError, match=r"\.tif"):
        save_image(upright, tmp_path / "x.tif")
    with pytest.raises(OutputError, match="no suffix"):
        save_image(upright, tmp_path / "x")
    with pytest.raises(OutputError, match="does not exist"):
        save_image(upright, tmp_path / "missing" / "x.jpg")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_nothing(tmp_path, upright, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="No space left") as info:
        save_image(upright, tmp_path / "x.jpg")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_saved_file_has_normal_permissions(tmp_path, upright):
    out = save_image(upright, tmp_path / "x.jpg")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_write_bytes(tmp_path):
    path = tmp_path / "report.json"
    assert atomic_write_bytes(path, b'{"a": 1}') == path
    assert path.read_bytes() == b'{"a": 1}'
    atomic_write_bytes(path, b"{}")  # reports may be rewritten by default
    assert path.read_bytes() == b"{}"
    with pytest.raises(OutputError, match="already exists"):
        atomic_write_bytes(path, b"x", overwrite=False)
    with pytest.raises(RuntimeError):
        with atomic_writer(path, "w") as f:
            f.write("half a report")
            raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]

