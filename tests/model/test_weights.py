"""Weights folders and Hub repos: round trip, strict loading, checksums, an offline Hub cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from exgan_cli.model import weights
from exgan_cli.errors import ExganError, WeightsError
from exgan_cli.stages.geometry import AlignConfig, MaskConfig
from exgan_cli.model import EyeEncoder, Generator, ModelConfig
from conftest import ROOT

R = 64


def tiny(mode: str = "reference") -> ModelConfig:
    return ModelConfig(mode=mode, resolution=R, base_channels=8, n_blocks=2, code_dim=16, d_channels=8)


def make_model(mode: str = "reference", seed: int = 0) -> tuple[Generator, EyeEncoder | None, ModelConfig]:
    torch.manual_seed(seed)
    cfg = tiny(mode)
    g = Generator(cfg)
    for b in g.blocks:  # non-zero residual gains, so every tensor matters in the comparison
        b.gain.data.fill_(0.5)
    return g, EyeEncoder(cfg) if mode == "code" else None, cfg


def save(folder: Path, mode: str = "reference", seed: int = 0) -> tuple[Generator, EyeEncoder | None]:
    g, enc, cfg = make_model(mode, seed)
    card = weights.model_card(cfg, "# tiny test model\n\nRandom weights.")
    weights.save_pretrained(folder, g, enc, cfg, AlignConfig(resolution=R), MaskConfig(), card, {"steps": 1})
    return g, enc


def same_model(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Bit-identical tensors. (Outputs are compared with a tolerance: load_pretrained returns
    channels_last models, whose convolutions round differently in the last bit.)"""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def same_output(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=0, atol=1e-5)


def run(g: Generator, enc: EyeEncoder | None = None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    face = torch.rand(2, 3, R, R, generator=gen) * 2 - 1
    ref = torch.rand(2, 3, R, R, generator=gen) * 2 - 1
    mask = torch.zeros(2, 1, R, R)
    mask[..., 16:30, 10:54] = 1
    code = enc(ref) if enc is not None else None
    with torch.no_grad():
        return g.eval().inpaint(face, mask, ref=ref, ref_mask=mask, code=code)


@pytest.mark.parametrize("mode", ["reference", "code", "none"])
def test_round_trip(tmp_path, mode):
    g, enc = save(tmp_path / "m", mode)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left behind
    p = weights.load_pretrained(tmp_path / "m")
    assert p.model_cfg == tiny(mode) and p.align_cfg == AlignConfig(resolution=R) and p.mask_cfg == MaskConfig()
    assert p.training == {"steps": 1} and p.source == str(tmp_path / "m")
    assert p.sha256 == hashlib.sha256((tmp_path / "m" / "model.safetensors").read_bytes()).hexdigest()
    assert not p.generator.training
    assert (p.encoder is not None) == (mode == "code")
    assert same_model(p.generator, g) and (enc is None or same_model(p.encoder, enc))
    assert same_output(run(p.generator, p.encoder), run(g, enc))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "exgan-1" and set(config) == {"format", "model", "align", "mask", "training"}
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: exgan\nlicense: mit\n") and f"- exgan-{mode}\n---\n# tiny" in card
    keys = load_file(str(tmp_path / "m" / "model.safetensors")).keys()
    assert all(k.startswith("generator.") or (mode == "code" and k.startswith("encoder.")) for k in keys)


def test_save_replaces_existing_folder(tmp_path):
    save(tmp_path / "m", seed=0)
    g, _ = save(tmp_path / "m", seed=1)
    assert same_model(weights.load_pretrained(str(tmp_path / "m")).generator, g)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_sha256_pin(tmp_path):
    save(tmp_path / "m")
    digest = weights.load_pretrained(tmp_path / "m").sha256
    assert weights.load_pretrained(tmp_path / "m", sha256=digest.upper()).sha256 == digest
    with pytest.raises(WeightsError, match="sha256"):
        weights.load_pretrained(tmp_path / "m", sha256="0" * 64)


def _tamper_tensors(folder: Path, change) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_removed_tensor(tmp_path):
    save(tmp_path / "m")
    _tamper_tensors(tmp_path / "m", lambda t: t.pop("generator.out.weight"))
    with pytest.raises(WeightsError, match=r"lacks 1 tensors: generator\.out\.weight") as e:
        weights.load_pretrained(tmp_path / "m")
    assert "\n" not in str(e.value) and "model.safetensors" in str(e.value)


def test_unexpected_tensor(tmp_path):
    save(tmp_path / "m")
    _tamper_tensors(tmp_path / "m", lambda t: t.update({"generator.extra": torch.zeros(2)}))
    with pytest.raises(WeightsError, match=r"unexpected tensors: generator\.extra"):
        weights.load_pretrained(tmp_path / "m")
    _tamper_tensors(tmp_path / "m", lambda t: (t.pop("generator.extra"), t.update({"encoder.x": torch.zeros(1)})))
    with pytest.raises(WeightsError, match="encoder"):
        weights.load_pretrained(tmp_path / "m")


def test_wrong_shape(tmp_path):
    save(tmp_path / "m")
    _tamper_tensors(tmp_path / "m", lambda t: t.update({"generator.out.bias": torch.zeros(4)}))
    with pytest.raises(WeightsError, match=r"wrong shape.*generator\.out\.bias \(4,\) vs \(3,\)"):
        weights.load_pretrained(tmp_path / "m")


def test_config_not_matching_weights(tmp_path):
    save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["model"]["base_channels"] = 16
    path.write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="wrong shape"):
        weights.load_pretrained(tmp_path / "m")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: "{not json", "cannot read"),
        (lambda c: json.dumps({**c, "format": "other"}), "not an exgan-1 config"),
        (lambda c: json.dumps({**c, "extra": 1}), "unknown keys: extra"),
        (lambda c: json.dumps({**c, "model": {**c["model"], "n_block": 2}}), "unknown model config keys: n_block"),
        (lambda c: json.dumps({**c, "model": {**c["model"], "mode": "exemplar"}}), "mode"),
        (lambda c: json.dumps({**c, "align": {"resolution": 128, "template": c["align"]["template"]}}), "resolution"),
        (lambda c: json.dumps({**c, "align": {}}), "bad config"),
    ],
)
def test_bad_config(tmp_path, edit, message):
    save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    path.write_text(edit(json.loads(path.read_text())))
    with pytest.raises(WeightsError, match=message) as e:
        weights.load_pretrained(tmp_path / "m")
    assert "config.json" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_safetensors(tmp_path):
    save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    with pytest.raises(WeightsError, match="cannot read .*model.safetensors"):
        weights.load_pretrained(tmp_path / "m")


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        weights.load_pretrained(tmp_path / "absent")
    with pytest.raises(WeightsError, match="not found"):
        weights.load_pretrained(str(tmp_path / "absent"))
    save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing .*model.safetensors"):
        weights.load_pretrained(tmp_path / "m")
    with pytest.raises(WeightsError, match="not a Hub repo id"):
        weights.load_pretrained("no such thing")


