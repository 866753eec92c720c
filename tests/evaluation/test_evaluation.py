"""`exgan evaluate`: the protocol, baselines, a tiny random model, the JSON layout, the CLI, and
the real-closed-eyes mode, on the real LFW photos of tests/data/lfw (3 persons, 10 photos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exgan_cli.evaluation import baselines as B, closed as C, grids, pool, protocol as E, split
from exgan_cli.errors import DataError
from conftest import LFW

LFW = LFW
CLOSED_PHOTO = "Hugo_Chavez/Hugo_Chavez_0017.jpg"  # the one closed-eyed photo (conftest.CHAVEZ_CLOSED)


def _need_lfw() -> None:
    if not LFW.is_dir() or len([p for p in LFW.iterdir() if p.is_dir()]) < 3:
        pytest.skip("tests/data/lfw with 3 persons is not there")


def _tiny_model(folder: Path, mode: str = "reference", resolution: int = 128) -> Path:
    import torch

    from exgan_cli.stages.geometry import AlignConfig, MaskConfig
    from exgan_cli.model.config import ModelConfig
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import save_pretrained

    torch.manual_seed(0)
    cfg = ModelConfig(mode=mode, resolution=resolution, base_channels=8, n_blocks=1)
    return save_pretrained(folder, Generator(cfg), None, cfg, AlignConfig(resolution=resolution), MaskConfig(), "tiny test model")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private face cache folder and a tiny random reference-mode model at 128 px."""
    _need_lfw()
    root = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXGAN_CACHE_DIR", str(root / "cache"))
        yield {"root": root, "model": _tiny_model(root / "tiny-ref")}


@pytest.fixture(scope="module")
def result(env):
    cfg = E.EvalConfig(data=LFW, weights=[str(env["model"])], workers=1, bootstrap=50, grid_rows=4)
    return E.evaluate(cfg)


# ---------------------------------------------------------------------------------------
# Protocol


def test_select_protocol_references_and_wrong_references():
    eligible = {"A": ["A/1", "A/2", "A/3"], "B": ["B/1", "B/2"], "C": ["C/1"], "D": ["D/1", "D/2"]}
    p = split.select_protocol(["B", "C", "A", "D"], eligible)
    assert p.targets == ["B/1", "B/2", "A/1", "A/2", "A/3", "D/1", "D/2"]  # C has one face: no reference
    assert p.references == ["B/2", "B/1", "A/2", "A/3", "A/1", "D/2", "D/1"]  # the next one, wrapping
    # wrong: the same index in the next person's faces (wrapping), never the target's person
    assert p.wrong_references == ["A/1", "A/2", "D/1", "D/2", "D/1", "B/1", "B/2"]
    assert all(w != t for w, t in zip(p.wrong_persons, p.persons))
    # --limit: persons in order until enough faces; the last one's wrong person is the next one in the order
    q = split.select_protocol(["B", "C", "A", "D"], eligible, limit=3)
    assert q.targets == ["B/1", "B/2", "A/1"] and q.wrong_persons == ["A", "A", "D"]
    assert q.targets == p.targets[:3] and q.wrong_references == p.wrong_references[:3]
    with pytest.raises(DataError):
        split.select_protocol(["A", "C"], eligible)  # one usable person: no wrong reference possible
    # _enough: settled when the limit is reached and one more person is known
    assert not split.enough(["B", "C"], eligible, 3)
    assert not split.enough(["B", "C", "A"], eligible, 3)
    assert split.enough(["B", "C", "A", "D"], eligible, 3)


def test_person_order_is_seeded():
    names = [f"P{i}" for i in range(20)]
    assert split.person_order(names, 1) == split.person_order(list(reversed(names)), 1)
    assert split.person_order(names, 1) != split.person_order(names, 2)


def test_baselines_fill_only_the_hole():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ref = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    boxes = [(10.0, 20.0, 26.0, 30.0), (36.0, 20.0, 52.0, 30.0)]
    from exgan_cli.stages.geometry import boxes_to_mask

    mask = boxes_to_mask(boxes, 64)
    for out in (B.telea_inpaint(crop, mask), B.navier_stokes_inpaint(crop, mask), B.poisson_copy_paste(crop, boxes, ref, boxes)):
        assert out.shape == crop.shape and out.dtype == np.uint8
        assert np.array_equal(out[mask == 0], crop[mask == 0])
        assert not np.array_equal(out[mask > 0], crop[mask > 0])
    # copy-paste carries the reference's gradients (a flat reference would give a plain membrane)
    flat = B.poisson_copy_paste(crop, boxes, np.full_like(ref, 90), boxes)
    assert np.array_equal(flat, B.poisson_copy_paste(crop, boxes, np.full_like(ref, 200), boxes))
    assert not np.array_equal(flat, B.poisson_copy_paste(crop, boxes, ref, boxes))


