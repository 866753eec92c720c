"""`exgan batch ALBUM --person-dir DIR`: retouch one person's closed eyes across an album."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional

import typer

from exgan_cli.commands import options as opt
from exgan_cli.commands.common import console, guarded, plural, say, wrote
from exgan_cli.commands.options import Detector, Device


@guarded
def batch(
    album: Path = typer.Argument(..., metavar="ALBUM", help="Folder of photos (walked recursively)."),
    person_dir: Path = typer.Option(..., "--person-dir", "-p", metavar="DIR", help="Folder of photos of the person, one face each: who to retouch, and the references."),
    output: Optional[Path] = opt.output("Output folder, same layout as the album (default: ALBUM_open beside the album; never inside it).", metavar="DIR"),
    overwrite: bool = opt.overwrite("Redo outputs that already exist (default: skip them, so a re-run resumes)."),
    copy_unchanged: bool = typer.Option(False, "--copy-unchanged", help="Also copy photos with nothing to retouch (byte-identical)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=0, help="Processes decoding and detecting photos (default: the number of CPU cores; 0: none, all in this process)."),
    min_face: Optional[float] = opt.min_face("Smallest face width to look for, in pixels (default: 40). Larger values spare dlib's upsampling (~4x faster detection), e.g. 250 for albums of 2-12 MP photos; smaller faces may be missed."),
    identity_threshold: Optional[float] = opt.identity_threshold("Max identity distance for a face to be the person's: mean of its dlib descriptor distances to the 3 closest person photos (default: 0.6).", min=0.01),
    all_faces: bool = typer.Option(False, "--all-faces", help="Retouch every face of the person, open-eyed ones too (never eyes hidden by sunglasses or a hand).", rich_help_panel=opt.FACES_PANEL),
    narrow_faces: bool = typer.Option(False, "--narrow-faces", help="Also retouch the person's narrowed eyes (a smile, a laugh, a squint, the irises still visible), which are left alone by default.", rich_help_panel=opt.FACES_PANEL),
    identify_all: bool = typer.Option(False, "--identify-all", help="Measure the identity of every face for the report (slower).", rich_help_panel=opt.FACES_PANEL),
    weights: Optional[str] = opt.weights("Model folder or Hub id OWNER/NAME@REVISION (default: the bundled reference model)."),
    device: Device = opt.device(),
    detector: Detector = opt.detector(),
    detail: bool = opt.detail(),
    iris_colour: bool = opt.iris_colour(),
    best_of: int = opt.best_of(),
    cache: bool = opt.cache("Reuse the stored analysis of person-dir photos seen before (same bytes; ~/.cache/exgan or $EXGAN_CACHE_DIR); --no-cache measures them again and stores nothing."),
    self_check: bool = opt.self_check("Check each retouched face (eyes open, same person), try the next reference if not, and leave a photo unwritten when none of its faces passes (status 'failed self-check'). --no-self-check keeps every result unchecked."),
    force: bool = opt.force("Retouch faces whose best reference is turned further than the model handles well (the pose limit, 30°)."),
    quiet: bool = opt.quiet("No progress bar or summary on stderr, errors only (stdout still gets each written photo's path)."),
) -> None:
    """Open the closed eyes of one person (shown in --person-dir) in every photo of ALBUM.

    Other people are left untouched; every retouched face is self-checked (as in open-eyes) and a photo whose faces all fail is not written. Outputs keep the album's layout under the output folder, originals are never modified, existing outputs are skipped (a re-run resumes), and OUT_DIR/report.jsonl gets one line per photo. Exits 0 when the run completed, even if some photos failed (they are listed).
    """
    from exgan_cli.apps.batch import BatchOptions, run_batch

    retouch = opt.retouch_options(
        faces="all" if all_faces else ("narrow" if narrow_faces else "closed"), detector=detector, device=device, weights=weights, min_face=min_face,
        identity_threshold=identity_threshold, detail=detail, self_check=self_check, best_of=best_of, cache=cache,
        force=force, iris_colour=iris_colour,
    )
    options = BatchOptions(album=album, person_dir=person_dir, out_dir=output, overwrite=overwrite,
                           copy_unchanged=copy_unchanged, workers=workers, identify_all=identify_all, options=retouch)
    view = _View(quiet)
    summary = None
    try:
        summary = run_batch(options, on_start=view.start, on_photo=view.photo)
    finally:
        view.stop(summary)
    if not quiet:
        print_batch_summary(summary)


def rate(photos: int, seconds: float) -> str:
    """Photos analysed per second of the whole run (loading the person and the model included):
    the progress bar's figure is the summary's, measured the same way."""
    return f"{photos / seconds:.2f} photos/s" if photos and seconds > 0 else "-- photos/s"


class _View:
    """What a run shows: on stdout the path of each photo written (retouched or copied) as it is
    written; on stderr, unless ``quiet``, the plan and the rich progress bar (photos done, faces
    retouched, errors, photos/s, ETA)."""

    def __init__(self, quiet: bool = False, clock: Callable[[], float] = time.perf_counter) -> None:
        self.quiet = quiet
        self.out_dir: Path | None = None
        self.clock = clock
        self.t0 = clock()  # as the run's own clock starts (BatchSummary.seconds)
        self.progress = None
        self.task = None
        self.done = 0
        self.faces = 0
        self.errors = 0

    def start(self, plan) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.out_dir = plan.out_dir
        if self.quiet:
            return
        p = plan.person
        say(f"person: {plural(len(p.photos), 'photo')} in {p.folder}" + (f", {len(p.rejected)} not used" if p.rejected else ""))
        for r in p.rejected:
            say("  ", ("not used", "yellow"), f" {Path(r['path']).name}: {r['reason']}")
        say(
            f"album: {plural(plan.photos, 'photo')}, {plan.already_done} already done, {plan.to_analyse} to go"
            + (f"; {plural(sum(plan.others.values()), 'other file')} skipped" if plan.others else "")
            + f"; weights {plan.weights} on {plan.device}, {plural(plan.workers, 'worker')}"
        )
        if plan.temp_removed:
            say(f"removed {plural(plan.temp_removed, 'temporary file')} left by an interrupted run")
        self.progress = Progress(
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[text]}"),
            TimeRemainingColumn(),
            console=console,
            redirect_stdout=sys.stdout.isatty(),  # stdout piped: the written paths go to the pipe, not the bar's stderr
        )
        self.task = self.progress.add_task("batch", total=plan.to_analyse, text=self.text())
        self.progress.start()

    def text(self, photos_per_s: str | None = None) -> str:
        return (f"photos, {plural(self.faces, 'face')} retouched, {plural(self.errors, 'error')}, "
                f"{photos_per_s or rate(self.done, self.clock() - self.t0)}, ETA")

    def photo(self, rec) -> None:
        if rec.output and rec.status in ("retouched", "copied") and self.out_dir is not None:
            wrote(self.out_dir / rec.output)
        if not rec.analysed:
            return
        self.done += 1
        self.faces += len(rec.retouched)
        self.errors += rec.status == "error"
        if self.progress is not None:
            self.progress.update(self.task, advance=1, text=self.text())

    def stop(self, summary=None) -> None:
        """Stop the bar; after a finished run its last frame shows the summary's own photos/s
        (the run's whole time, its end included), so the two figures left on screen agree."""
        if self.progress is not None:
            if summary is not None:
                self.progress.update(self.task, text=self.text(rate(summary.analysed, summary.seconds)))
            self.progress.stop()


def print_batch_summary(summary) -> None:
    from rich.table import Table

    say(("", ""), (f"{summary.album} -> {summary.out_dir}", "bold"))
    table = Table()
    table.add_column("photos")
    table.add_column("count", justify="right")
    for status in ("retouched", "failed self-check", "unchanged", "copied", "skipped-existing", "error"):
        table.add_row(status, str(summary.counts.get(status, 0)))
    table.add_row("total", str(summary.photos))
    if summary.others:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.others.items()))
        table.add_row("other files skipped", f"{sum(summary.others.values())} ({kinds})")
    table.add_row("faces seen / the person's / retouched", f"{summary.faces_seen} / {summary.faces_matched} / {summary.faces_retouched}")
    if summary.faces_failed_check:
        table.add_row("faces that failed the self-check (left as they were)", str(summary.faces_failed_check))
    table.add_row("time", f"{summary.seconds:.1f} s, {rate(summary.analysed, summary.seconds)} ({summary.analysed} analysed)")
    console.print(table)
    for r in summary.person.rejected:
        say(("person photo not used", "yellow"), f" {r['path']}: {r['reason']}")
    for path, why in summary.failed_check:
        say(("failed self-check, not written", "yellow"), f" {path}: {why}")
    for path, error in summary.errors:
        say(("error", "red"), f" {path}: {error}")
    say(f"report: {summary.report}")
