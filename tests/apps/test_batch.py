"""exgan batch: one person's closed eyes across an album (real dlib on the photos in tests/data).

A tiny randomly initialised generator stands in for trained weights: these tests check which
faces and files are touched, resuming, reports and exit codes, not the quality of the eyes. Its
eyes are not open, so the self-check (rightly) refuses them: the tests of which faces change run
with the self-check off (``opts``' default here, --no-self-check on the command line), and
test_self_check_refuses_the_random_model checks the refusal.
"""

from __future__ import annotations

import filecmp
import hashlib
import io
import json
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from exgan_cli.apps import batch as batchlib
from exgan_cli.apps.batch import BatchOptions, identity_distance, load_person, run_batch
from exgan_cli.cli import app
from exgan_cli.errors import EXIT_BAD_DATA, EXIT_BAD_WEIGHTS, EXIT_NO_REFERENCE, EXIT_OUTPUT, DataError
from exgan_cli.options import RetouchOptions, SelfCheckConfig

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, CLOSED_CROPS, GROUP, GROUP_ANGELINA, GROUP_FACES, HIGHRES, POWELL


@pytest.fixture(scope="module")
def tiny_weights(tiny_model) -> Path:
    """conftest's randomly initialised small model: no trained weights needed."""
    return tiny_model


@pytest.fixture(scope="module")
def chavez_dir(tmp_path_factory) -> Path:
    """Hugo Chavez's three open-eyed photos: the person."""
    d = tmp_path_factory.mktemp("person") / "chavez"
    d.mkdir()
    for p in CHAVEZ_OPEN:
        shutil.copy(p, d / p.name)
    return d


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def side_by_side(left: Path, right: Path) -> np.ndarray:
    """Two photos pasted side by side at 250 px high (a two-person photo)."""
    a = Image.open(left).convert("RGB").resize((250, 250))
    b = Image.open(right).convert("RGB").resize((250, 250))
    return np.concatenate([np.asarray(a), np.asarray(b)], axis=1)