def test_no_method_reads_the_truth_under_the_hole(tiny_model):
    """Two crops that differ only inside the eye boxes (the answer) must get the same in-painting
    from every method: a method that read the hole (as open-eyes' colour match does with the
    photo it retouches) would be scored on the truth it copied. The model's exemplar (the
    reference's eyes relit to the target's cheeks and warped onto its eyes) must not read it either."""
    from exgan_cli.stages import faces, geometry
    from exgan_cli.files.images import load_image
    from exgan_cli.model.weights import load_pretrained

    from conftest import CHAVEZ_OPEN

    def aligned(path):
        rgb = load_image(path).pixels
        face = faces.central_face(faces.detect_faces(rgb), (rgb.shape[1], rgb.shape[0]))
        crop, m = geometry.align_face(rgb, face.landmarks)
        return crop, geometry.transform_points(face.landmarks, m)

    (a, lm), (ref, ref_lm) = aligned(CHAVEZ_OPEN[0]), aligned(CHAVEZ_OPEN[1])
    boxes = geometry.eye_boxes(lm)
    mask = geometry.boxes_to_mask(boxes, 128)
    ref_boxes = geometry.eye_boxes(ref_lm)
    b = a.copy()
    b[mask > 0] = 255 - a[mask > 0]
    model = load_pretrained(tiny_model, device="cpu")
    refs = {"right": pool.FaceSet(ref[None], [ref_boxes], geometry.boxes_to_mask(ref_boxes, 128)[None], [ref_lm])}
    outs = [B.model_inpaint(model, pool.Batch(pool.FaceSet(c[None], [boxes], mask[None], [lm]), refs), "right")[0] for c in (a, b)]
    assert np.array_equal(outs[0], outs[1])
    for fn in (B.telea_inpaint, B.navier_stokes_inpaint):
        assert np.array_equal(fn(a, mask), fn(b, mask))
    assert np.array_equal(B.poisson_copy_paste(a, boxes, ref, ref_boxes), B.poisson_copy_paste(b, boxes, ref, ref_boxes))


# ---------------------------------------------------------------------------------------
# The evaluator on real faces


def test_protocol_on_real_faces(result):
    p = result.protocol
    assert len(p) == 9  # 10 photos; Chavez 0017 has closed eyes
    assert CLOSED_PHOTO not in p.targets and CLOSED_PHOTO not in p.references
    assert len(set(p.persons)) == 3
    for t, r, w, person, wperson in zip(p.targets, p.references, p.wrong_references, p.persons, p.wrong_persons):
        assert t != r and Path(t).parent.name == Path(r).parent.name == person
        assert Path(w).parent.name == wperson != person  # the wrong reference is always another person


def test_json_layout(result):
    d = json.loads(json.dumps(result.to_dict()))
    for key in ("format", "data", "caches", "seed", "limit", "faces", "persons", "metrics", "methods", "summary", "notes", "rows"):
        assert key in d
    assert d["format"] == E.FORMAT and d["faces"] == 9 and d["persons"] == 3
    names = [m["name"] for m in d["methods"]]
    assert names == ["telea", "navier-stokes", "poisson-copy", "tiny-ref"]
    assert {m["name"]: m["uses_reference"] for m in d["methods"]} == {
        "telea": False, "navier-stokes": False, "poisson-copy": True, "tiny-ref": True,
    }
    assert len(d["rows"]) == 9 * len(names) * 2
    row = d["rows"][0]
    assert set(row) == {"photo", "person", "reference", "reference_person", "method", "ref",
                        "l1_face", "l1_eyes", "psnr_eyes", "ssim_eyes", "ms_ssim_eyes", "detail_eyes", "seam_eyes", "colour_eyes",
                        "identity", "pose_difference"}
    assert set(d["colour"]) == {"faces", "natural", "methods"} and set(d["colour"]["methods"]) == set(names)
    for r in d["rows"]:
        assert (r["reference_person"] == r["person"]) == (r["ref"] == "right")
        assert 0 <= r["l1_face"] <= r["l1_eyes"] <= 1 and -1 <= r["ssim_eyes"] <= 1 and 0 <= r["ms_ssim_eyes"] <= 1
        assert 0 <= r["identity"] < 2 and r["detail_eyes"] >= 0
    metric_keys = [k for k, _, _ in E.METRICS] + ["frechet_descriptor"]
    for name in names:
        entry = d["summary"][name]
        # every method but the first model is also compared with it, paired on the same faces
        assert set(entry) == {"right", "wrong", "exemplar_gain"} | ({"vs_primary"} if name != "tiny-ref" else set())
        if name != "tiny-ref":
            vs = entry.pop("vs_primary")
            assert vs.pop("primary") == "tiny-ref" and set(vs) == {k for k, _, _ in E.METRICS}
        for part in entry.values():
            assert set(part) == set(metric_keys)
            for stat in part.values():
                lo, hi = stat["ci95"]
                assert stat["n"] == 9 and lo <= stat["mean"] <= hi
    assert any("Inception" in n for n in d["notes"]) and any("FID" in n for n in d["notes"])
    assert d["ms_ssim_scales"] == {"128": 2}


