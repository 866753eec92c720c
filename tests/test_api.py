"""The Python API (exgan_cli.open_eyes, inspect, load_model, find_faces, save_photo) on real photos,
with the bundled models, and its agreement with `exgan open-eyes`."""

from __future__ import annotations

import numpy as np
import pytest

import exgan_cli
from exgan_cli.errors import BadInputError, NoFaceError, NoReferenceError
from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, DATA, GROUP, GROUP_FACES, POWELL

EXAMPLE = DATA.parent.parent / "examples" / "hugo_chavez_closed.jpg"
EXAMPLE_REFS = sorted((DATA.parent.parent / "examples" / "refs").glob("*.jpg"))


@pytest.fixture(scope="module")
def model():
    return exgan_cli.load_model()  # the bundled reference model


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, exgan_cli; print(any(m in sys.modules for m in ('torch', 'dlib', 'cv2')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_find_faces_gives_each_face_its_eye_state():
    from exgan_cli.files.images import load_image

    faces, states = exgan_cli.find_faces(load_image(GROUP).pixels)
    assert len(faces) == len(states) == GROUP_FACES
    assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)  # left to right, boxes (x0, y0, x1, y1)
    assert all(f.box[2] > f.box[0] and f.box[3] > f.box[1] for f in faces)


def test_open_eyes_opens_the_closed_eyes_and_touches_nothing_else(model):
    from exgan_cli.files.images import load_image

    before = load_image(CHAVEZ_CLOSED).pixels
    result = exgan_cli.open_eyes(CHAVEZ_CLOSED, refs=CHAVEZ_OPEN, model=model)
    assert [f.status for f in result.faces] == ["retouched"]
    face = result.faces[0]
    assert face.eyes_before["closed"] and not face.eyes_after["closed"]
    changed = np.any(result.pixels != before, axis=2)
    assert changed.any()
    x0, y0, x1, y1 = face.box
    assert not changed[:y0].any() and not changed[y1:].any()  # only inside the face
    assert before is not result.pixels


def test_open_eyes_takes_an_array_and_options():
    from exgan_cli.files.images import load_image

    pixels = load_image(CHAVEZ_CLOSED).pixels
    opts = exgan_cli.RetouchOptions(self_check=exgan_cli.options.SelfCheckConfig(enabled=False), best_of=1)
    result = exgan_cli.open_eyes(pixels, refs=CHAVEZ_OPEN[:1], options=opts)
    assert result.faces[0].status == "retouched"
    assert result.faces[0].self_check["enabled"] is False


def test_api_and_cli_write_the_same_bytes(tmp_path, model):
    from typer.testing import CliRunner

    from exgan_cli.cli import app

    api_out = exgan_cli.save_photo(exgan_cli.open_eyes(EXAMPLE, refs=EXAMPLE_REFS, model=model), tmp_path / "api.jpg", like=EXAMPLE)
    cli_out = tmp_path / "cli.jpg"
    args = ["open-eyes", str(EXAMPLE), *[a for r in EXAMPLE_REFS for a in ("--ref", str(r))], "-o", str(cli_out), "--quiet"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert api_out.read_bytes() == cli_out.read_bytes()


def test_reasons_count_every_reference_given(model):
    """Three references, one turned beyond the pose limit: "#2 of 2 usable" says where the third went."""
    result = exgan_cli.open_eyes(CHAVEZ_CLOSED, refs=CHAVEZ_OPEN, model=model)
    whys = [a["reference"]["why"] for a in result.faces[0].self_check["attempts"]]
    assert len(whys) == 2 and whys[0].startswith("best of 2 usable") and whys[1].startswith("#2 of 2 usable")
    assert all(" usable (and 1 beyond the pose limit: Hugo_Chavez_0020.jpg): identity distance " in w for w in whys)


def test_inspect_sees_the_closed_eyes_and_judges_each_reference():
    info = exgan_cli.inspect(CHAVEZ_CLOSED, refs=CHAVEZ_OPEN)
    assert [f["eye_state"] for f in info["faces"]] == ["closed"]
    verdicts = info["faces"][0]["references"]
    assert len(verdicts) == len(CHAVEZ_OPEN) and any(v["chosen"] for v in verdicts)


def test_errors_are_exgan_errors(tmp_path):
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(NoFaceError):
        exgan_cli.open_eyes(blank, refs=CHAVEZ_OPEN)
    with pytest.raises(NoReferenceError, match="no reference photo given"):
        exgan_cli.open_eyes(CHAVEZ_CLOSED, refs=[])
    with pytest.raises(BadInputError, match="nope.jpg"):
        exgan_cli.open_eyes(tmp_path / "nope.jpg", refs=CHAVEZ_OPEN)
    with pytest.raises(BadInputError, match="is a folder"):
        exgan_cli.open_eyes(tmp_path, refs=CHAVEZ_OPEN)
    assert issubclass(NoFaceError, exgan_cli.ExganError)


def test_unusable_reference_is_named_as_the_cli_names_it(tmp_path):
    """A reference without a face: the API's error names the photo, the reference and why, in the
    very words of `exgan open-eyes` (not "no reference photos given")."""
    from PIL import Image
    from typer.testing import CliRunner

    from exgan_cli.cli import app

    noface = tmp_path / "noface.jpg"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(noface)
    with pytest.raises(NoReferenceError) as info:
        exgan_cli.open_eyes(CHAVEZ_CLOSED, refs=[noface])
    assert str(info.value) == f"{CHAVEZ_CLOSED}: no usable reference: noface.jpg: no face found"
    res = CliRunner().invoke(app, ["open-eyes", str(CHAVEZ_CLOSED), "--ref", str(noface), "-o", str(tmp_path / "o.jpg")])
    assert res.exit_code == NoReferenceError.exit_code and res.output.strip() == f"error: {info.value}"
    # Another person's photo: rejected face by face, and still the photo named.
    with pytest.raises(NoReferenceError, match=rf"^{CHAVEZ_CLOSED}: face 0: no usable reference: .*another person"):
        exgan_cli.open_eyes(CHAVEZ_CLOSED, refs=[POWELL[0]])


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's Python API block, executed from a copy of the checkout's examples and weights."""
    import re
    import shutil

    root = DATA.parent.parent
    block = re.search(r"## Python API.*?```python\n(.*?)```", (root / "README.md").read_text(), re.S).group(1)
    shutil.copytree(root / "examples", tmp_path / "examples")
    (tmp_path / "weights").symlink_to(root / "weights")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("0 retouched examples/refs/")
    assert printed[1] == "[(0, 'closed')]"
    assert printed[2] == "[False]"  # the retouched photo's eyes are open
    assert printed[3] == "retouched"
    assert (tmp_path / "example_open_api.jpg").stat().st_size > 0


def test_readme_examples_leave_nothing_untracked_in_the_checkout():
    """What the README's quick start and Python API write in the checkout's root is ignored by git
    (.gitignore), so `git status` stays clean after a user ran them as written."""
    import re
    import shutil
    import subprocess

    root = DATA.parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (root / "README.md").read_text()
    quick = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S).group(1)
    api = re.search(r"## Python API.*?```python\n(.*?)```", readme, re.S).group(1)
    written = re.findall(r"(?:-o|--compare) (\S+)", quick) + re.findall(r"save_photo\(\w+, \"([^\"]+)\"", api)
    assert sorted(written) == ["example_compare.jpg", "example_open.jpg", "example_open_api.jpg"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=root, capture_output=True, text=True).stdout
    assert sorted(ignored.split()) == sorted(written)


def test_each_face_eye_state_is_computed_once(monkeypatch, model):
    """find_faces judges each face's eyes once; retouch is handed them and never judges them again
    (the self-check judges the *result*, a new array)."""
    from exgan_cli.files.images import load_image
    from exgan_cli.stages import eye_state

    pixels = load_image(GROUP).pixels
    calls: list[int] = []
    real = eye_state.assess
    monkeypatch.setattr(eye_state, "assess", lambda rgb, face, *a, **k: (calls.append(id(rgb)), real(rgb, face, *a, **k))[1])
    options = exgan_cli.RetouchOptions(faces="all", any_identity=True, force=True, best_of=1)
    result = exgan_cli.open_eyes(pixels, refs=[GROUP], options=options, model=model)
    assert len(result.faces) == GROUP_FACES
    assert calls.count(id(pixels)) == GROUP_FACES
