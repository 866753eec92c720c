"""The face cache: prepare_dataset on real LFW photos (tests/data/lfw), load_dataset, splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from exgan_cli.training import dataset
from exgan_cli.errors import DataError
from exgan_cli.stages.geometry import DEFAULT_TEMPLATE, AlignConfig
from conftest import LFW

LFW = LFW
RES = 64


def _lfw_persons() -> list[Path]:
    if not LFW.is_dir():
        pytest.skip("tests/data/lfw is not there")
    persons = sorted(p for p in LFW.iterdir() if p.is_dir())
    if len(persons) < 3:
        pytest.skip("tests/data/lfw has fewer than 3 persons")
    return persons


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, cache): three persons of tests/data/lfw plus a person whose only photo has no
    face, prepared at 64 px."""
    root = tmp_path_factory.mktemp("data")
    data = root / "photos"
    for person in _lfw_persons()[:3]:
        shutil.copytree(person, data / person.name)
    blank = data / "Nobody"
    blank.mkdir()
    from PIL import Image

    Image.new("RGB", (120, 120), (128, 128, 128)).save(blank / "Nobody_0001.jpg")
    (data / "Aaa_not_a_photo.txt").write_text("ignored: not a folder")
    cache = dataset.prepare_dataset(data, root / "cache.npz", AlignConfig(resolution=RES), workers=1)
    return data, cache


def test_prepare_and_load_round_trip(prepared):
    data, cache = prepared
    ds = dataset.load_dataset(cache)
    photos = dataset.list_person_photos(data)
    n = len(ds)
    assert ds.meta["photos_seen"] == len(photos)
    assert ds.meta["faces_kept"] == n == len(photos) - 1  # the blank photo has no face
    assert ds.crops.shape == (n, RES, RES, 3) and ds.crops.dtype == np.uint8
    assert ds.landmarks.shape == (n, 68, 2) and ds.landmarks.dtype == np.float32
    assert ds.ear.shape == (n, 2) and ds.closed.shape == (n,) and ds.closed.dtype == bool
    assert ds.align == AlignConfig(resolution=RES)
    assert "Nobody" not in ds.persons and len(ds.persons) == 3
    assert all((data / p).is_file() for p in ds.paths)
    assert [ds.persons[i] for i in ds.person] == [Path(p).parent.name for p in ds.paths]
    # landmarks are in crop coordinates: the eye centres sit on the alignment template
    eyes = np.stack([ds.landmarks[:, 36:42].mean(1), ds.landmarks[:, 42:48].mean(1)], 1)
    assert np.abs(eyes - np.array(DEFAULT_TEMPLATE[:2]) * RES).max() < 0.12 * RES
    assert ds.crops.std() > 20  # real pictures, not blank crops


def test_save_and_load_keep_every_field(tmp_path, prepared):
    _, cache = prepared
    ds = dataset.load_dataset(cache)
    again = dataset.save_dataset(
        tmp_path / "copy.npz", [dataset.encode_crop(c) for c in ds.crops], ds.landmarks, ds.ear, ds.closed,
        ds.person, ds.persons, ds.paths, ds.align, meta={"note": "copy"},
    )
    ds2 = dataset.load_dataset(again)
    for name in ("landmarks", "ear", "closed", "person"):
        np.testing.assert_array_equal(getattr(ds2, name), getattr(ds, name))
    assert ds2.persons == ds.persons and ds2.paths == ds.paths and ds2.meta["note"] == "copy"
    # JPEG again at quality 95: close, not identical
    assert np.abs(ds2.crops.astype(int) - ds.crops).mean() < 2.0


def test_split_keeps_persons_whole(prepared):
    ds = dataset.load_dataset(prepared[1])
    for method in dataset.SPLITS:
        for seed in range(5):
            tr, va = dataset.split_persons(ds, 0.34, seed=seed, method=method)
            assert len(tr) + len(va) == len(ds) and not set(tr) & set(va)
            assert len(va) > 0 and len(tr) > 0
            assert not set(ds.person[tr]) & set(ds.person[va])
        a, b = dataset.split_persons(ds, 0.34, seed=1, method=method), dataset.split_persons(ds, 0.34, seed=1, method=method)
        np.testing.assert_array_equal(a[1], b[1])


def test_hash_split_is_stable_when_persons_come_and_go():
    from exgan_cli.training.dataset import FaceDataset

    def fake(names: list[str]) -> FaceDataset:
        n = len(names) * 2  # two faces each
        z = np.zeros((n, 1, 1, 3), np.uint8)
        return FaceDataset(crops=z, landmarks=np.zeros((n, 68, 2), np.float32), closed=np.zeros(n, bool),
                           ear=np.ones((n, 2), np.float32), person=np.repeat(np.arange(len(names)), 2).astype(np.int32),
                           persons=names, paths=[f"{p}/{i}.jpg" for p in names for i in range(2)], align=None, meta={})

    names = [f"Person_{i:03d}" for i in range(200)]

    def val_names(ds: FaceDataset, method: str) -> set[str]:
        _, va = dataset.split_persons(ds, 0.1, seed=3, method=method)
        return {ds.persons[p] for p in set(ds.person[va].tolist())}

    full = val_names(fake(names), "hash")
    assert len(full) == 20
    # A person added (in the middle of the sorted list, shifting every later index) or removed
    # moves at most one other person across; the old shuffle redraws most of the split.
    grown = val_names(fake(sorted(names + ["Person_050b"])), "hash")
    assert len(full - grown) <= 1
    removed = sorted(full)[0]
    shrunk = val_names(fake([n for n in names if n != removed]), "hash")
    assert full - {removed} <= shrunk and len(shrunk - full) <= 1
    assert len(val_names(fake(names), "shuffle") - val_names(fake(sorted(names + ["Person_050b"])), "shuffle")) > 5
    with pytest.raises(ValueError, match="split method"):
        dataset.split_persons(fake(names), 0.1, method="random")


def test_split_of_a_subset_draws_only_its_persons(prepared):
    ds = dataset.load_dataset(prepared[1])
    sub = ds.subset(np.nonzero(ds.person != 0)[0])  # person 0 has no face in the subset
    for seed in range(5):
        tr, va = dataset.split_persons(sub, 0.5, seed=seed)
        assert len(va) > 0 and 0 not in set(sub.person[va])


def test_reference_pairs_same_person_never_self(prepared):
    ds = dataset.load_dataset(prepared[1])
    pairs = dataset.reference_pairs(ds, np.ones(len(ds), dtype=bool))
    assert len(pairs) == sum(k * (k - 1) for k in np.bincount(ds.person))
    assert (ds.person[pairs[:, 0]] == ds.person[pairs[:, 1]]).all()
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_default_cache_path_honours_exgan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXGAN_CACHE_DIR", str(tmp_path))
    p64 = dataset.default_cache_path(tmp_path / "lfw", AlignConfig(resolution=64))
    p128 = dataset.default_cache_path(tmp_path / "lfw", AlignConfig(resolution=128))
    assert p64.parent == tmp_path / "datasets" and p64.name.startswith("lfw-64-") and p64 != p128


def test_bad_folders_and_caches(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        dataset.list_person_photos(tmp_path / "missing")
    (tmp_path / "empty" / "Person").mkdir(parents=True)
    with pytest.raises(DataError, match="no photos"):
        dataset.list_person_photos(tmp_path / "empty")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        dataset.load_dataset(bad)