def test_paired_difference_against_the_first_model(result):
    # the paired difference is the difference of the means (same faces), signed: > 0 = better
    s = result.summary
    for name in ("telea", "poisson-copy"):
        vs = s[name]["vs_primary"]
        for key, _, higher in E.METRICS:
            diff = s["tiny-ref"]["right"][key]["mean"] - s[name]["right"][key]["mean"]
            assert vs[key]["mean"] == pytest.approx(diff if higher else -diff, abs=2e-4)
            lo, hi = vs[key]["ci95"]
            assert lo <= vs[key]["mean"] <= hi


def test_reference_blind_methods_score_the_same_twice(result):
    d = result.to_dict()
    for name in ("telea", "navier-stokes"):
        gain = d["summary"][name]["exemplar_gain"]
        assert all(g["mean"] == 0 for g in gain.values())
        assert d["summary"][name]["right"] == d["summary"][name]["wrong"]


def test_copy_paste_uses_its_exemplar_and_beats_telea(result):
    s = result.summary
    # pasting the person's own eyes comes closer to the real face than another person's eyes
    assert s["poisson-copy"]["exemplar_gain"]["identity"]["mean"] > 0
    assert s["poisson-copy"]["exemplar_gain"]["frechet_descriptor"]["mean"] > 0
    assert s["poisson-copy"]["right"]["identity"]["mean"] < s["telea"]["right"]["identity"]["mean"]
    # whole-face L1 only differs inside the holes, which are a small part of the face
    for name in s:
        assert s[name]["right"]["l1_face"]["mean"] < 0.25 * s[name]["right"]["l1_eyes"]["mean"]


def test_grid_layout(result):
    g = result.grid
    columns = 2 + len(result.methods) + 1  # masked, reference, methods, truth
    assert g.dtype == np.uint8 and g.shape == (18 + 4 * (128 + 2), columns * 128 + (columns - 1) * 2, 3)
    rows = grids.grid_faces(result.protocol, 4)  # one person after another
    assert len(rows) == 4 and len({result.protocol.persons[i] for i in rows}) == 3


def test_limit_uses_a_subset_cache_and_the_same_faces(env, result, monkeypatch):
    """Without a full cache, --limit prepares only the persons it needs; the faces are the
    first ones of the full protocol (same seed), whichever way the cache was made."""
    import os

    monkeypatch.setenv("EXGAN_CACHE_DIR", str(env["root"] / "cache"))  # the module's face caches, not this test's empty folder

    cfg = E.EvalConfig(data=LFW, weights=[], limit=3, baselines=("telea",), workers=1, bootstrap=10)
    full_cache = Path(result.caches[0])
    moved = full_cache.with_suffix(".hidden")
    os.replace(full_cache, moved)
    try:
        sub = E.evaluate(cfg)
    finally:
        os.replace(moved, full_cache)
    assert all("subset" in c for c in sub.caches)
    assert sub.protocol.targets == result.protocol.targets[:3]
    assert sub.protocol.wrong_references == result.protocol.wrong_references[:3]
    again = E.evaluate(cfg)  # now from the full cache: the same subset and numbers
    assert again.caches == [str(full_cache)]
    assert again.protocol == sub.protocol
    assert again.summary["telea"]["right"]["l1_eyes"] == sub.summary["telea"]["right"]["l1_eyes"]


