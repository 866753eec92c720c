"""The on-disk cache of reference analyses (exgan_cli/stages/reference_cache.py), on real photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from exgan_cli.stages import reference_choice, references
from exgan_cli.cli import app
from exgan_cli.errors import BadInputError
from exgan_cli.stages.reference_cache import AnalysisCache, default_cache_dir

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, GROUP, POWELL


def same(a: references.Candidate, b: references.Candidate) -> bool:
    return (
        a.path == b.path and a.index == b.index and a.faces_in_photo == b.faces_in_photo and a.face == b.face
        and np.array_equal(a.descriptor, b.descriptor) and a.descriptor.dtype == b.descriptor.dtype
        and a.eye == b.eye and a.pose == b.pose and a.sharpness == b.sharpness and a.width == b.width
        and (a.visibility == b.visibility or (np.isnan(a.visibility) and np.isnan(b.visibility)))
    )


@pytest.fixture()
def refs(tmp_path: Path) -> list[Path]:
    out = []
    for src in [CHAVEZ_OPEN[0], POWELL[0], GROUP]:
        dst = tmp_path / src.name
        shutil.copyfile(src, dst)
        out.append(dst)
    return out


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EXGAN_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("EXGAN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "exgan"


def test_a_second_load_is_served_from_the_cache_exactly(refs, tmp_path):
    cold_cache = references.open_cache("hog", tmp_path / "cache")
    cold, rej = references.load_candidates(refs, "hog", cache=cold_cache)
    assert not rej and cold_cache.misses == 3 and cold_cache.hits == 0
    assert len(cold) == 2 + 4  # one face each in the LFW photos, four in the group photo
    entries = sorted(cold_cache.folder.glob("*.json"))
    assert len(entries) == 3
    for e in entries:  # plain JSON, never pickle
        assert json.loads(e.read_text())["sha256"] == e.stem

    warm_cache = references.open_cache("hog", tmp_path / "cache")
    warm, rej = references.load_candidates(refs, "hog", cache=warm_cache)
    assert not rej and warm_cache.hits == 3 and warm_cache.misses == 0
    assert len(warm) == len(cold) and all(same(a, b) for a, b in zip(cold, warm))
    # Pixels are decoded only on use, once per photo (shared by its faces), and are the same.
    assert all(c.photo._pixels is None for c in warm)
    group = [c for c in warm if c.path.name == GROUP.name]
    assert np.array_equal(group[0].pixels, [c for c in cold if c.path.name == GROUP.name][0].pixels)
    assert group[1].photo._pixels is group[0].pixels
    # And the choice made from them is the same.
    target = cold[0].descriptor
    a = reference_choice.choose_reference(target, (0.0, 0.0, 0.0), cold)
    b = reference_choice.choose_reference(target, (0.0, 0.0, 0.0), warm)
    assert a.candidate.key == b.candidate.key and a.score == b.score and a.reasons == b.reasons


def test_an_edited_photo_misses_and_a_photo_changed_after_analysis_is_refused(refs, tmp_path):
    cache = references.open_cache("hog", tmp_path / "cache")
    references.load_candidates(refs[:1], "hog", cache=cache)
    # The same name with other bytes: a miss, measured again.
    Image.open(POWELL[1]).save(refs[0], quality=90)
    cache2 = references.open_cache("hog", tmp_path / "cache")
    cands, _ = references.load_candidates(refs[:1], "hog", cache=cache2)
    assert cache2.misses == 1 and cache2.hits == 0
    # Served from the cache, then the file changes before its pixels are needed.
    cache3 = references.open_cache("hog", tmp_path / "cache")
    cands, _ = references.load_candidates(refs[:1], "hog", cache=cache3)
    assert cache3.hits == 1
    shutil.copyfile(CHAVEZ_CLOSED, refs[0])
    with pytest.raises(BadInputError, match="changed"):
        cands[0].pixels


def test_broken_entries_are_misses_and_get_rewritten(refs, tmp_path):
    cache = references.open_cache("hog", tmp_path / "cache")
    cold, _ = references.load_candidates(refs[:2], "hog", cache=cache)
    first, second = sorted(cache.folder.glob("*.json"))
    first.write_text("{not json")
    entry = json.loads(second.read_text())
    entry["faces"][0]["descriptor"] = entry["faces"][0]["descriptor"][:5]  # wrong shape
    second.write_text(json.dumps(entry))
    cache2 = references.open_cache("hog", tmp_path / "cache")
    again, _ = references.load_candidates(refs[:2], "hog", cache=cache2)
    assert cache2.hits == 1 and cache2.misses == 1  # the torn file is a miss; the bad shape is rejected on use
    assert all(same(a, b) for a, b in zip(cold, again))
    cache3 = references.open_cache("hog", tmp_path / "cache")
    references.load_candidates(refs[:2], "hog", cache=cache3)
    assert cache3.hits == 2  # both written again


def test_settings_separate_entries_and_an_unwritable_cache_only_costs_time(refs, tmp_path):
    a = references.open_cache("hog", tmp_path / "cache")
    b = references.open_cache("cnn", tmp_path / "cache")
    assert a.folder != b.folder
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = AnalysisCache(blocked, {"detector": "hog"})
    assert cache.put("0" * 64, {"faces": []}) is False
    cands, rej = references.load_candidates(refs[:1], "hog", cache=references.open_cache("hog", blocked))
    assert len(cands) == 1 and not rej


def test_open_eyes_gives_the_same_photo_from_a_warm_cache_and_no_cache_writes_nothing(tmp_path, tiny_model):
    runner = CliRunner()
    photo = tmp_path / "chavez.png"
    Image.open(CHAVEZ_CLOSED).save(photo)
    cache = tmp_path / "cache"
    env = {"EXGAN_CACHE_DIR": str(cache)}
    args = ["open-eyes", str(photo), "--ref", str(CHAVEZ_OPEN[0]), "--ref", str(CHAVEZ_OPEN[1]),
            "--weights", str(tiny_model), "--no-self-check", "--overwrite"]
    outs = []
    for name in ("cold.png", "warm.png"):
        res = runner.invoke(app, [*args, "-o", str(tmp_path / name)], env=env)
        assert res.exit_code == 0, res.output
        outs.append(np.asarray(Image.open(tmp_path / name)))
    assert len(list(cache.rglob("*.json"))) == 2
    assert np.array_equal(outs[0], outs[1])
    other = tmp_path / "other-cache"
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "nocache.png"), "--no-cache"], env={"EXGAN_CACHE_DIR": str(other)})
    assert res.exit_code == 0, res.output
    assert not other.exists()
    assert np.array_equal(outs[0], np.asarray(Image.open(tmp_path / "nocache.png")))


def test_stale_temporary_files_are_swept(tmp_path):
    """A run that ended while its references' thread was writing leaves a .tmp file: the next
    opening of the cache removes it once it is old, and never a fresh one (another run's write)."""
    import os

    from exgan_cli.stages.reference_cache import AnalysisCache

    cache = AnalysisCache(tmp_path, {"detector": "hog"})
    cache.folder.mkdir(parents=True)
    old, fresh = cache.folder / ".tmp-old.json", cache.folder / ".tmp-fresh.json"
    old.write_text("{")
    fresh.write_text("{")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    AnalysisCache(tmp_path, {"detector": "hog"})
    assert not old.exists() and fresh.exists()
