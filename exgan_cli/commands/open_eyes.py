"""`exgan open-eyes PHOTO --ref REF ...`: retouch one photo."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from exgan_cli.commands.common import console, guarded


class Detector(str, Enum):
    auto = "auto"
    hog = "hog"
    cnn = "cnn"


class Faces(str, Enum):
    closed = "closed"
    all = "all"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def default_output(photo: Path) -> Path:
    """`<stem>_open<ext>` beside the input."""
    return photo.with_name(f"{photo.stem}_open{photo.suffix}")


@guarded
def open_eyes(
    photo: Path = typer.Argument(..., help="Photo to retouch (JPEG, PNG or WebP)."),
    ref: list[Path] = typer.Option([], "--ref", "-r", help="Reference photo of the same person (repeatable)."),
    ref_dir: Optional[Path] = typer.Option(None, "--ref-dir", help="Folder of reference photos."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file [default: <stem>_open<ext> beside the input]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Model folder or Hub id OWNER/NAME[@REVISION] [default: bundled reference model]."),
    device: Device = typer.Option(Device.auto, "--device", help="Where the generator runs."),
    detector: Detector = typer.Option(Detector.auto, "--detector", help="Face detector: auto (HOG, then dlib's CNN when HOG finds no face), HOG (fast) or CNN (MMOD)."),
    min_face: Optional[float] = typer.Option(None, "--min-face", min=10, help="Smallest face width to look for, in pixels (default: 40). Larger values spare dlib's upsampling on big photos (12 MP, 250: ~3x faster detection); smaller faces are then not found."),
    faces: Faces = typer.Option(Faces.closed, "--faces", help="Which faces to in-paint: closed-eyed ones, or all."),
    face: Optional[int] = typer.Option(None, "--face", help="Only this face (index, faces numbered left to right)."),
    any_identity: bool = typer.Option(False, "--any-identity", help="Accept references that look like another person."),
    identity_threshold: Optional[float] = typer.Option(None, "--identity-threshold", help="Max descriptor distance for a same-person reference [default: 0.6]."),
    detail: bool = typer.Option(True, "--detail/--no-detail", help="Give the new eyes the photo's full-resolution detail and grain (from the reference photo); --no-detail pastes the generator's 128 px eyes upscaled."),
    self_check: bool = typer.Option(True, "--self-check/--no-self-check", help="Check each retouched face (eyes open, real-looking iris and lid line, as detailed as the face, the reference's iris colour, same person), try the next reference if not, and keep the original face when all fail (exit 10 if no face passes). --no-self-check keeps every result unchecked."),
    force: bool = typer.Option(False, "--force", help="Retouch faces whose best reference is turned further than the model handles well (the pose limit, 30°); the report says so."),
    best_of: int = typer.Option(2, "--best-of", min=1, help="In-paint each face with up to N of its best references and keep the result closest to the face's own identity (2: a quarter less identity change on real closed eyes, ~0.2 s more per face on a 12 MP photo; 1: the best-ranked reference only)."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse the stored analysis of reference photos seen before (same bytes; ~/.cache/exgan or $EXGAN_CACHE_DIR); --no-cache measures every reference again and stores nothing."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report per face."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="Write a before | after | reference image."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
) -> None:
    """Open the closed eyes of the people in PHOTO, using reference photos of the same people."""
    from exgan_cli.apps.one_photo import RetouchRequest, retouch_file

    out = output or default_output(photo)
    from exgan_cli.options import RetouchOptions
    from exgan_cli.stages.blend import BlendConfig
    from exgan_cli.stages.selfcheck import SelfCheckConfig

    options = RetouchOptions(
        faces=faces.value, face_index=face, detector=detector.value, min_face=min_face,
        any_identity=any_identity, identity_threshold=identity_threshold, cache=cache, best_of=best_of, force=force,
        weights=weights, device=device.value,
        blend=BlendConfig(detail=detail), self_check=SelfCheckConfig(enabled=self_check),
    )
    request = RetouchRequest(photo=photo, output=out, refs=list(ref), ref_dir=ref_dir, overwrite=overwrite,
                             report=report, compare=compare, options=options)
    t0 = time.perf_counter()
    outcome = retouch_file(request, log=None if quiet else console.print)
    if quiet:
        return
    from exgan_cli.commands.summary import print_summary

    print_summary(console, outcome, time.perf_counter() - t0)