def test_bundled_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("EXGAN_WEIGHTS_DIR", raising=False)
    assert weights.bundled_weights_dir() == Path(weights.__file__).resolve().parents[2] / "weights"
    monkeypatch.setenv("EXGAN_WEIGHTS_DIR", str(tmp_path))
    assert weights.bundled_weights_dir() == tmp_path
    with pytest.raises(WeightsError, match=str(tmp_path / weights.DEFAULT_MODEL)):
        weights.resolve_default()
    save(tmp_path / weights.DEFAULT_MODEL)
    assert weights.resolve_default() == tmp_path / weights.DEFAULT_MODEL


def test_resolve_device():
    assert weights.resolve_device("cpu").type == "cpu"
    assert weights.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ExganError, match="unknown device"):
        weights.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ExganError, match="no CUDA GPU"):
            weights.resolve_device("cuda")


# --- Hub, offline: a cache laid out the way huggingface_hub lays it out ---------------------

COMMIT_MAIN = "a" * 40
COMMIT_V1 = "b" * 40


def _add_snapshot(repo: Path, commit: str, folder: Path) -> None:
    """Files go to blobs/<sha256>, snapshots/<commit>/<name> links to them (as on Linux)."""
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, repo / "blobs" / digest)
        (snap / f.name).symlink_to(Path("..", "..", "blobs", digest))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """owner/name with main -> COMMIT_MAIN (seed 0) and branch v1 -> COMMIT_V1 (seed 1)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--owner--name"
    g0, _ = save(tmp_path / "w0", seed=0)
    g1, _ = save(tmp_path / "w1", seed=1)
    _add_snapshot(repo, COMMIT_MAIN, tmp_path / "w0")
    _add_snapshot(repo, COMMIT_V1, tmp_path / "w1")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_MAIN)
    (repo / "refs" / "v1").write_text(COMMIT_V1)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read the environment when it was imported: make sure nothing goes online
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # so "owner/name" cannot be mistaken for a local folder
    return {"main": g0, "v1": g1}


def test_hub_offline_main(hub_cache):
    p = weights.load_pretrained("owner/name")
    assert p.source == f"hub:owner/name@{COMMIT_MAIN}"
    assert p.folder.name == COMMIT_MAIN
    assert same_model(p.generator, hub_cache["main"])
    assert same_output(run(p.generator), run(hub_cache["main"]))


@pytest.mark.parametrize("rev", ["v1", COMMIT_V1])
def test_hub_offline_revision(hub_cache, rev):
    p = weights.load_pretrained(f"owner/name@{rev}")
    assert p.source == f"hub:owner/name@{COMMIT_V1}"
    assert same_model(p.generator, hub_cache["v1"]) and not same_model(p.generator, hub_cache["main"])
    assert same_output(run(p.generator), run(hub_cache["v1"]))
    assert weights.load_pretrained("owner/name", revision=rev).sha256 == p.sha256
    assert weights.load_pretrained("owner/name", sha256=p.sha256, revision=rev).source == p.source


def test_hub_offline_failures(hub_cache):
    with pytest.raises(WeightsError, match=r"weights owner/absent: config\.json \(revision main\) is not in the Hub cache"):
        weights.load_pretrained("owner/absent")
    with pytest.raises(WeightsError, match="owner/name@nobranch"):
        weights.load_pretrained("owner/name@nobranch")
    with pytest.raises(WeightsError, match="revision given twice"):
        weights.load_pretrained("owner/name@v1", revision="main")
    with pytest.raises(WeightsError, match="sha256"):
        weights.load_pretrained("owner/name", sha256="0" * 64)
    snapshot = Path(os.environ["HF_HUB_CACHE"], "models--owner--name", "snapshots", COMMIT_V1)
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"owner/name@v1: model\.safetensors \(revision v1\) is not in the Hub cache"):
        weights.load_pretrained("owner/name@v1")


def test_cards_name_no_absolute_paths_of_the_training_machine():
    text = weights.card("exgan train --cache /work/cache/lfw-128.npz --out=/tmp/run (`/a/b/c`) https://x.org/y 0..255 a/b",
                        "image-to-image", ["exgan"])
    assert "/work" not in text and "/tmp" not in text
    assert "--cache lfw-128.npz" in text and "--out=run" in text and "(`c`)" in text and "https://x.org/y" in text and " a/b" in text
    shipped = ROOT / "weights"
    for card in shipped.glob("*/README.md"):
        assert weights.portable_paths(card.read_text()) == card.read_text(), card