def save(arr: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def lines(report: Path) -> list[dict]:
    return [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]


def photo_lines(report: Path) -> dict[str, dict]:
    return {d["path"]: d for d in lines(report) if d["kind"] == "photo"}


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def changed_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    diff = np.any(a != b, axis=2)
    if not diff.any():
        return None
    ys, xs = np.nonzero(diff)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def inside(inner, outer, margin: int = 0) -> bool:
    return inner[0] >= outer[0] - margin and inner[1] >= outer[1] - margin and inner[2] <= outer[2] + margin and inner[3] <= outer[3] + margin


ALBUM_FIELDS = {"out_dir", "overwrite", "copy_unchanged", "workers", "identity_k", "identify_all"}


def opts(album: Path, person: Path, weights: Path, self_check: bool = False, all_faces: bool = False,
         **kw) -> BatchOptions:
    """BatchOptions for the tests: album settings from ``kw``, the rest to RetouchOptions.

    ``self_check`` is off by default: the random model's eyes would fail it (see the module doc).
    """
    kw.setdefault("workers", 0)
    album_kw = {k: kw.pop(k) for k in list(kw) if k in ALBUM_FIELDS}
    retouch = RetouchOptions(weights=str(weights), device="cpu", faces="all" if all_faces else "closed",
                             self_check=SelfCheckConfig(enabled=self_check), **kw)
    return BatchOptions(album=album, person_dir=person, options=retouch, **album_kw)


# ---------------------------------------------------------------------------------------


def test_identity_distance_is_the_mean_of_the_closest_k():
    samples = np.zeros((4, 128), np.float32)
    samples[:, 0] = [0.1, 0.2, 0.9, 0.3]
    target = np.zeros(128, np.float32)
    assert identity_distance(target, samples, k=1) == pytest.approx(0.1)
    assert identity_distance(target, samples, k=3) == pytest.approx(0.2)
    assert identity_distance(target, samples, k=10) == pytest.approx(0.375)  # k capped at the samples


def test_load_person_rejects_group_photos_strangers_and_faceless(tmp_path):
    d = tmp_path / "person"
    d.mkdir()
    for p in CHAVEZ_OPEN:
        shutil.copy(p, d / p.name)
    shutil.copy(POWELL[0], d / "zz_powell.jpg")  # a wrong file in the folder
    shutil.copy(GROUP, d / "group.jpg")  # several faces: whose?
    save(np.full((120, 160, 3), 128, np.uint8), d / "wall.png")  # no face
    (d / "notes.txt").write_text("not a photo")
    person = load_person(d)
    assert [p.name for p in person.photos] == [p.name for p in sorted(CHAVEZ_OPEN, key=lambda p: p.name)]
    assert person.descriptors.shape == (3, 128)
    why = {Path(r["path"]).name: r["reason"] for r in person.rejected}
    assert set(why) == {"zz_powell.jpg", "group.jpg", "wall.png"}
    assert "another person" in why["zz_powell.jpg"] and "4 faces" in why["group.jpg"] and "no face" in why["wall.png"]


def test_only_the_persons_closed_eyes_change(tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / "album"
    # Chavez (closed, left) beside someone else with closed eyes (right): only Chavez is retouched.
    pair = save(side_by_side(CHAVEZ_CLOSED, CLOSED_CROPS[0]), album / "pair.png")
    save(side_by_side(CHAVEZ_CLOSED, POWELL[0]), album / "trip" / "with_powell.png")
    shutil.copy(POWELL[1], album / "powell.jpg")
    before = digest(album)

    summary = run_batch(opts(album, chavez_dir, tiny_weights))
    out = tmp_path / "album_open"  # the default: beside the album
    assert summary.out_dir.resolve() == out.resolve()
    assert digest(album) == before  # originals untouched
    assert summary.counts["retouched"] == 2 and summary.counts["unchanged"] == 1 and summary.faces_retouched == 2

    recs = photo_lines(out / "report.jsonl")
    faces = recs["pair.png"]["faces"]
    assert [f["status"] for f in faces] == ["retouched", "other person"]
    assert faces[0]["person"] is True and faces[0]["distance"] < 0.6
    assert faces[1]["person"] is False and faces[1]["distance"] > 0.6 and faces[1]["eyes_before"]["closed"]
    assert recs["pair.png"]["matched"] == [0] and recs["pair.png"]["retouched"] == [0]
    assert recs["pair.png"]["references"] and Path(recs["pair.png"]["references"][0]).parent.name == "chavez"

    # PNG in, PNG out: every changed pixel is in Chavez's half, around his eyes.
    after = rgb(out / "pair.png")
    box = changed_box(rgb(pair), after)
    assert box is not None and box[2] <= 250 and inside(box, faces[0]["box"], margin=10)
    assert (out / "trip" / "with_powell.png").is_file()  # the album's layout is kept
    assert not (out / "powell.jpg").exists()  # nothing to do: not written without --copy-unchanged
    assert recs["powell.jpg"]["status"] == "unchanged"
    assert sorted(p.name for p in out.iterdir()) == ["pair.png", "report.jsonl", "trip"]  # no lock file left


def test_group_photo_only_the_persons_face(tmp_path, tiny_weights):
    """Angelina Jolie (img4.jpg) is face 2 of the group: --all-faces retouches hers only."""
    person = tmp_path / "angelina"
    person.mkdir()
    shutil.copy(HIGHRES, person / HIGHRES.name)
    album = tmp_path / "album"
    group = save(rgb(GROUP), album / "group.png")
    # her face in the group is turned ~35° from her portrait: beyond the pose limit, so left alone ...
    summary = run_batch(opts(album, person, tiny_weights, all_faces=True, out_dir=tmp_path / "limited"))
    assert summary.counts["retouched"] == 0
    rec = photo_lines(tmp_path / "limited" / "report.jsonl")["group.png"]
    assert rec["faces"][GROUP_ANGELINA]["status"] == "pose out of range"
    assert "the model is reliable up to" in rec["faces"][GROUP_ANGELINA]["message"]
    # ... unless forced
    summary = run_batch(opts(album, person, tiny_weights, all_faces=True, out_dir=tmp_path / "out", force=True))
    assert summary.counts["retouched"] == 1
    rec = photo_lines(tmp_path / "out" / "report.jsonl")["group.png"]
    assert "forced past the pose limit" in rec["faces"][GROUP_ANGELINA]["message"]
    assert len(rec["faces"]) == GROUP_FACES
    assert rec["matched"] == [GROUP_ANGELINA] and rec["retouched"] == [GROUP_ANGELINA]
    assert all(f["status"] == "other person" for i, f in enumerate(rec["faces"]) if i != GROUP_ANGELINA)
    box = changed_box(rgb(group), rgb(tmp_path / "out" / "group.png"))
    assert box is not None and inside(box, rec["faces"][GROUP_ANGELINA]["box"], margin=10)


def test_resume_after_interruption(tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / "album"
    save(rgb(CHAVEZ_CLOSED), album / "a" / "chavez1.jpg", quality=95)
    save(rgb(CHAVEZ_CLOSED)[:, ::-1].copy(), album / "b" / "chavez2.jpg", quality=95)
    shutil.copy(POWELL[0], album / "powell.jpg")
    out = tmp_path / "out"
    first = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out, copy_unchanged=True, workers=2))
    assert first.counts["retouched"] == 2 and first.counts["copied"] == 1
    assert filecmp.cmp(album / "powell.jpg", out / "powell.jpg", shallow=False)  # copied byte for byte
    n_lines = len(lines(out / "report.jsonl"))
    assert n_lines == 3 + 2  # run-start, 3 photos, run-end
    kept = (out / "b" / "chavez2.jpg").stat().st_mtime_ns

    # An interruption: one output missing, a temporary file left by a killed write, a cut line.
    (out / "a" / "chavez1.jpg").unlink()
    stray = out / "a" / ".chavez1.jpg.x1y2z3w4.tmp"
    stray.write_bytes(b"half a photo")
    with open(out / "report.jsonl", "a") as f:
        f.write('{"kind": "photo", "path": "a/chav')

    second = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out))
    assert second.temp_removed == 1 and not stray.exists()
    assert second.counts["retouched"] == 1 and second.counts["skipped-existing"] == 2
    assert second.analysed == 1  # only the missing one was decoded again
    assert (out / "b" / "chavez2.jpg").stat().st_mtime_ns == kept
    assert (out / "a" / "chavez1.jpg").is_file()
    all_lines = (out / "report.jsonl").read_text().splitlines()
    assert len(all_lines) == n_lines + 1 + 5  # the cut line, then this run's lines
    recs = [json.loads(x) for x in all_lines[n_lines + 1:]]
    assert [r["kind"] for r in recs] == ["run-start", "photo", "photo", "photo", "run-end"]
    status = {r["path"]: r["status"] for r in recs if r["kind"] == "photo"}
    assert status == {"a/chavez1.jpg": "retouched", "b/chavez2.jpg": "skipped-existing", "powell.jpg": "skipped-existing"}

    # A third run without the copies: the photo known unchanged is not decoded again.
    (out / "powell.jpg").unlink()
    third = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out))
    assert third.analysed == 0 and third.counts["unchanged"] == 1
    last = json.loads((out / "report.jsonl").read_text().splitlines()[-2])
    assert last["path"] == "powell.jpg" and last["status"] == "unchanged" and last["resumed"] is True