def test_models_at_two_resolutions_see_the_same_photos(env):
    low = _tiny_model(env["root"] / "tiny-64", mode="none", resolution=64)
    cfg = E.EvalConfig(data=LFW, weights=[str(env["model"]), str(low)], limit=3, baselines=(), workers=1, bootstrap=10)
    r = E.evaluate(cfg)
    assert [(m.name, m.resolution) for m in r.methods] == [("tiny-ref", 128), ("tiny-64", 64)]
    photos = {m.name: sorted({(x["photo"], x["reference"]) for x in r.rows if x["method"] == m.name}) for m in r.methods}
    assert photos["tiny-ref"] == photos["tiny-64"] and len(photos["tiny-ref"]) == 6  # 3 faces x (right, wrong)
    assert r.ms_ssim_scales == {128: 2, 64: 1}


# ---------------------------------------------------------------------------------------
# Real closed eyes and the CLI


def test_closed_mode_on_the_closed_eyed_photo(env):
    # The raw pipeline: the random model's eyes need not pass the self-check.
    r = C.evaluate_closed(C.ClosedConfig(data=LFW, weights=[str(env["model"])], self_check=False))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["format"] == C.CLOSED_FORMAT and d["self_check"] is False
    rows = [x for x in d["rows"] if x["photo"] == CLOSED_PHOTO]
    assert len(rows) == 1 and len(d["rows"]) == 1
    row = rows[0]
    assert row["status"] == "retouched" and row["eyes_before"]["closed"]
    assert row["reference"].startswith("Hugo_Chavez/") and row["reference"] != CLOSED_PHOTO
    assert isinstance(row["opened"], bool) and row["references"] == 3
    assert 0 < row["identity_before"] < 0.6  # the closed-eyed Chavez is still Chavez to dlib
    s = d["summary"]["tiny-ref"]
    assert s["faces"] == s["retouched"] == 1 and s["opened"]["n"] == 1 and s["failed_self_check"] == 0
    assert row["self_check"]["enabled"] is False and row["self_check"]["attempts"] == 2  # RetouchOptions.best_of
    assert r.grid is not None and r.grid.shape[1] == 3 * 128 + 2 * 2  # before | model | reference


def test_closed_mode_counts_the_self_check(env, monkeypatch):
    """With the self-check on (the default), a face whose every reference fails it is counted as
    failed, not retouched. The eye state is made to say "closed" whatever the pixels, so every
    attempt fails deterministically (references.load_candidates keeps the real assess)."""
    from dataclasses import replace

    from exgan_cli.stages import eye_state as eyes, references

    assert references.load_candidates  # imported before the patch, so that it keeps the real assess
    real = eyes.assess
    monkeypatch.setattr(eyes, "assess", lambda rgb, face, *a, **k: replace(real(rgb, face, *a, **k), closed=True))
    r = C.evaluate_closed(C.ClosedConfig(data=LFW, weights=[str(env["model"])], limit=1))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["self_check"] is True
    row = d["rows"][0]
    assert row["status"] == "failed self-check" and row["opened"] is None
    assert row["self_check"]["enabled"] and not row["self_check"]["passed"] and row["self_check"]["attempts"] >= 1
    s = d["summary"]["tiny-ref"]
    assert s["retouched"] == 0 and s["failed_self_check"] == s["faces"] >= 1 and s["retouched_share"]["mean"] == 0


def test_cli(env, tmp_path):
    from typer.testing import CliRunner

    from exgan_cli.cli import app

    runner = CliRunner()
    out, grid = tmp_path / "eval.json", tmp_path / "grid.png"
    args = ["evaluate", "--data", str(LFW), "--weights", str(env["model"]), "--limit", "3", "--baselines", "telea", "--workers", "1"]
    res = runner.invoke(app, [*args, "--json", str(out), "--grid", str(grid)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["faces"] == 3 and {m["name"] for m in d["methods"]} == {"telea", "tiny-ref"}
    assert grid.stat().st_size > 0
    assert "Identity test" in res.output and "telea" in res.output
    # an existing output is refused before any work (exit 7), --overwrite replaces it
    assert runner.invoke(app, [*args, "--json", str(out)]).exit_code == 7
    assert runner.invoke(app, [*args, "--json", str(out), "--overwrite", "-q"]).exit_code == 0
    # --json - writes the JSON alone to stdout
    res = runner.invoke(app, [*args, "--json", "-", "-q"])
    assert res.exit_code == 0 and json.loads(res.stdout)["faces"] == 3
    # bad usage
    assert runner.invoke(app, ["evaluate"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--data", str(LFW), "--closed", str(LFW)]).exit_code == 2
    assert runner.invoke(app, [*args, "--baselines", "magic"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--data", str(tmp_path / "nope"), "--baselines", "telea"]).exit_code == 9
