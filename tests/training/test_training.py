"""Training: pairs and masks, the loop in every mode, exact resume, Ctrl-C, export, the CLI.

Most tests run on a tiny synthetic cache (tests/_synthetic.py) with a 32 px, 8-channel model;
the overfit test prepares real LFW faces from tests/data/lfw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from _synthetic import write_synthetic_cache
from exgan_cli.training import config, export, loop, pairs, steps
from exgan_cli.cli import app
from exgan_cli.training.dataset import load_dataset, prepare_dataset
from exgan_cli.errors import EXIT_BAD_WEIGHTS, EXIT_OUTPUT, EXIT_USAGE, DataError, ExganError, OutputError, WeightsError
from exgan_cli.stages.geometry import AlignConfig, MaskConfig, boxes_to_mask, eye_boxes
from exgan_cli.model import ModelConfig
from exgan_cli.training.config import TrainConfig
from conftest import LFW, ROOT

LFW = LFW
TINY = dict(resolution=32, base_channels=8, d_channels=8, n_blocks=2, code_dim=16)


@pytest.fixture(autouse=True)
def _one_thread():
    # bit-exact comparisons and steady timings on a shared 2-core machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return write_synthetic_cache(tmp_path_factory.mktemp("syn") / "syn.npz", persons=4, per_person=5, resolution=32)


def tiny(cache: Path, out: Path, mode: str = "reference", **kw) -> TrainConfig:
    # "warp": the reference model that bends the reference's eyes (ModelConfig.warp)
    model = ModelConfig(mode="reference", ref_input="eyes", relight=True, skips=True, warp=True, **TINY) if mode == "warp" \
        else ModelConfig(mode=mode, **TINY)
    base = dict(cache=str(cache), out=str(out) if out else None, model=model, batch_size=4, steps=2,
                log_every=1, eval_every=0, sample_every=0, checkpoint_every=0, threads=1)
    return TrainConfig(**{**base, **kw})


# ---- config -------------------------------------------------------------------------------


def test_config_round_trip_and_errors():
    cfg = TrainConfig(data="d", model=ModelConfig(mode="code", base_channels=16), mask=MaskConfig(jitter_scale=0.2), betas=(0.0, 0.99))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.from_dict({**d, "align": cfg.align.to_dict(), "format": "x"}) == cfg
    with pytest.raises(ValueError, match="unknown training config keys: stpes"):
        TrainConfig.from_dict({"stpes": 3})
    with pytest.raises(ValueError, match="unknown model config keys"):
        TrainConfig.from_dict({"model": {"widht": 3}})
    with pytest.raises(ValueError, match="unknown mask config keys"):
        TrainConfig.from_dict({"mask": {"jiter": 3}})
    with pytest.raises(ValueError):
        TrainConfig(batch_size=0)
    merged = config.merge_config(cfg, {"steps": 7, "model": {"n_blocks": 2}})
    assert merged.steps == 7 and merged.model.n_blocks == 2 and merged.model.mode == "code"
    assert cfg.split == "hash"
    with pytest.raises(ValueError, match="split must be one of"):
        TrainConfig(split="random")


def test_older_run_folders_keep_the_shuffle_split_and_resume_cannot_change_it(tmp_path, cache):
    # The bundled models' checkpoints were written before "split" was recorded: read as "shuffle".
    for run in ("ref-cpu", "none-cpu"):
        folder = ROOT / "train" / "checkpoints" / run
        assert "split" not in json.loads((folder / "config.json").read_text())
        assert TrainConfig.from_dict(config.read_run_config(folder)).split == "shuffle"
    for recipe in ("cpu-reference-128", "cpu-code-128", "cpu-none-128"):  # re-training them holds out the same persons
        assert config.read_config_file(ROOT / "train" / f"{recipe}.json")["split"] == "shuffle"
    loop.train(tiny(cache, tmp_path / "r", steps=1))
    assert config.read_run_config(tmp_path / "r")["split"] == "hash"
    with pytest.raises(Exception, match="split .* cannot change"):
        loop.train(tiny(cache, None, steps=2, resume=str(tmp_path / "r"), split="shuffle"))


def test_recipes_in_train_folder_are_valid():
    # recipes are the train/*.json files with a "model" (the folder holds other JSON too)
    docs = {p: json.loads(p.read_text()) for p in sorted((ROOT / "train").glob("*.json"))}
    recipes = {p: d for p, d in docs.items() if isinstance(d, dict) and "model" in d}
    assert {p.name for p in recipes} >= {"cpu-reference-128.json", "reference-128.json", "code-128.json", "none-128.json", "cpu-warp-128.json"}
    for path, d in recipes.items():
        cfg = TrainConfig.from_dict(d)
        kind = "warp" if cfg.model.warp else cfg.model.mode  # a warp model is a reference model with a warp head
        assert cfg.model.resolution == 128 and path.name.startswith(("cpu-" + kind, kind)), path


# ---- data: usable faces, pairs, mirroring, masks -------------------------------------------


def test_usable_faces_leave_out_closed_squinting_and_lonely(cache):
    ds = load_dataset(cache)
    ok = pairs.usable_faces(ds, 0.2)
    assert not ok[ds.closed].any() and not ok[ds.ear.min(1) < 0.2].any()
    assert ok.sum() == 4 * 5
    single = ds.subset(np.array([0, 1, 5, 6, 7]))  # person 0: faces 0, 1 open; 5 closed, 6 squint; 7: another person
    counts = {p: int(n) for p, n in zip(*np.unique(single.person[pairs.usable_faces(single, 0.2)], return_counts=True))}
    assert counts == {0: 2}  # the lone face of the other person is dropped


def test_split_faces_hold_out_whole_persons(cache):
    ds = load_dataset(cache)
    tr, va = pairs.split_faces(ds, 0.2, 0.25, seed=0)
    assert len(va) == 5 and len(tr) == 15
    assert not set(ds.person[tr]) & set(ds.person[va])


def test_pairs_are_same_person_never_self_and_uniform_over_targets(cache):
    ds = load_dataset(cache)
    # person 0 has 5 faces, two others 2 each: a person weighs by faces, not faces squared
    idx = np.concatenate([np.nonzero(ds.person == p)[0][:n] for p, n in ((0, 5), (1, 2), (2, 2))])
    sampler = pairs.PairSampler(ds, idx, np.random.default_rng(0))
    t, r = sampler.sample(9000)
    assert (ds.person[t] == ds.person[r]).all() and (t != r).all()
    assert set(t) | set(r) <= set(idx)
    share = np.mean(ds.person[t] == 0)
    assert abs(share - 5 / 9) < 0.03  # 5 of the 9 faces; all-pairs would give 20 / 24
    # each reference is uniform among the target's others
    t0 = t == idx[0]
    counts = np.unique(r[t0], return_counts=True)[1]
    assert len(counts) == 4 and counts.min() > 0.6 * counts.max()
    with pytest.raises(DataError):
        pairs.PairSampler(ds, idx[:1], np.random.default_rng(0))


def test_validation_pairs_are_fixed(cache):
    ds = load_dataset(cache)
    idx = np.arange(20)
    a = pairs.validation_pairs(ds, idx, 0, seed=3)
    b = pairs.validation_pairs(ds, idx, 0, seed=3)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert (ds.person[a[0]] == ds.person[a[1]]).all() and (a[0] != a[1]).all()
    assert len(pairs.validation_pairs(ds, idx, 6, seed=3)[0]) == 6


def test_mirror_landmarks_swaps_the_eyes():
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 63, size=(68, 2))
    m = pairs.mirror_landmarks(lm, 64)
    np.testing.assert_allclose(pairs.mirror_landmarks(m, 64), lm)
    np.testing.assert_allclose(m[36], [63 - lm[45, 0], lm[45, 1]])  # outer corners
    np.testing.assert_allclose(m[39], [63 - lm[42, 0], lm[42, 1]])  # inner corners
    np.testing.assert_allclose(m[48], [63 - lm[54, 0], lm[54, 1]])
    assert sorted(pairs.MIRROR) == list(range(68))


def test_batches_masks_follow_the_eyes_also_mirrored(cache):
    ds = load_dataset(cache)
    t, r = np.arange(12), np.arange(12)[::-1].copy()
    still = MaskConfig(jitter_center=0.0, jitter_scale=0.0)
    b = pairs.make_batch(ds, t, r, still, rng=np.random.default_rng(0), flip=True)
    assert b["image"].shape == (12, 32, 32, 3) and b["image"].dtype == np.uint8
    assert b["mask"].shape == (12, 32, 32) and b["ref_mask"].dtype == np.float32
    fixed = pairs.make_batch(ds, t, r, still)  # no rng: neither jitter nor mirroring
    np.testing.assert_array_equal(fixed["image"], ds.crops[t])
    expect = np.stack([boxes_to_mask(eye_boxes(ds.landmarks[i], still), 32) for i in r])
    np.testing.assert_array_equal(fixed["ref_mask"], expect)
    flipped = [not np.array_equal(b["image"][i], ds.crops[t[i]]) for i in range(12)]
    assert 0 < sum(flipped) < 12
    for i, f in enumerate(flipped):
        for key, src in (("image", ds.crops[t[i]]), ("ref", ds.crops[r[i]])):
            np.testing.assert_array_equal(b[key][i], src[:, ::-1] if f else src)
        for key, plain in (("mask", fixed["mask"][i]), ("ref_mask", fixed["ref_mask"][i])):
            want = plain[:, ::-1] if f else plain  # the holes move with the eyes (to within a pixel)
            iou = (b[key][i] * want).sum() / np.maximum(b[key][i], want).sum()
            assert iou > 0.75, (i, key, iou)
    jittered = pairs.make_batch(ds, t, r, MaskConfig(), rng=np.random.default_rng(1))
    assert not np.array_equal(jittered["mask"], fixed["mask"])
    np.testing.assert_array_equal(jittered["ref_mask"], fixed["ref_mask"])  # the reference's mask never jitters


# ---- the loop ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reference", "code", "none", "warp"])
def test_two_steps_in_each_mode(tmp_path, cache, mode):
    cfg = tiny(cache, tmp_path / "run", mode)
    result = loop.train(cfg)
    assert result.step == 2 and result.images_seen == 8 and result.stopped == "done"
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["mode"] == ("reference" if mode == "warp" else mode) and config["model"]["warp"] == (mode == "warp")
    assert config["align"]["resolution"] == 32 and "mask" in config
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2]
    assert {"l1", "adv", "loss_d", "loss_g", "images_per_s", "time"} <= set(log[0])
    assert ("code" in log[0] and "ae" in log[0]) == (mode == "code")
    # a warp model logs its displacement's smoothness and the mean blend weight in the holes,
    # which starts at sigmoid(warp_bias): the warm start is the plain in-painter
    assert ("smooth" in log[0] and "weight" in log[0] and "align" in log[0]) == (mode == "warp")
    if mode == "warp":
        assert abs(log[0]["weight"] - 1 / (1 + np.exp(4.0))) < 0.005
    assert "val_l1" in log[-1] and 0 < log[-1]["val_l1"] < 2
    tensors = load_file(str(run / "checkpoint.safetensors"))
    prefixes = {k.split(".")[0] for k in tensors}
    assert prefixes == {"g", "d", "ema_g", "opt_g", "opt_d"} | ({"enc", "dec", "ema_enc"} if mode == "code" else set())
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 2 and set(meta["rng"][0]) >= {"numpy", "numpy_global", "python", "torch"}
    grid = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(run / "samples" / "step_000002.png"))
    assert grid.shape == (5 * 32, 4 * 32, 3)  # the 5 validation pairs: masked | reference | output | truth


@pytest.mark.parametrize("mode", ["reference", "code", "warp"])
def test_resume_is_exact(tmp_path, cache, mode):
    kw = {"warp_lr_mult": 10.0} if mode == "warp" else {}  # the warp head in an optimizer group of its own, at its own rate
    straight = loop.train(tiny(cache, tmp_path / "a", mode, steps=4, **kw))
    loop.train(tiny(cache, tmp_path / "b", mode, steps=2, checkpoint_every=1, **kw))
    resumed = loop.train(tiny(cache, None, mode, steps=4, resume=str(tmp_path / "b"), **kw))
    assert resumed.run_dir == tmp_path / "b" and resumed.step == straight.step == 4
    ta = load_file(str(tmp_path / "a" / "checkpoint.safetensors"))
    tb = load_file(str(tmp_path / "b" / "checkpoint.safetensors"))
    assert ta.keys() == tb.keys()
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []
    keys = ("l1", "adv", "loss_d", "loss_g") + (("code", "ae") if mode == "code" else ())
    la = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [[e[k] for k in keys] for e in la] == [[e[k] for k in keys] for e in lb if "l1" in e]
    assert resumed.val_l1 == straight.val_l1
    ma = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    mb = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert ma["rng"] == mb["rng"] and mb["images_seen"] == 16
    assert ma["optimizers"] == mb["optimizers"]  # the same groups at the same rates after the resume
    if mode == "warp":
        with pytest.raises(ExganError, match="warp_lr_mult"):
            loop.train(tiny(cache, None, mode, steps=5, resume=str(tmp_path / "b")))  # 10 -> 1: another group layout


def test_ctrl_c_writes_a_checkpoint_and_resume_continues_exactly(tmp_path, cache):
    def interrupt(stage, done, total, info):
        if stage == "train" and done == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN where pytest runs in the background
    out = loop.train(tiny(cache, tmp_path / "b", steps=4), progress=interrupt)
    # the signal lands during step 3, which is finished before the checkpoint
    assert out.stopped == "interrupted" and out.step == 3
    assert json.loads((tmp_path / "b" / "checkpoint.json").read_text())["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    loop.train(tiny(cache, None, steps=4, resume=str(tmp_path / "b")))
    loop.train(tiny(cache, tmp_path / "a", steps=4))
    ta = load_file(str(tmp_path / "a" / "checkpoint.safetensors"))
    tb = load_file(str(tmp_path / "b" / "checkpoint.safetensors"))
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_time_limit_stops_with_a_checkpoint(tmp_path, cache):
    out = loop.train(tiny(cache, tmp_path / "r", steps=1000, minutes=1e-6))
    assert out.stopped == "time limit" and out.step == 1
    assert json.loads((tmp_path / "r" / "checkpoint.json").read_text())["step"] == 1


def test_refuses_to_overwrite_a_run_and_to_change_the_model_on_resume(tmp_path, cache):
    loop.train(tiny(cache, tmp_path / "r", steps=1))
    with pytest.raises(OutputError):
        loop.train(tiny(cache, tmp_path / "r", steps=1))
    bigger = tiny(cache, None, steps=2, resume=str(tmp_path / "r"))
    with pytest.raises(Exception, match="cannot change"):
        loop.train(replace(bigger, model=replace(bigger.model, base_channels=16)))
    (tmp_path / "r" / "checkpoint.json").write_text(json.dumps({**json.loads((tmp_path / "r" / "checkpoint.json").read_text()), "step": 5}))
    with pytest.raises(WeightsError, match="differ"):
        loop.train(bigger)


# ---- export --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reference", "code", "warp"])
def test_export_loads_back_as_the_runs_ema_generator(tmp_path, cache, mode):
    from exgan_cli.model.encoder import EyeEncoder
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import load_pretrained

    cfg = tiny(cache, tmp_path / "run", mode, steps=3)
    loop.train(cfg, command="exgan train --test")
    folder = export.export_run(tmp_path / "run", tmp_path / "model", card_extra="Extra words.", command="exgan export --test")
    model = load_pretrained(folder)
    assert model.model_cfg == cfg.model and model.align_cfg == cfg.align and model.mask_cfg == cfg.mask
    tensors = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    cl = torch.channels_last  # the layout of training and of load_pretrained
    ema = Generator(cfg.model).to(memory_format=cl)
    ema.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("ema_g.")})
    for k, v in model.generator.state_dict().items():
        assert torch.equal(v, ema.state_dict()[k]), k
    enc = None
    if mode == "code":
        enc = EyeEncoder(cfg.model).to(memory_format=cl)
        enc.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("ema_enc.")})
        for k, v in model.encoder.state_dict().items():
            assert torch.equal(v, enc.state_dict()[k]), k
    ds = load_dataset(cache)
    x = steps.to_tensors(pairs.make_batch(ds, np.arange(4), np.arange(4, 8), cfg.mask, model_cfg=cfg.model), torch.device("cpu"))
    mode = cfg.model.mode
    expect = steps.generate(ema.eval(), enc, mode, x)
    got = steps.generate(model.generator, model.encoder, mode, x)
    assert torch.equal(expect, got)
    card = (folder / "README.md").read_text()
    for text in ("exgan train --test", "exgan export --test", "steps: 3", "images seen: 12", "wall time", "hardware",
                 "1 person(s) held out", "masked L1", "Extra words."):
        assert text in card, text
    training_info = json.loads((folder / "config.json").read_text())["training"]
    assert training_info["steps"] == 3 and training_info["val_l1"] is not None
    with pytest.raises(OutputError):
        export.export_run(tmp_path / "run", folder, overwrite=False)


# ---- overfitting real faces ----------------------------------------------------------------


def test_masked_l1_falls_when_overfitting_real_faces(tmp_path):
    if not LFW.is_dir() or len([p for p in LFW.iterdir() if p.is_dir()]) < 2:
        pytest.skip("tests/data/lfw is not there")
    data = tmp_path / "lfw"
    for person in sorted(p for p in LFW.iterdir() if p.is_dir())[:3]:
        shutil.copytree(person, data / person.name)
    cache = prepare_dataset(data, tmp_path / "c.npz", AlignConfig(resolution=32), workers=1)
    cfg = TrainConfig(
        cache=str(cache), out=str(tmp_path / "run"), model=ModelConfig(mode="reference", **TINY),
        batch_size=8, steps=200, lr=1e-3, d_lr=1e-3, val_fraction=0.0, min_ear=0.0, flip=False, ema_decay=0.9,
        mask=MaskConfig(jitter_center=0.0, jitter_scale=0.0), log_every=50, eval_every=0, sample_every=0,
        checkpoint_every=0, threads=1,
    )
    ds = load_dataset(cache)
    idx = np.nonzero(pairs.usable_faces(ds, 0.0))[0]
    val = pairs.validation_pairs(ds, idx, 0, seed=0)
    from exgan_cli.model.generator import Generator

    torch.manual_seed(cfg.seed)
    before = steps.evaluate_l1(Generator(cfg.model), None, "reference", ds, val, cfg.mask, torch.device("cpu"))
    loop.train(cfg)
    model = export.export_run(tmp_path / "run", tmp_path / "model")
    from exgan_cli.model.weights import load_pretrained

    after = steps.evaluate_l1(load_pretrained(model).generator, None, "reference", ds, val, cfg.mask, torch.device("cpu"))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    print(f"masked L1 of the 10 faces: {before:.3f} before, {after:.3f} after 200 steps")
    assert after < 0.5 * before, (before, after)
    assert log[-1]["l1"] < 0.6 * log[0]["l1"], (log[0]["l1"], log[-1]["l1"])


# ---- the CLI -------------------------------------------------------------------------------


def test_cli_train_and_export(tmp_path, cache):
    runner = CliRunner()
    run, model = tmp_path / "run", tmp_path / "model"
    args = ["train", "--cache", str(cache), "--out", str(run), "--resolution", "32", "--base-channels", "8",
            "--n-blocks", "2", "--set", "model.d_channels=8", "--set", "model.code_dim=16", "-b", "4", "--steps", "2",
            "--threads", "1", "--mode", "code", "-q"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["d_channels"] == 8 and config["model"]["mode"] == "code" and config["steps"] == 2
    r = runner.invoke(app, ["train", "--resume", str(run), "--steps", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 3
    extra = tmp_path / "extra.md"
    extra.write_text("## Notes\nSomething.")
    r = runner.invoke(app, ["export", str(run), "--out", str(model), "--card-extra", str(extra)])
    assert r.exit_code == 0, r.output
    assert (model / "model.safetensors").is_file() and "Something." in (model / "README.md").read_text()
    r = runner.invoke(app, ["export", str(run), "--out", str(model)])
    assert r.exit_code == EXIT_OUTPUT
    r = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "m2")])
    assert r.exit_code == EXIT_BAD_WEIGHTS
    r = runner.invoke(app, ["train", "--cache", str(cache), "--set", "model.widht=3"])
    assert r.exit_code == EXIT_USAGE


def test_cli_recipe_and_flags(tmp_path, cache):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"model": {**TINY, "mode": "none"}, "batch_size": 2, "steps": 5}))
    r = CliRunner().invoke(app, ["train", "--cache", str(cache), "--config", str(recipe), "--steps", "1",
                                 "--out", str(tmp_path / "run"), "--threads", "1", "-q"])
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["mode"] == "none" and config["batch_size"] == 2 and config["steps"] == 1


def test_cli_prepare_only_and_automatic_preparation(tmp_path, monkeypatch):
    if not LFW.is_dir():
        pytest.skip("tests/data/lfw is not there")
    data = tmp_path / "lfw"
    for person in sorted(p for p in LFW.iterdir() if p.is_dir())[:2]:
        shutil.copytree(person, data / person.name)
    monkeypatch.setenv("EXGAN_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(data), "--resolution", "32", "--prepare-only", "--workers", "1"])
    assert r.exit_code == 0, r.output
    caches = list((tmp_path / "cache" / "datasets").glob("lfw-32-*.npz"))
    assert len(caches) == 1 and "photos" in r.output
    stamp = caches[0].stat().st_mtime_ns
    # training finds the prepared cache by itself
    r = runner.invoke(app, ["train", "--data", str(data), "--resolution", "32", "--base-channels", "8", "--n-blocks", "2",
                            "--set", "model.d_channels=8", "-b", "2", "--steps", "1", "--val-fraction", "0",
                            "--out", str(tmp_path / "run"), "--threads", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert caches[0].stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["cache"] == str(caches[0])


def test_exported_provenance_names_paths_relative_to_the_repository(tmp_path):
    base = tmp_path / "repo"
    training = {"commands": [f"exgan train --cache {tmp_path}/cache/lfw-128.npz --out 'runs/a b'", "exgan export r -o w",
                             f"/usr/bin/python3 -m exgan_cli train --data={tmp_path}/shared/data/lfw"],
                "data_summary": {"data_dir": str(tmp_path / "shared" / "data" / "lfw")},
                "hardware": ["1 x AMD EPYC (1 CPU thread)", "1 x NVIDIA H100 (cuda 12.4 / driver 550)"], "steps": 3,
                "note": "made on /tmp while another run went on"}
    out = export.portable(training, base)
    assert out["commands"] == ["exgan train --cache ../cache/lfw-128.npz --out 'runs/a b'", "exgan export r -o w",
                               "/usr/bin/python3 -m exgan_cli train --data=../shared/data/lfw"]
    assert out["note"] == training["note"]  # text, not a command line: left alone
    assert out["data_summary"]["data_dir"] == "../shared/data/lfw"
    assert out["hardware"] == training["hardware"] and out["steps"] == 3


def test_self_reference_is_the_target_moved_with_its_landmarks():
    """augment_self's reference: the target crop under a random similarity, its landmarks (and any
    map, such as the iris weights) moved alike, so that exemplar.py warps its eye back by the corners."""
    r = 64
    yy, xx = np.mgrid[0:r, 0:r]
    image = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)  # each pixel says where it was
    lm = np.array([[10.0, 20.0], [50.0, 12.0], [33.0, 40.0]])
    ref, lm_r, move = pairs.self_reference(image, lm, np.random.default_rng(3), blur=0.0)
    assert ref.shape == image.shape and ref.dtype == np.uint8 and np.abs(lm_r - lm).max() > 0.5
    for (x, y), (u, v) in zip(lm, lm_r):  # the moved pixel at a moved landmark still says where it came from
        got = ref[int(round(v)), int(round(u))].astype(float)
        assert abs(got[0] / 4 - x) < 2.5 and abs(got[1] / 4 - y) < 2.5
    assert move(np.ones((r, r), np.float32)).shape == (r, r)


def test_warp_run_with_self_references_and_a_decisive_weight(tmp_path, cache):
    """augment_self and warp_decisive train (the w(1 - w) term is logged) and round-trip in the run's config."""
    cfg = tiny(cache, tmp_path / "run", "warp", augment_self=1.0)
    cfg = replace(cfg, model=replace(cfg.model, warp_decisive=0.1))
    assert loop.train(cfg).step == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert 0 < log[0]["decisive"] <= 0.25
    saved = TrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert saved.augment_self == 1.0 and saved.model.warp_decisive == 0.1
    with pytest.raises(ValueError):
        TrainConfig(augment_self=1.5)
