"""The four eye states through the commands (issue #24): open-eyes retouches closed eyes by default,
narrowed ones only with --faces narrow, hidden ones never; inspect and the report name the state."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from exgan_cli.apps.retouch import idle_status, select_faces, wanted
from exgan_cli.cli import app
from exgan_cli.options import RetouchOptions

from conftest import DATA

NARROW = DATA / "narrow" / "Silvio_Berlusconi_0009.jpg"  # smiling, narrowed open eyes (was called closed)
NARROW_REF = DATA / "narrow" / "Silvio_Berlusconi_0002.jpg"  # the same man, open eyes
SUNGLASSES = DATA / "sunglasses" / "Keanu_Reeves_0005.jpg"  # face 1 behind dark sunglasses
SUNGLASSES_REF = DATA / "sunglasses" / "Keanu_Reeves_0001.jpg"

runner = CliRunner()


def open_eyes(*args):
    """open-eyes with the self-check off: the tiny test model's eyes are random."""
    return runner.invoke(app, ["open-eyes", *map(str, args), "--no-self-check"])


def _state(name: str) -> SimpleNamespace:
    return SimpleNamespace(state=name, closed=name == "closed", narrow=name == "narrow", hidden=name == "hidden")


@pytest.mark.parametrize(
    "faces,expected",
    [("closed", [1]), ("narrow", [1, 2]), ("all", [0, 1, 2])],  # face 3 (hidden) never
)
def test_which_faces_each_faces_option_retouches(faces, expected):
    states = [_state(s) for s in ("open", "closed", "narrow", "hidden")]
    assert select_faces(states, states, RetouchOptions(faces=faces)) == expected
    assert [wanted(s, faces) for s in states] == [i in expected for i in range(4)]
    assert select_faces(states, states, RetouchOptions(face_index=3)) == []  # not even asked for by index
    assert select_faces(states, states, RetouchOptions(face_index=2)) == [2]
    assert [idle_status(s) for s in states] == ["eyes open", "not selected", "eyes narrow", "eyes hidden"]


def test_narrow_eyes_are_left_alone_by_default_and_opened_with_faces_narrow(tmp_path, tiny_model):
    src = tmp_path / "narrow.jpg"
    shutil.copyfile(NARROW, src)
    res = open_eyes(src, "--ref", NARROW_REF, "--weights", tiny_model)
    assert res.exit_code == 0, res.output
    assert "1 face, none with closed eyes (1 narrow: left alone; --faces narrow opens narrowed eyes)" in res.output
    assert not (tmp_path / "narrow_open.jpg").exists()
    report = tmp_path / "r.json"
    res = open_eyes(src, "--ref", NARROW_REF, "--weights", tiny_model, "--faces", "narrow", "--force", "--report", report)
    assert res.exit_code == 0, res.output
    (face,) = json.loads(report.read_text())["faces"]
    assert face["status"] == "retouched" and face["eyes_before"]["state"] == "narrow"
    assert (tmp_path / "narrow_open.jpg").is_file()


def test_hidden_eyes_are_never_retouched_not_even_with_faces_all(tmp_path, tiny_model):
    src = tmp_path / "keanu.jpg"
    shutil.copyfile(SUNGLASSES, src)
    report = tmp_path / "r.json"
    res = open_eyes(src, "--ref", SUNGLASSES_REF, "--weights", tiny_model, "--faces", "all", "--any-identity",
                    "--force", "--report", report)
    assert res.exit_code == 0, res.output
    faces = json.loads(report.read_text())["faces"]
    hidden = [f for f in faces if f["eyes_before"]["state"] == "hidden"]
    assert len(hidden) == 1 and hidden[0]["status"] == "eyes hidden" and "dark lenses" in hidden[0]["eyes_before"]["rule"]
    assert [f["status"] for f in faces if f is not hidden[0]] == ["retouched"]


def test_a_hidden_face_asked_for_by_index_is_named_and_left_alone(tmp_path, tiny_model):
    src = tmp_path / "keanu.jpg"
    shutil.copyfile(SUNGLASSES, src)
    report = tmp_path / "r.json"
    open_eyes(src, "--ref", SUNGLASSES_REF, "--weights", tiny_model, "--faces", "all", "--any-identity", "--force",
              "-o", tmp_path / "all.jpg", "--report", report)
    hidden = [f["index"] for f in json.loads(report.read_text())["faces"] if f["eyes_before"]["state"] == "hidden"]
    out = tmp_path / "out.jpg"
    res = open_eyes(src, "--ref", SUNGLASSES_REF, "--weights", tiny_model, "--face", str(hidden[0]), "-o", out)
    assert res.exit_code == 0, res.output
    assert f"face {hidden[0]}: eyes hidden (" in res.output and "none with closed eyes" not in res.output
    assert not out.exists()


def test_inspect_names_every_state(tmp_path):
    res = runner.invoke(app, ["inspect", str(SUNGLASSES), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["eye_state"]["states"] == ["open", "narrow", "closed", "hidden"]
    assert sorted(f["eye_state"] for f in info["faces"]) == ["hidden", "open"]
    assert all(f["eyes"]["state"] == f["eye_state"] and f["eyes"]["rule"] for f in info["faces"])
    res = runner.invoke(app, ["inspect", str(NARROW)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "eyes narrow" in res.stdout and max(len(line) for line in res.stdout.splitlines()) <= 80


def test_faces_help_names_narrow_at_80_columns():
    res = runner.invoke(app, ["open-eyes", "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    assert "--faces closed|narrow|all" in res.output and max(len(line) for line in res.output.splitlines()) <= 80


def test_batch_picks_and_reports_faces_by_their_eye_state():
    """batch: the person's faces to retouch follow --faces as open-eyes does (--narrow-faces adds
    narrowed eyes, hidden never), and the report names why a face was left alone."""
    from exgan_cli.apps.batch.photo import face_dicts
    from exgan_cli.apps.batch.workers import Analysis, Matcher
    from exgan_cli.apps.retouch import wanted

    states = [_state(s) for s in ("open", "closed", "narrow", "hidden")]
    for faces, picked in (("closed", [1]), ("narrow", [1, 2]), ("all", [0, 1, 2])):
        m = Matcher(samples=np.zeros((1, 128)), threshold=0.6, k=1, detector="hog", min_face=40.0, faces=faces, identify_all=False)
        assert [i for i, s in enumerate(states) if wanted(s, m.faces)] == picked and m.all_faces == (faces == "all")
    face = SimpleNamespace(box=(0, 0, 10, 10), detector="hog")
    for s in states:
        s.to_dict = lambda: {}
    analysis = Analysis(rel="a.jpg", faces=[face] * 4, eyes=states, distances=[0.3] * 4)
    assert [d["status"] for d in face_dicts(analysis, 0.6)] == ["eyes open", "not selected", "eyes narrow", "eyes hidden"]