def _running_batch(album: Path, out: Path, person: Path, weights: Path, *flags: str, photos: int, **popen):
    """A real `exgan batch` (python -m exgan_cli) in a subprocess, returned running once its
    report records ``photos`` photos (killed if it ends first or takes over 2 minutes)."""
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "exgan_cli", "batch", str(album), "--person-dir", str(person), "-o", str(out),
           "--weights", str(weights), "--device", "cpu", "--no-self-check", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        report = out / "report.jsonl"
        if report.is_file() and report.read_text().count('"kind": "photo"') >= photos:
            break
        time.sleep(0.02)
    if proc.poll() is not None or time.monotonic() >= deadline:
        proc.kill()
        proc.wait()
        pytest.fail("the run ended (or stalled) before it could be interrupted")
    return proc


def test_resume_after_kill_9(tmp_path, tiny_weights, chavez_dir):
    """A real `exgan batch` killed with SIGKILL mid-run: the re-run finishes the album and
    every output is a whole photo."""
    import os
    import signal
    import subprocess

    album = tmp_path / "album"
    face = rgb(CHAVEZ_CLOSED)
    for i in range(8):
        save(np.roll(face, i, axis=1), album / f"d{i % 3}" / f"chavez{i:02}.jpg", quality=95)
    out = tmp_path / "out"
    proc = _running_batch(album, out, chavez_dir, tiny_weights, "--workers", "0", "--quiet", photos=2,
                          stderr=subprocess.DEVNULL)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(out.rglob("chavez*.jpg")))
    assert 2 <= done_before < 8

    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out))
    assert s.counts["retouched"] == 8 - done_before and s.counts["skipped-existing"] == done_before
    outputs = sorted(out.rglob("chavez*.jpg"))
    assert len(outputs) == 8
    for p in outputs:
        with Image.open(p) as im:
            im.load()  # whole files only: a half-written one would fail here
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_never_overwrites_without_the_flag(tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(CHAVEZ_CLOSED, album / "chavez.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "chavez.jpg").write_bytes(b"someone's file")
    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out))
    assert s.counts["skipped-existing"] == 1 and (out / "chavez.jpg").read_bytes() == b"someone's file"
    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out, overwrite=True, min_face=80))
    assert s.counts["retouched"] == 1
    with Image.open(out / "chavez.jpg") as im:
        assert im.format == "JPEG" and im.size == (250, 250)
    assert filecmp.cmp(album / "chavez.jpg", CHAVEZ_CLOSED, shallow=False)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_odd_files_never_stop_the_run(tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / "album"
    album.mkdir()
    src = CHAVEZ_CLOSED.read_bytes()
    face = rgb(CHAVEZ_CLOSED)
    # Invalid: errors for that photo.
    (album / "zero.jpg").write_bytes(b"")
    (album / "truncated.jpg").write_bytes(src[: len(src) // 2])
    (album / "text.jpg").write_text("this is not a photo")
    png = io.BytesIO()
    Image.fromarray(face).save(png, format="PNG")
    raw = bytearray(png.getvalue())
    idat = raw.index(b"IDAT")
    raw[idat + 40: idat + 240] = bytes(200)  # corrupt compressed data
    (album / "corrupt.png").write_bytes(bytes(raw))
    (album / "huge.png").write_bytes(_png_header_only(20000, 20000))  # 400 MP > images.MAX_PIXELS
    # Valid, if unusual: handled like any photo (Chavez's eyes are closed in each).
    save(np.asarray(Image.fromarray(face).convert("L")), album / "grey.jpg")
    Image.fromarray(face).convert("CMYK").save(album / "cmyk.jpg")
    g16 = (np.asarray(Image.fromarray(face).convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(g16).save(album / "grey16.png")
    rgba = np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])
    save(rgba, album / "rgba.png")
    # Stored sideways with EXIF orientation 6 (rotate 90 deg clockwise to view): upright 250 x 200.
    upright = face[25:225]
    stored = Image.fromarray(np.rot90(upright, k=1).copy())  # 90 deg counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(album / "rotated.jpg", exif=exif.tobytes(), quality=95)
    (album / "notes.txt").write_text("other file")
    (album / ".DS_Store").write_bytes(b"\0")

    out = tmp_path / "out"
    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out))
    recs = photo_lines(out / "report.jsonl")
    errors = {k: v["error"] for k, v in recs.items() if v["status"] == "error"}
    assert set(errors) == {"zero.jpg", "truncated.jpg", "text.jpg", "corrupt.png", "huge.png"}
    assert "empty" in errors["zero.jpg"] and "too large" in errors["huge.png"] and "not an image" in errors["text.jpg"]
    assert all(e.startswith(str(album)) for e in errors.values())  # each names its file
    for name in ("grey.jpg", "cmyk.jpg", "grey16.png", "rgba.png", "rotated.jpg"):
        assert recs[name]["status"] == "retouched", (name, recs[name])
    assert s.others == {".txt": 1, "hidden": 1}
    with Image.open(out / "rotated.jpg") as im:  # patched (jpeg_patch.py): stored sideways as the input, tag kept
        assert im.size == (200, 250) and im.getexif().get(0x0112, 1) == 6
    with Image.open(out / "rotated.jpg") as im:
        assert ImageOps.exif_transpose(im).size == (250, 200)  # shown upright
    assert recs["rotated.jpg"]["save"]["method"] == "patched"
    assert recs["grey.jpg"]["save"]["method"] == "patched" and recs["cmyk.jpg"]["save"]["method"] == "full"
    with Image.open(out / "rgba.png") as im:
        assert im.mode == "RGBA" and np.asarray(im)[..., 3].min() == 200
    with Image.open(out / "cmyk.jpg") as im:  # each kept as the kind of image it was (files/kinds.py)
        assert im.mode == "CMYK"
    with Image.open(out / "grey.jpg") as im, Image.open(out / "grey16.png") as im16:
        assert im.mode == "L" and im16.mode == "I;16"
    assert recs["cmyk.jpg"]["save"]["kind"] == "CMYK" and recs["grey16.png"]["save"]["kind"] == "16-bit grey"
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))


