"""`exgan batch ALBUM --person-dir DIR`: retouch one person's closed eyes across an album."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from exgan_cli.commands import options as opt
from exgan_cli.commands.common import console, guarded
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
    all_faces: bool = typer.Option(False, "--all-faces", help="Retouch every face of the person, open-eyed ones too.", rich_help_panel=opt.FACES_PANEL),
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
    quiet: bool = opt.quiet("No progress bar or summary; errors only."),
) -> None:
    """Open the closed eyes of one person (shown in --person-dir) in every photo of ALBUM.

    Other people are left untouched; every retouched face is self-checked (as in open-eyes) and a photo whose faces all fail is not written. Outputs keep the album's layout under the output folder, originals are never modified, existing outputs are skipped (a re-run resumes), and OUT_DIR/report.jsonl gets one line per photo. Exits 0 when the run completed, even if some photos failed (they are listed).
    """
    from exgan_cli.apps.batch import BatchOptions, run_batch

    retouch = opt.retouch_options(
        faces="all" if all_faces else "closed", detector=detector, device=device, weights=weights, min_face=min_face,
        identity_threshold=identity_threshold, detail=detail, self_check=self_check, best_of=best_of, cache=cache,
        force=force, iris_colour=iris_colour,
    )
    options = BatchOptions(album=album, person_dir=person_dir, out_dir=output, overwrite=overwrite,
                           copy_unchanged=copy_unchanged, workers=workers, identify_all=identify_all, options=retouch)
    if quiet:
        run_batch(options)
        return
    view = _View()
    try:
        summary = run_batch(options, on_start=view.start, on_photo=view.photo)
    finally:
        view.stop()
    print_batch_summary(summary)


class _View:
    """The rich progress bar: photos done, faces retouched, errors, photos/s, ETA."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None
        self.faces = 0
        self.errors = 0

    def start(self, plan) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        p = plan.person
        console.print(
            f"person: {len(p.photos)} photo(s) in {p.folder}"
            + (f", {len(p.rejected)} not used" if p.rejected else "")
        )
        for r in p.rejected:
            console.print(f"  [yellow]not used[/] {Path(r['path']).name}: {r['reason']}")
        console.print(
            f"album: {plan.photos} photo(s), {plan.already_done} already done, {plan.to_analyse} to go"
            + (f"; {sum(plan.others.values())} other file(s) skipped" if plan.others else "")
            + f"; weights {plan.weights} on {plan.device}, {plan.workers} worker(s)"
        )
        if plan.temp_removed:
            console.print(f"removed {plan.temp_removed} temporary file(s) left by an interrupted run")
        self.progress = Progress(
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("photos, {task.fields[faces]} faces retouched, {task.fields[errors]} errors, {task.fields[rate]} ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("batch", total=plan.to_analyse, faces=0, errors=0, rate="-- photos/s,")
        self.progress.start()

    def photo(self, rec) -> None:
        if self.progress is None or not rec.analysed:
            return
        self.faces += len(rec.retouched)
        self.errors += rec.status == "error"
        task = self.progress.tasks[0]
        rate = f"{task.speed:.1f} photos/s," if task.speed else "-- photos/s,"
        self.progress.update(self.task, advance=1, faces=self.faces, errors=self.errors, rate=rate)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_batch_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"{summary.album} -> {summary.out_dir}", title_justify="left")
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
    table.add_row("time", f"{summary.seconds:.1f} s, {summary.photos_per_second:.2f} photos/s ({summary.analysed} analysed)")
    console.print(table)
    for r in summary.person.rejected:
        console.print(f"[yellow]person photo not used[/] {r['path']}: {r['reason']}")
    for path, why in summary.failed_check:
        console.print(f"[yellow]failed self-check, not written[/] {path}: {why}", soft_wrap=True)
    for path, error in summary.errors:
        console.print(f"[red]error[/] {path}: {error}", soft_wrap=True)
    console.print(f"report: {summary.report}")
