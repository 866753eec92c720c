"""`exgan inspect`: what the tool sees, on the real group photo; nothing is ever modified."""

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

from exgan_cli.stages import faces
from exgan_cli.cli import app
from exgan_cli.files.images import load_image

from conftest import CHAVEZ_CLOSED, DATA, GROUP, GROUP_ANGELINA, GROUP_FACES, POWELL

ANGELINA = DATA / "photos" / "img6.jpg"  # another photo of the group's face 1 (750 x 1050)

runner = CliRunner()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inspect_json(*args) -> dict:
    res = runner.invoke(app, ["inspect", *map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> tuple[dict, Path, str]:
    """inspect GROUP --ref ANGELINA --json --draw: one run shared by the layout tests."""
    d = tmp_path_factory.mktemp("inspect")
    photo = d / GROUP.name
    shutil.copyfile(GROUP, photo)
    before = sha(photo)
    drawn = d / "drawn.png"
    info = inspect_json(photo, "--ref", ANGELINA, "--draw", drawn)
    return info, drawn, before


def test_group_photo_layout_boxes_states_and_detector(group):
    info, _, _ = group
    assert info["size"] == [600, 604] and info["detector"] == "auto"
    assert info["eye_state"]["method"] == "classifier" and info["eye_state"]["classifier"]["threshold"] > 0
    hog = faces.detect_faces(load_image(GROUP).pixels, detector="hog")
    assert len(info["faces"]) == GROUP_FACES == len(hog)
    for i, (f, h) in enumerate(zip(info["faces"], hog)):
        assert f["index"] == i
        assert f["box"] == list(h.box) and f["detector"] == "hog"
        x0, y0, x1, y1 = f["box"]
        assert 0 <= x0 < x1 <= 600 and 0 <= y0 < y1 <= 604
        assert f["eye_state"] == "open"  # everyone in the selfie has open eyes
        e = f["eyes"]
        assert e["method"] == "classifier" and 0 <= e["p_closed"] < info["eye_state"]["classifier"]["threshold"]
        assert not e["ear_closed"] and max(e["left"], e["right"]) > 0.21  # both scores reported
        assert set(f["pose"]) == {"yaw", "pitch", "roll"}
        assert len(f["mask_boxes"]) == 2  # the eye masks, in photo coordinates, inside the face box
        for bx0, by0, bx1, by1 in f["mask_boxes"]:
            assert x0 - 5 <= bx0 < bx1 <= x1 + 5 and y0 - 5 <= by0 < by1 <= y1 + 5
    xs = [f["box"][0] + f["box"][2] for f in info["faces"]]
    assert xs == sorted(xs)  # left to right, the numbering open-eyes --face uses


def test_identity_and_reference_usability_per_face(group):
    info, _, _ = group
    assert [Path(r["path"]).name for r in info["references"]] == [ANGELINA.name]
    assert info["references"][0]["eye_state"] == "open"
    for f in info["faces"]:
        (ident,) = f["identity"]
        (ref,) = f["references"]
        assert ident["distance"] == ref["distance"]
        if f["index"] == GROUP_ANGELINA:
            assert ident["same_person"] and ident["distance"] < 0.6
            assert ref["usable"] and ref["chosen"] and ref["score"] > 0 and "identity distance" in ref["why"]
        else:
            assert not ident["same_person"]
            assert not ref["usable"] and not ref["chosen"] and "another person" in ref["why"]
            assert "no usable reference" in f["no_reference"]


def test_draw_writes_a_copy_and_never_touches_the_input(group):
    info, drawn, before = group
    photo = Path(info["photo"])
    assert sha(photo) == before and info["drawn"] == str(drawn)
    a = np.asarray(Image.open(photo).convert("RGB"))
    b = np.asarray(Image.open(drawn).convert("RGB"))
    assert a.shape == b.shape and (a != b).any()
    # the drawing changes pixels on the box edges only: the centre of each face is untouched
    for f in info["faces"]:
        x0, y0, x1, y1 = f["box"]
        cx, cy = (x0 + x1) // 2, (y0 + y1) * 3 // 5
        assert (a[cy - 3 : cy + 3, cx - 3 : cx + 3] == b[cy - 3 : cy + 3, cx - 3 : cx + 3]).all()


def test_draw_refuses_the_input_and_existing_files(tmp_path):
    photo = tmp_path / "p.jpg"
    shutil.copyfile(POWELL[0], photo)
    res = runner.invoke(app, ["inspect", str(photo), "--draw", str(photo)])
    assert res.exit_code == errors.EXIT_OUTPUT and "input" in res.output
    other = tmp_path / "d.jpg"
    other.write_bytes(b"x")
    res = runner.invoke(app, ["inspect", str(photo), "--draw", str(other)])
    assert res.exit_code == errors.EXIT_OUTPUT and other.read_bytes() == b"x"


def test_closed_eyes_table_and_missing_photo(tmp_path):
    res = runner.invoke(app, ["inspect", str(CHAVEZ_CLOSED), "--ref", str(POWELL[0])])
    assert res.exit_code == 0, res.output
    assert "closed" in res.stdout and "hog" in res.stdout and "another person" in res.stdout
    res = runner.invoke(app, ["inspect", str(tmp_path / "nope.jpg")])
    assert res.exit_code == errors.EXIT_BAD_INPUT


def test_auto_detector_finds_a_tilted_face_hog_misses(tmp_path):
    # Colin Powell turned 45 degrees and cropped tight: HOG finds nothing, auto falls back to the CNN.
    photo = tmp_path / "tilted.png"
    Image.open(POWELL[0]).convert("RGB").rotate(45, resample=Image.BICUBIC).crop((45, 45, 205, 205)).save(photo)
    assert faces.detect_faces(load_image(photo).pixels, detector="hog") == []
    info = inspect_json(photo)
    (f,) = info["faces"]
    assert f["detector"] == "cnn" and f["eye_state"] in ("open", "narrow")  # not closed (the crop narrows the eyes)
    assert inspect_json(photo, "--detector", "hog")["faces"] == []