def test_self_check_refuses_the_random_model(tmp_path, tiny_weights, chavez_dir, monkeypatch):
    """With the self-check on (the default), a photo whose only face fails it is reported
    "failed self-check" and nothing is written for it (a byte-identical copy with copy_unchanged).

    The random model's eyes do not reliably fail on their own (the classifier put this face at
    P(closed) 0.74 < 0.81 after one of its attempts), so the eye state is made to say "closed"
    whatever the pixels: every reference then fails the check, deterministically. (The person's
    references are judged by references.load_candidates, which this does not touch.)"""
    from dataclasses import replace

    from exgan_cli.stages import eye_state as eyes, references

    real_assess = eyes.assess
    assert references.assess is real_assess  # imported by name: the references keep the real one
    monkeypatch.setattr(eyes, "assess", lambda rgb, face, *a, **k: replace(real_assess(rgb, face, *a, **k), closed=True))
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(CHAVEZ_CLOSED, album / "chavez.jpg")
    out = tmp_path / "out"
    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=out, self_check=True))
    assert s.counts["failed self-check"] == 1 and s.counts["retouched"] == 0
    assert s.faces_retouched == 0 and s.faces_failed_check == 1
    assert not (out / "chavez.jpg").exists()
    rec = photo_lines(out / "report.jsonl")["chavez.jpg"]
    assert rec["status"] == "failed self-check" and rec["output"] is None
    assert rec["retouched"] == [] and rec["failed_check"] == [0] and rec["references"] == []
    face = rec["faces"][0]
    assert face["status"] == "failed self-check" and face["self_check"]["enabled"] is True
    assert face["self_check"]["passed"] is False and face["self_check"]["attempts"]
    # each of the person's references within the pose limit was tried (one of the three is turned beyond it)
    assert len(face["self_check"]["attempts"]) == 2
    assert all("eyes not open" in " ".join(a["reasons"]) for a in face["self_check"]["attempts"])
    end = lines(out / "report.jsonl")[-1]
    assert end["counts"]["failed self-check"] == 1 and end["faces_failed_check"] == 1
    assert end["failed_self_check"][0]["path"] == "chavez.jpg"

    # --copy-unchanged: a byte-identical copy, still reported as failed.
    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=tmp_path / "out2", self_check=True, copy_unchanged=True))
    assert s.counts["failed self-check"] == 1
    assert filecmp.cmp(album / "chavez.jpg", tmp_path / "out2" / "chavez.jpg", shallow=False)


