"""kinds.py through images.save_image_info: grey, 16-bit and CMYK photos written back as such, only
the changed pixels converted; what a format cannot hold said on one line. Real photos, round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from exgan_cli.files.images import load_image, save_image_info
from exgan_cli.files.kinds import png16
from exgan_cli.files.pixels import luminance

from conftest import CHAVEZ_CLOSED

BOX = (slice(95, 125), slice(80, 170))  # rows, columns: "the eyes" these tests repaint


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.asarray(Image.open(CHAVEZ_CLOSED).convert("RGB"))


def retouched(img) -> np.ndarray:
    """The loaded photo with a red-brown block over the eyes: colour where a grey photo has none."""
    out = img.pixels.copy()
    out[BOX] = [170, 60, 40]
    return out


def outside(a: np.ndarray) -> np.ndarray:
    mask = np.ones(a.shape[:2], bool)
    mask[BOX] = False
    return a[mask]


def noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape)  # the low byte 8 bits cannot hold


def test_grey_stays_grey_with_grey_eyes(tmp_path, face):
    src = tmp_path / "grey.png"
    Image.fromarray(face).convert("L").save(src)
    img = load_image(src)
    grey = np.asarray(Image.open(src))
    new = retouched(img)
    for suffix in ("png", "jpg"):
        info = save_image_info(new, tmp_path / f"out.{suffix}", like=img)
        with Image.open(tmp_path / f"out.{suffix}") as out:
            assert out.mode == "L", suffix
            got = np.asarray(out)
        assert info.kind == "grey" and "grey as the input" in info.describe() and info.lost is None
        if suffix == "png":  # lossless: every other pixel exactly the input's, the eyes their luminance
            assert np.array_equal(outside(got), outside(grey))
            assert np.all(got[BOX] == round(float(luminance(np.array([170, 60, 40])))))
    info = save_image_info(new, tmp_path / "out.webp", like=img)  # WebP has no grey: RGB, the eyes still grey
    rgb = np.asarray(Image.open(tmp_path / "out.webp").convert("RGB")).astype(int)
    assert info.lost == "written as RGB (WebP has no grey), the new eyes grey" and info.lost in info.describe()
    assert np.abs(rgb[BOX][..., 0] - rgb[BOX][..., 2]).max() <= 6  # WebP's chroma rounding only


def test_16_bit_grey_keeps_16_bits(tmp_path, face):
    grey16 = (np.asarray(Image.fromarray(face).convert("L"), np.uint16) * 256 + noise(face.shape[:2], 0)).astype(np.uint16)
    src = tmp_path / "grey16.png"
    Image.fromarray(grey16).save(src)
    img = load_image(src)
    assert img.source_mode == "I;16" and np.array_equal(img.samples, grey16)
    info = save_image_info(retouched(img), tmp_path / "out.png", like=img)
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "I;16"
        got = np.asarray(out)
    assert np.array_equal(outside(got), outside(grey16))  # the low bytes kept, not rounded to 8 bits
    assert np.all(got[BOX] == round(float(luminance(np.array([170, 60, 40]))) * 257))
    assert info.kind == "16-bit grey"
    info = save_image_info(retouched(img), tmp_path / "out.jpg", like=img)  # JPEG: grey, 8 bits, said so
    assert Image.open(tmp_path / "out.jpg").mode == "L"
    assert info.lost == "written with 8 bits (JPEG has no 16)" and info.lost in info.describe()


@pytest.mark.parametrize("alpha", [False, True])
def test_16_bit_rgb_keeps_16_bits_profile_and_exif(tmp_path, face, alpha):
    rgb16 = (face.astype(np.uint16) * 256 + noise(face.shape, 1)).astype(np.uint16)
    if alpha:
        rgb16 = np.dstack([rgb16, np.full(face.shape[:2], 50000, np.uint16)])
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "ExganTestCam"
    src = tmp_path / "rgb16.png"
    src.write_bytes(png16(rgb16, icc, exif.tobytes()))
    img = load_image(src)
    assert img.source_mode == ("RGBA;16" if alpha else "RGB;16") and np.array_equal(img.samples, rgb16)
    info = save_image_info(retouched(img), tmp_path / "out.png", like=img)
    got = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    got = got[..., [2, 1, 0, 3][: got.shape[2]]]
    assert got.dtype == np.uint16 and got.shape == rgb16.shape
    assert np.array_equal(outside(got), outside(rgb16))
    assert np.all(got[BOX][..., :3] == np.array([170, 60, 40]) * 257)
    assert info.kind == ("16-bit RGB") and info.method == "full"
    with Image.open(tmp_path / "out.png") as out:  # Pillow reads the metadata back
        assert out.info.get("icc_profile") == icc and out.getexif().get(0x010F) == "ExganTestCam"
    assert load_image(tmp_path / "out.png").source_mode == img.source_mode  # and reads it as 16-bit again


def test_16_bit_rgb_stored_rotated_reads_upright(tmp_path, face):
    rgb16 = (face[:, :200].astype(np.uint16) * 256 + noise((250, 200, 3), 2)).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: viewers (and load_image) turn it 90 degrees clockwise
    src = tmp_path / "rotated16.png"
    src.write_bytes(png16(np.ascontiguousarray(np.rot90(rgb16, 1)), None, exif.tobytes()))
    img = load_image(src)
    assert img.size == (200, 250) and np.array_equal(img.samples, rgb16)


def test_cmyk_jpeg_stays_cmyk(tmp_path, face):
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(face).convert("CMYK").save(src, quality=95)
    img = load_image(src)
    before = np.asarray(Image.open(src)).astype(int)
    info = save_image_info(retouched(img), tmp_path / "out.jpg", like=img)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "CMYK"
        got = np.asarray(out).astype(int)
    # Encoded in full (only YCbCr and grey JPEGs are patched), and said so: elsewhere only JPEG's requantisation.
    assert info.kind == "CMYK" and "encoded in full" in info.describe()
    assert "4-component JPEG (only YCbCr colour and grey JPEGs are patched)" in info.describe()
    assert np.abs(outside(got) - outside(before)).mean() < 1.5
    eyes = Image.fromarray(got[BOX].astype(np.uint8), "CMYK").convert("RGB")
    assert np.abs(np.asarray(eyes).astype(int) - [170, 60, 40]).mean() < 12  # the new eyes, in inks
    info = save_image_info(retouched(img), tmp_path / "out.png", like=img)
    assert Image.open(tmp_path / "out.png").mode == "RGB" and info.lost == "written as RGB (PNG has no CMYK)"


def test_drawings_are_not_converted(tmp_path, face):
    """keep_kind=False (inspect --draw): coloured marks on a grey photo stay coloured."""
    src = tmp_path / "grey.png"
    Image.fromarray(face).convert("L").save(src)
    img = load_image(src)
    save_image_info(retouched(img), tmp_path / "drawn.png", like=img, keep_kind=False)
    assert Image.open(tmp_path / "drawn.png").mode == "RGB"
