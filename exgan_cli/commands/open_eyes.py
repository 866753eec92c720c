"""`exgan open-eyes PHOTO --ref REF ...`: retouch one photo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from exgan_cli.commands import options as opt
from exgan_cli.commands.common import console, guarded, say, wrote
from exgan_cli.commands.options import Detector, Device, Faces


def default_output(photo: Path) -> Path:
    """`<stem>_open<ext>` beside the input."""
    return photo.with_name(f"{photo.stem}_open{photo.suffix}")


@guarded
def open_eyes(
    photo: Path = typer.Argument(..., metavar="PHOTO", help="Photo to retouch (JPEG, PNG or WebP)."),
    ref: list[Path] = opt.ref("Reference photo of the same person (repeatable)."),
    ref_dir: Optional[Path] = opt.ref_dir(),
    output: Optional[Path] = opt.output("Output file [default: <stem>_open<ext> beside the input]."),
    overwrite: bool = opt.overwrite("Replace an existing output file."),
    weights: Optional[str] = opt.weights("Model folder or Hub id OWNER/NAME[@REVISION] [default: bundled reference model]."),
    device: Device = opt.device(),
    detector: Detector = opt.detector(),
    min_face: Optional[float] = opt.min_face("Smallest face width to look for, in pixels (default: 40). Larger values spare dlib's upsampling on big photos (12 MP, 250: ~3x faster detection); smaller faces are then not found."),
    faces: Faces = typer.Option(Faces.closed, "--faces", help=opt.FACES_HELP, rich_help_panel=opt.FACES_PANEL),
    face: Optional[int] = typer.Option(None, "--face", help="Only this face (index, faces numbered left to right).", rich_help_panel=opt.FACES_PANEL),
    any_identity: bool = typer.Option(False, "--any-identity", help="Accept references that look like another person.", rich_help_panel=opt.FACES_PANEL),
    identity_threshold: Optional[float] = opt.identity_threshold("Max descriptor distance for a same-person reference [default: 0.6]."),
    detail: bool = opt.detail(),
    iris_colour: bool = opt.iris_colour(),
    self_check: bool = opt.self_check("Check each retouched face (eyes open, real-looking iris and lid line, as detailed as the face, the reference's iris colour, same person), try the next reference if not, and keep the original face when all fail (exit 10 if no face passes). --no-self-check keeps every result unchecked."),
    force: bool = opt.force("Retouch faces whose best reference is turned further than the model handles well (the pose limit, 30°); the report says so."),
    best_of: int = opt.best_of(),
    cache: bool = opt.cache("Reuse the stored analysis of reference photos seen before (same bytes; ~/.cache/exgan or $EXGAN_CACHE_DIR); --no-cache measures every reference again and stores nothing."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report per face."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="Write a before | after | reference image."),
    quiet: bool = opt.quiet("Nothing on stderr but errors (stdout still gets the written photo's path)."),
) -> None:
    """Open the closed eyes of the people in PHOTO, using reference photos of the same people."""
    from exgan_cli.apps.one_photo import RetouchRequest, retouch_file

    options = opt.retouch_options(
        faces=faces.value, face_index=face, any_identity=any_identity, detector=detector, device=device,
        weights=weights, min_face=min_face, identity_threshold=identity_threshold, detail=detail,
        self_check=self_check, best_of=best_of, cache=cache, force=force, iris_colour=iris_colour,
    )
    request = RetouchRequest(photo=photo, output=output or default_output(photo), refs=list(ref), ref_dir=ref_dir,
                             overwrite=overwrite, report=report, compare=compare, options=options)
    t0 = time.perf_counter()
    outcome = retouch_file(request, log=None if quiet else say)
    if not quiet:
        from exgan_cli.commands.summary import print_summary

        print_summary(console, outcome, time.perf_counter() - t0)
    if outcome.output:
        wrote(outcome.output)