def test_huge_photo_by_max_pixels(tmp_path, tiny_weights, chavez_dir, monkeypatch):
    import exgan_cli.files.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 250 * 250)  # the person's 250 x 250 photos pass
    album = tmp_path / "album"
    save(side_by_side(CHAVEZ_CLOSED, POWELL[0]), album / "big.jpg")  # 500 x 250
    s = run_batch(opts(album, chavez_dir, tiny_weights, out_dir=tmp_path / "out"))
    assert s.counts["error"] == 1 and "too large" in s.errors[0][1]


# ---------------------------------------------------------------------------------------
# The command


def invoke(*args: str):
    return CliRunner().invoke(app, ["batch", *map(str, args)])


def test_cli_runs_writes_report_and_exits_0_with_failed_photos(tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(CHAVEZ_CLOSED, album / "chavez.jpg")
    shutil.copy(POWELL[0], album / "powell.jpg")
    (album / "broken.jpg").write_bytes(b"")
    res = invoke(album, "--person-dir", chavez_dir, "--weights", tiny_weights, "--workers", "0", "--device", "cpu", "--identify-all",
                 "--no-self-check")
    assert res.exit_code == 0, res.output
    assert "broken.jpg" in res.output and "retouched" in res.output
    recs = lines(tmp_path / "album_open" / "report.jsonl")
    assert [r["kind"] for r in recs] == ["run-start", "photo", "photo", "photo", "run-end"]
    assert recs[-1]["counts"]["retouched"] == 1 and recs[-1]["counts"]["error"] == 1 and recs[-1]["completed"]
    powell = next(r for r in recs if r.get("path") == "powell.jpg")
    assert powell["status"] == "unchanged" and powell["faces"][0]["distance"] > 0.6
    assert powell["faces"][0]["person"] is False and powell["faces"][0]["status"] == "other person"


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_stdout_lists_the_written_photos_and_stderr_keeps_paths_whole(quiet, tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / ("an-album-with-a-long-name-" * 3)
    album.mkdir()
    shutil.copy(CHAVEZ_CLOSED, album / "chavez.jpg")
    shutil.copy(POWELL[0], album / "powell.jpg")
    out = tmp_path / "out"
    res = invoke(album, "-p", chavez_dir, "-o", out, "--weights", tiny_weights, "--workers", "0", "--device", "cpu",
                 "--no-self-check", "--copy-unchanged", *(["--quiet"] if quiet else []))
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [str(out / "chavez.jpg"), str(out / "powell.jpg")]  # retouched, copied
    if quiet:
        assert res.stderr == ""
        return
    lines = res.stderr.splitlines()
    assert f"{album} -> {out}" in lines and len(str(album)) > 80  # whole, though longer than a pipe's 80 columns
    assert "1 face retouched, 0 errors" in res.stderr and "1 faces" not in res.stderr
    assert f"report: {out / 'report.jsonl'}" in lines
    assert not [line for line in lines if line != line.rstrip()]


def test_progress_rate_is_the_summarys(tmp_path):
    """The bar's photos/s is the summary's: photos analysed over the run's whole time so far, and
    in the bar's last frame the summary's very figure (a real run left 0.81 beside 0.78)."""
    from exgan_cli.apps.batch.journal import PhotoRecord
    from exgan_cli.commands.batch import _View, rate

    now = [100.0]
    view = _View(quiet=True, clock=lambda: now[0])
    now[0] = 110.0  # 10 s in: the person and the model loaded, two photos analysed
    for name in ("a.jpg", "b.jpg"):
        view.photo(PhotoRecord(name, "unchanged", analysed=True))
    assert view.text() == "photos, 0 faces retouched, 0 errors, 0.20 photos/s, ETA"
    assert rate(2, 10.0) == "0.20 photos/s" and rate(0, 10.0) == "-- photos/s"

    frames: list[str] = []

    class Bar:  # the rich progress bar's calls
        def update(self, task, **fields):
            frames.append(fields["text"])

        def stop(self):
            frames.append("stopped")

    view.progress, view.task = Bar(), 0
    now[0] = 112.0  # the run ends 2 s after its last photo: the last frame is the summary's figure
    view.stop(SimpleNamespace(analysed=2, seconds=11.5))
    assert frames == ["photos, 0 faces retouched, 0 errors, 0.17 photos/s, ETA", "stopped"]


def test_cli_exit_codes(tmp_path, tiny_weights, chavez_dir):
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(POWELL[0], album / "p.jpg")
    common = ["--weights", tiny_weights, "--workers", "0"]

    res = invoke(tmp_path / "missing", "--person-dir", chavez_dir, *common)
    assert res.exit_code == EXIT_BAD_DATA and "album folder not found" in res.output
    res = invoke(album, "--person-dir", tmp_path / "nobody", *common)
    assert res.exit_code == EXIT_BAD_DATA and "person folder not found" in res.output
    faceless = tmp_path / "faceless"
    save(np.full((100, 100, 3), 90, np.uint8), faceless / "wall.jpg")
    res = invoke(album, "--person-dir", faceless, *common)
    assert res.exit_code == EXIT_BAD_DATA and "no usable face" in res.output and "wall.jpg" in res.output
    closed = tmp_path / "closed"
    closed.mkdir()
    shutil.copy(CHAVEZ_CLOSED, closed / "c.jpg")
    res = invoke(album, "--person-dir", closed, *common)
    assert res.exit_code == EXIT_NO_REFERENCE
    bad_weights = tmp_path / "w"
    bad_weights.mkdir()
    res = invoke(album, "--person-dir", chavez_dir, "--weights", bad_weights, "--workers", "0")
    assert res.exit_code == EXIT_BAD_WEIGHTS
    res = invoke(album, "--person-dir", chavez_dir, "-o", album / "out", *common)
    assert res.exit_code == EXIT_OUTPUT and "inside the album" in res.output
    res = invoke(album, *common)  # --person-dir is required
    assert res.exit_code == 2
    # None of these wrote anything.
    assert not (tmp_path / "album_open").exists() and not (album / "out").exists()


def test_lock_one_run_at_a_time_and_no_lock_file_left(tmp_path):
    from exgan_cli.apps.batch.album import LOCK_NAME, locked
    from exgan_cli.errors import OutputError

    with locked(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
        with pytest.raises(OutputError, match="another exgan batch run is writing to this folder"):
            with locked(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists()
    (tmp_path / LOCK_NAME).write_bytes(b"")  # left by a run killed with -9: taken over, then removed
    with locked(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_library_raises_before_writing(tmp_path, tiny_weights, chavez_dir):
    with pytest.raises(DataError):
        run_batch(opts(tmp_path / "nope", chavez_dir, tiny_weights))
    assert batchlib.default_out_dir(tmp_path / "album") == (tmp_path / "album_open").resolve()


# ---------------------------------------------------------------------------------------
# Interruptions: a real `exgan batch` with worker processes, stopped by a signal


def _live_processes(group: int) -> list[str]:
    """'pid name' of the live (not zombie) processes in a process group (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text() if d.name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        if stat:
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                out.append(f"{d.name} {stat[stat.index('(') + 1:stat.rindex(')')]}")
    return out


def _hears_ctrl_c() -> None:
    """In the child before exec: SIGINT back to its default, as in a terminal's foreground job
    (a shell starts background jobs, such as a CI step under nohup or &, with it ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_batch(tmp_path, tiny_weights, chavez_dir):
    """`exgan batch` with 2 workers in a session of its own, once it has written its first photo."""
    album = tmp_path / "album"
    face = rgb(CHAVEZ_CLOSED)
    for i in range(40):
        save(np.roll(face, i, axis=1), album / f"chavez{i:02}.jpg", quality=95)
    err = open(tmp_path / "stderr.txt", "w")  # a file, not a pipe: orphaned workers would hold a pipe open
    proc = _running_batch(album, tmp_path / "out", chavez_dir, tiny_weights, "--workers", "2", photos=1,
                          stderr=err, start_new_session=True, preexec_fn=_hears_ctrl_c)
    return proc, err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "Ctrl-C"])
def test_interrupted_batch_leaves_no_process_and_says_one_line(how, tmp_path, tiny_weights, chavez_dir):
    """Killed with TERM or KILL, or Ctrl-C (SIGINT to the whole foreground group, as a terminal
    sends it): 5 s later no process of the run is left (workers, multiprocessing's resource
    tracker); TERM and Ctrl-C end with the one line 'interrupted' and exit 130, no traceback."""
    import os
    import signal
    import time

    proc, err = _start_batch(tmp_path, tiny_weights, chavez_dir)
    group = proc.pid
    try:
        assert len(_live_processes(group)) >= 3, _live_processes(group)  # the command and its 2 workers
        if how == "Ctrl-C":
            os.killpg(group, signal.SIGINT)
        else:
            os.kill(proc.pid, getattr(signal, how))
        killed = time.monotonic()
        proc.wait(timeout=30)
        while _live_processes(group) and time.monotonic() < killed + 5:
            time.sleep(0.05)
        assert _live_processes(group) == []
    finally:
        err.close()
        if _live_processes(group):
            os.killpg(group, signal.SIGKILL)
    text = (tmp_path / "stderr.txt").read_text()
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, text
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
        assert text.rstrip().splitlines()[-1] == "interrupted", text
    assert not (tmp_path / "out" / ".exgan-batch.lock").exists() or how == "SIGKILL"
