"""Shared test fixtures: paths of the real photos in tests/data (see tests/data/SOURCES.md).

Paths are module-level constants too, so helpers outside fixtures can use them. dlib's
models are cached per process by exgan_cli.stages.faces, so every test file pays their loading
(about a second) once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository
DATA = Path(__file__).resolve().parent / "data"
LFW = DATA / "lfw"  # Celeb-ID layout: lfw/<Person>/<Person>_NNNN.jpg, 250 x 250

# Hugo Chavez: one photo with both eyes clearly closed (laughing) and three open-eyed ones.
CHAVEZ_CLOSED = LFW / "Hugo_Chavez" / "Hugo_Chavez_0017.jpg"
CHAVEZ_OPEN = [LFW / "Hugo_Chavez" / f"Hugo_Chavez_{n}.jpg" for n in ("0036", "0031", "0020")]
POWELL = sorted((LFW / "Colin_Powell").glob("*.jpg"))  # 3 open-eyed photos, glasses
SERENA = sorted((LFW / "Serena_Williams").glob("*.jpg"))  # 3 open-eyed photos
CLOSED_CROPS = sorted((DATA / "closed_eyes").glob("*.jpg"))  # 4 CEW crops, 63 to 368 px
GROUP = DATA / "photos" / "selfie-many-people.jpg"  # 600 x 604; 4 faces dlib's HOG finds
GROUP_FACES = 4
GROUP_ANGELINA = 1  # index (left to right) of Angelina Jolie's face in the group photo
HIGHRES = DATA / "photos" / "img4.jpg"  # 2500 x 1728 portrait of Angelina Jolie


@pytest.fixture(scope="session")
def chavez_open() -> list[Path]:
    return list(CHAVEZ_OPEN)


@pytest.fixture(scope="session")
def powell() -> list[Path]:
    return list(POWELL)


@pytest.fixture(scope="session")
def serena() -> list[Path]:
    return list(SERENA)


@pytest.fixture(scope="session")
def closed_crops() -> list[Path]:
    return list(CLOSED_CROPS)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised small reference-mode model folder (no trained weights needed).

    Its output is not meaningful eyes, but it runs the exact load -> generate -> blend path.
    """
    import torch

    from exgan_cli.stages.geometry import AlignConfig, MaskConfig
    from exgan_cli.model.config import ModelConfig
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import save_pretrained

    torch.manual_seed(0)
    cfg = ModelConfig(mode="reference", base_channels=8, n_blocks=1, d_channels=8, ref_input="eyes", relight=True, skips=True)
    folder = tmp_path_factory.mktemp("tiny-model") / "tiny-reference"
    save_pretrained(folder, Generator(cfg), None, cfg, AlignConfig(), MaskConfig(), card="random test model")
    return folder


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own, empty reference-analysis cache (exgan_cli/stages/reference_cache.py):
    tests never read each other's entries, nor write into the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("exgan-cache")
    monkeypatch.setenv("EXGAN_CACHE_DIR", str(folder))
    return folder


def patch_generator(monkeypatch, fake) -> None:
    """Make open-eyes' generator call (apps.retouch.generate_crops) return ``fake(model, crops,
    masks, exemplars)`` as its raw output: a generator with a known output (no warp field)."""
    from exgan_cli.apps import retouch as pipeline
    from exgan_cli.stages.generate import Generated

    monkeypatch.setattr(pipeline, "generate_crops", lambda *args: Generated(np.asarray(fake(*args), dtype=np.float32)))
