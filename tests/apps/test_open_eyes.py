"""`exgan open-eyes` end to end on real photos, and every bad-input case."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from exgan_cli import errors
from exgan_cli.cli import app
from exgan_cli.files.images import load_image

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, CLOSED_CROPS, POWELL, ROOT

runner = CliRunner()


def run(*args: str, self_check: bool = False):
    """open-eyes; the self-check is off by default here because the tiny test model is random
    (its eyes are not open, so the check would rightly refuse them): it has tests of its own."""
    return runner.invoke(app, ["open-eyes", *map(str, args), *([] if self_check else ["--no-self-check"])])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    p = tmp_path / "chavez.jpg"
    shutil.copyfile(CHAVEZ_CLOSED, p)
    return p


def test_retouches_closed_eyes_and_leaves_the_rest(tmp_path, tiny_model):
    # PNG in, PNG out: lossless, so "untouched" can be checked pixel for pixel.
    src = tmp_path / "chavez.png"
    Image.open(CHAVEZ_CLOSED).save(src)
    before = sha(src)
    report = tmp_path / "r.json"
    res = run(src, "--ref", CHAVEZ_OPEN[0], "--ref", CHAVEZ_OPEN[1], "--weights", tiny_model, "--report", report)
    assert res.exit_code == 0, res.output
    out = tmp_path / "chavez_open.png"
    assert out.is_file() and sha(src) == before
    a, b = np.asarray(Image.open(src).convert("RGB")), np.asarray(Image.open(out).convert("RGB"))
    changed = (a != b).any(-1)
    assert changed.sum() > 200  # the eyes were repainted
    data = json.loads(report.read_text())
    face = data["faces"][0]
    assert face["status"] == "retouched" and face["eyes_before"]["closed"]
    assert Path(face["reference"]["path"]).name in {p.name for p in CHAVEZ_OPEN[:2]}
    assert face["reference"]["distance"] < 0.6
    # Every changed pixel lies in the (feathered) eye boxes grown by a margin of half a box.
    ys, xs = np.nonzero(changed)
    grown = np.zeros_like(changed)
    for x0, y0, x1, y1 in face["mask_boxes"]:
        mh = (y1 - y0) / 2
        grown[int(max(0, y0 - mh)): int(y1 + mh) + 1, int(max(0, x0 - mh)): int(x1 + mh) + 1] = True
    assert grown[ys, xs].all()
    assert data["weights"] == str(tiny_model)
    assert str(tiny_model) in res.output  # the command says which weights it used


def test_jpeg_keeps_format_exif_and_icc_and_input(photo, tmp_path, tiny_model):
    # Give the input an ICC profile and EXIF, rotated by an EXIF orientation tag.
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upright = Image.open(CHAVEZ_CLOSED)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 deg clockwise
    exif[0x010F] = "TestCam"
    src = tmp_path / "rotated.jpg"
    upright.rotate(90, expand=True).save(src, quality=95, exif=exif, icc_profile=icc)
    before = sha(src)
    out = tmp_path / "out.jpg"
    res = run(src, "--ref-dir", CHAVEZ_OPEN[0].parent, "--weights", tiny_model, "-o", out)
    assert res.exit_code == 0, res.output
    assert sha(src) == before
    with Image.open(out) as im:
        assert im.format == "JPEG"
        # Patched in place (jpeg_patch.py): stored rotated like the input, its orientation tag
        # kept, so it is shown upright exactly as the input is.
        assert im.size == (upright.height, upright.width)
        assert im.getexif().get(0x0112, 1) == 6 and im.getexif().get(0x010F) == "TestCam"
        assert im.info.get("icc_profile") == icc
    assert load_image(out).size == upright.size


@pytest.mark.parametrize("bits,suffix", [(8, "png"), (16, "png"), (8, "jpg")])
def test_grey_photo_stays_grey(bits, suffix, tmp_path, tiny_model):
    """A black-and-white photo gets grey eyes: the output is grey (16 bits kept), and only pixels
    around the eyes differ from the input's own samples; a grey JPEG is patched in grey (only its
    8x8 blocks around the eyes re-encoded)."""
    grey = np.asarray(Image.open(CHAVEZ_CLOSED).convert("L"))
    samples = grey if bits == 8 else (grey.astype(np.uint16) * 256 + np.random.default_rng(0).integers(0, 256, grey.shape)).astype(np.uint16)
    src, out, report = tmp_path / f"grey{bits}.{suffix}", tmp_path / f"out.{suffix}", tmp_path / "r.json"
    Image.fromarray(samples).save(src, **({"quality": 90} if suffix == "jpg" else {}))
    with Image.open(src) as im:
        samples = np.asarray(im)  # as decoded (a JPEG's own loss)
    res = run(src, "--ref-dir", CHAVEZ_OPEN[0].parent, "--weights", tiny_model, "-o", out, "--report", report)
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.mode == ("L" if bits == 8 else "I;16")
        changed = np.asarray(im) != samples
    data = json.loads(report.read_text())
    if suffix == "jpg":
        assert data["save"]["method"] == "patched" and data["save"]["sampling"] == "grey", data["save"]
    else:
        assert data["save"]["kind"] == ("grey" if bits == 8 else "16-bit grey")
    assert changed.sum() > 200
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = data["faces"][0]["box"]
    block = 8 if suffix == "jpg" else 0  # a re-encoded block reaches past the eyes to its 8x8 grid
    assert x0 - block <= xs.min() and xs.max() < x1 + block and y0 - block <= ys.min() and ys.max() < y1 + block


@pytest.mark.parametrize("quiet", [False, True])
def test_stdout_gets_the_written_path_and_stderr_keeps_paths_whole(quiet, tmp_path, tiny_model):
    """stdout: the written photo's path alone (for scripts); stderr: the summary, where a path
    longer than the 80 columns of a pipe stays one string, and no line ends in spaces."""
    folder = tmp_path / ("a-folder-with-a-long-name-" * 3) / "retouched"
    folder.mkdir(parents=True)
    out = folder / "hugo_chavez_laughing_open.png"
    src = tmp_path / "chavez.png"
    Image.open(CHAVEZ_CLOSED).save(src)
    res = run(src, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "-o", out, *(["--quiet"] if quiet else []))
    assert res.exit_code == 0, res.output
    assert len(str(out)) > 80 and res.stdout == f"{out}\n"
    if quiet:
        assert res.stderr == ""
        return
    lines = res.stderr.splitlines()
    assert any(line.startswith(f"wrote {out} (") for line in lines), res.stderr
    assert f"weights: {tiny_model}" in lines and f"{out}: encoded in full (PNG output)" in lines
    assert "chavez.png: 1 face" in lines  # the summary's heading: plurals as in English
    assert not [line for line in lines if line != line.rstrip()]


def test_ref_dir_containing_the_photo_itself_is_fine(tmp_path, tiny_model):
    refs = tmp_path / "refs"
    shutil.copytree(CHAVEZ_OPEN[0].parent, refs)  # includes the closed photo too
    res = run(refs / CHAVEZ_CLOSED.name, "--ref-dir", refs, "--weights", tiny_model, "-o", tmp_path / "o.jpg")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.jpg").is_file()


def test_open_eyes_photo_is_left_alone_unless_faces_all(tmp_path, tiny_model):
    src = tmp_path / "powell.jpg"
    shutil.copyfile(POWELL[0], src)
    res = run(src, "--ref", POWELL[1], "--weights", tiny_model)
    assert res.exit_code == 0, res.output
    assert f"{src}: 1 face, none with closed eyes: nothing to do, nothing written" in res.output  # '1 face', not 'face(s)'
    assert not (tmp_path / "powell_open.jpg").exists()
    res = run(src, "--ref", POWELL[1], "--weights", tiny_model, "--faces", "all", "--compare", tmp_path / "cmp.jpg")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "powell_open.jpg").is_file() and (tmp_path / "cmp.jpg").is_file()


def test_refuses_to_overwrite(photo, tmp_path, tiny_model):
    out = tmp_path / "exists.jpg"
    out.write_bytes(b"keep me")
    res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "-o", out)
    assert res.exit_code == errors.EXIT_OUTPUT
    assert out.read_bytes() == b"keep me"
    res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "-o", photo, "--overwrite")
    assert res.exit_code == errors.EXIT_OUTPUT and "input" in res.output
    res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "-o", out, "--overwrite")
    assert res.exit_code == 0 and out.read_bytes() != b"keep me"


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = CHAVEZ_CLOSED.read_bytes()
    files = {
        "zero-byte": b"",
        "truncated": good[: len(good) // 2],
        "corrupt": good[:200] + bytes(range(256)) * 20 + good[-100:],
        "text": b"this is not an image\n",
    }
    out = {}
    for name, data in files.items():
        p = tmp_path / f"{name}.jpg"
        p.write_bytes(data)
        out[name] = p
    gif = tmp_path / "anim.gif"
    Image.open(CHAVEZ_CLOSED).save(gif)
    out["unsupported"] = gif
    out["missing"] = tmp_path / "nope.jpg"
    return out


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "corrupt", "text", "unsupported", "missing"])
def test_bad_photo_one_line_exit_code_no_output(kind, tmp_path, tiny_model):
    bad = _bad_files(tmp_path)[kind]
    res = run(bad, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model)
    assert res.exit_code == errors.EXIT_BAD_INPUT, res.output
    assert bad.name in res.output and len(res.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*_open*")) and not list(tmp_path.glob(".*tmp*"))


def test_a_folder_given_as_the_photo_is_called_a_folder(tmp_path, tiny_model):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    for command in (["open-eyes"], ["inspect"]):
        res = runner.invoke(app, [*command, str(folder), "--ref", str(CHAVEZ_OPEN[0])])
        assert res.exit_code == errors.EXIT_BAD_INPUT, res.output
        assert res.output.strip().splitlines() == [f"error: {folder}: is a folder, not a photo (give one photo file; "
                                                   "`exgan batch` takes a folder)"]


@pytest.mark.parametrize("name", ["out.gif", "out.txt", "out"])
def test_unsupported_output_suffix_is_refused_before_any_work(name, photo, tmp_path):
    """Checked with the other output checks, before the model or the photo is read: a model that
    does not exist would be the error otherwise (exit 6), and a --compare file is held to it too."""
    for flag in ("-o", "--compare"):
        res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", tmp_path / "no-such-model", flag, tmp_path / name)
        assert res.exit_code == errors.EXIT_OUTPUT, res.output
        assert res.output.strip().splitlines() == [
            f"error: {tmp_path / name}: cannot write {Path(name).suffix or '(no suffix)'} files (use .jpg, .jpeg, .png or .webp)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chavez.jpg"]


def test_no_face(tmp_path, tiny_model):
    src = tmp_path / "wall.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((300, 400, 3)) * 40 + 100).astype(np.uint8)).save(src)
    res = run(src, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model)
    assert res.exit_code == errors.EXIT_NO_FACE and "wall.png" in res.output
    assert not (tmp_path / "wall_open.png").exists()


def test_min_face_skips_smaller_faces(tmp_path, tiny_model):
    # Chavez at half size: a ~52 px face in a 125 px photo. Found by default (dlib's
    # upsampling), not when only faces of 200 px and more are looked for (the speed knob).
    small = tmp_path / "small.png"
    with Image.open(CHAVEZ_CLOSED) as im:
        im.resize((125, 125), Image.LANCZOS).save(small)
    res = run(small, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "--min-face", "200", "--no-self-check")
    assert res.exit_code == errors.EXIT_NO_FACE and "small.png" in res.output, res.output
    assert not (tmp_path / "small_open.png").exists()
    res = run(small, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "--no-self-check")
    assert res.exit_code == 0 and (tmp_path / "small_open.png").is_file(), res.output


def test_reference_min_face_scales_with_the_photo():
    from exgan_cli.stages.references import reference_min_face

    assert reference_min_face((250, 250)) == 40.0  # LFW-sized references: every face
    assert reference_min_face((4000, 3000)) == 200.0  # a 12 MP group shot: faces of 200+ px


@pytest.mark.parametrize(
    "refs,expect",
    [
        ([], "no reference"),
        ([CLOSED_CROPS[1]], "closed"),
        ([POWELL[0]], "another person"),
    ],
)
def test_no_usable_reference(refs, expect, photo, tmp_path, tiny_model):
    args = []
    for r in refs:
        args += ["--ref", r]
    res = run(photo, *args, "--weights", tiny_model)
    assert res.exit_code == errors.EXIT_NO_REFERENCE, res.output
    assert expect in res.output
    assert not (tmp_path / "chavez_open.jpg").exists()


def test_any_identity_accepts_another_person(photo, tmp_path, tiny_model):
    res = run(photo, "--ref", POWELL[0], "--weights", tiny_model, "--any-identity", "--force")  # Powell is turned 34° from Chavez
    assert res.exit_code == 0, res.output
    assert (tmp_path / "chavez_open.jpg").is_file()


def test_reference_without_a_face(photo, tmp_path, tiny_model):
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(wall)
    res = run(photo, "--ref", wall, "--weights", tiny_model)
    assert res.exit_code == errors.EXIT_NO_REFERENCE and "wall.png" in res.output


def test_bad_weights(photo, tmp_path, tiny_model):
    res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", tmp_path / "no-such-model")
    assert res.exit_code == errors.EXIT_BAD_WEIGHTS and "no-such-model" in res.output
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 100)
    res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", broken)
    assert res.exit_code == errors.EXIT_BAD_WEIGHTS and "broken" in res.output
    assert not (tmp_path / "chavez_open.jpg").exists()


def test_face_index_out_of_range(photo, tiny_model):
    res = run(photo, "--ref", CHAVEZ_OPEN[0], "--weights", tiny_model, "--face", "3")
    assert res.exit_code == errors.EXIT_NO_FACE and "--face 3: the photo has one face, face 0" in res.output


def test_readme_main_command_with_the_bundled_weights(tmp_path, monkeypatch):
    """The README's main job: the bundled example, the bundled (trained) weights, self-check on."""
    root = ROOT
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "report.json"
    res = run(
        root / "examples" / "hugo_chavez_closed.jpg", "--ref-dir", root / "examples" / "refs",
        "-o", "example_open.jpg", "--compare", "example_compare.jpg", "--report", report, self_check=True,
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "example_open.jpg").is_file() and (tmp_path / "example_compare.jpg").is_file()
    face = json.loads(report.read_text())["faces"][0]
    assert face["status"] == "retouched"
    assert "exgan-reference-128" in json.loads(report.read_text())["weights"]
    assert face["eyes_after"]["closed"] is False  # the trained model opened the eyes
