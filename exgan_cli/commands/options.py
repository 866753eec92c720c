"""The command-line options `exgan open-eyes`, `exgan batch` and `exgan inspect` share, declared once.

Each function returns the ``typer.Option`` of one flag: its names, default, range and, where the
commands mean the same thing, its help text. A command whose flag does something of its own (the
self-check of a whole album, the cache of the person's photos) passes its own ``help``. Every
retouch flag maps onto one field of ``exgan_cli.options.RetouchOptions`` (``retouch_options``).
Only typer here: the CLI imports the commands without torch.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Optional

import typer


class Detector(str, Enum):
    auto = "auto"
    hog = "hog"
    cnn = "cnn"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Faces(str, Enum):
    closed = "closed"
    narrow = "narrow"
    all = "all"


FACES_HELP = ("Which faces to in-paint: closed-eyed ones; narrow: those and narrowed eyes too (smiles, squints, "
              "left alone by default); or all. Eyes hidden by sunglasses never.")


DETECTOR_HELP = "Face detector: auto (HOG, then dlib's CNN when HOG finds no face), HOG (fast) or CNN (MMOD)."
DETAIL_HELP = ("Give the new eyes the photo's full-resolution detail and grain (from the reference photo); "
               "--no-detail pastes the generator's 128 px eyes upscaled.")
# The rarer flags have help panels of their own (commands/help.py lays them out).
FACES_PANEL = "Faces and references"
MODEL_PANEL = "Model and retouch"
BEST_OF_HELP = ("In-paint each face with up to N of its best references and keep the result closest to the face's own "
                "identity (2: a quarter less identity change on real closed eyes, ~0.2 s more per face on a 12 MP photo; "
                "1: the best-ranked reference only).")


# ---------------------------------------------------------------------------------------
# Files


def ref(help: str) -> Any:
    return typer.Option([], "--ref", "-r", metavar="PHOTO", help=help)


def ref_dir() -> Any:
    return typer.Option(None, "--ref-dir", metavar="DIR", help="Folder of reference photos.")


def output(help: str, metavar: str = "PATH") -> Any:
    return typer.Option(None, "--output", "-o", metavar=metavar, help=help)


def overwrite(help: str) -> Any:
    return typer.Option(False, "--overwrite", help=help)


def quiet(help: str) -> Any:
    return typer.Option(False, "--quiet", "-q", help=help)


# ---------------------------------------------------------------------------------------
# Finding the faces


def detector(help: str = DETECTOR_HELP) -> Any:
    return typer.Option(Detector.auto, "--detector", help=help, rich_help_panel=FACES_PANEL)


def min_face(help: str) -> Any:
    return typer.Option(None, "--min-face", min=10, metavar="PX", help=help, rich_help_panel=FACES_PANEL)


def identity_threshold(help: str, min: Optional[float] = None) -> Any:
    return typer.Option(None, "--identity-threshold", min=min, help=help, rich_help_panel=FACES_PANEL)


# ---------------------------------------------------------------------------------------
# The model and the retouch


def weights(help: str) -> Any:
    return typer.Option(None, "--weights", metavar="MODEL", help=help, rich_help_panel=MODEL_PANEL)


def device() -> Any:
    return typer.Option(Device.auto, "--device", rich_help_panel=MODEL_PANEL, help="Where the generator runs: auto (a CUDA GPU when there is one, else the CPU, where it runs in numpy without importing torch), cpu or cuda.")


def detail() -> Any:
    return typer.Option(True, "--detail/--no-detail", help=DETAIL_HELP, rich_help_panel=MODEL_PANEL)


def iris_colour() -> Any:
    return typer.Option(True, "--iris-colour/--no-iris-colour", rich_help_panel=MODEL_PANEL,
                        help="Give the new irises the reference's hue (faces of 150 px and more); "
                             "--no-iris-colour keeps the generator's own colour.")


def best_of() -> Any:
    return typer.Option(2, "--best-of", min=1, help=BEST_OF_HELP, rich_help_panel=MODEL_PANEL)


def cache(help: str) -> Any:
    return typer.Option(True, "--cache/--no-cache", help=help, rich_help_panel=MODEL_PANEL)


def self_check(help: str) -> Any:
    return typer.Option(True, "--self-check/--no-self-check", help=help, rich_help_panel=MODEL_PANEL)


def force(help: str) -> Any:
    return typer.Option(False, "--force", help=help, rich_help_panel=FACES_PANEL)


def retouch_options(
    *, detector: Detector, device: Device, weights: Optional[str], min_face: Optional[float],
    identity_threshold: Optional[float], detail: bool, self_check: bool, best_of: int, cache: bool, force: bool,
    faces: str = "closed", face_index: Optional[int] = None, any_identity: bool = False, iris_colour: bool = True,
):
    """The ``RetouchOptions`` these flags describe (imported here, when a command runs)."""
    from exgan_cli.options import BlendConfig, RetouchOptions, SelfCheckConfig

    return RetouchOptions(
        faces=faces, face_index=face_index, detector=detector.value, min_face=min_face,
        any_identity=any_identity, identity_threshold=identity_threshold, cache=cache, best_of=best_of, force=force,
        weights=weights, device=device.value,
        blend=BlendConfig(detail=detail, iris_colour=iris_colour), self_check=SelfCheckConfig(enabled=self_check),
    )
