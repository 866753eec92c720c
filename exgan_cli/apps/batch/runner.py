"""``run_batch``: one person's closed eyes opened across an album, in headed phases.

The person and the model are loaded once; the album's photos are analysed in worker processes
(workers.py) and each photo with something to retouch is retouched and written here (photo.py),
every event appended to the report (journal.py) under the output folder's lock (album.py).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from exgan_cli.apps.batch.album import (
    check_album, check_out_dir, default_out_dir, locked, make_out_dir, remove_temp_files, scan_album,
)
from exgan_cli.apps.batch.journal import REPORT_NAME, BatchSummary, PhotoRecord, Report, now, read_report, settings_key, split_done
from exgan_cli.apps.batch.person import IDENTITY_K, Person, load_person
from exgan_cli.apps.batch.photo import Destination, finish_photo, keep_unchanged
from exgan_cli.apps.batch.workers import Matcher, analyse_all, default_workers, torch_threads
from exgan_cli.errors import ExganError
from exgan_cli.options import RetouchOptions


@dataclass
class BatchOptions:
    """An album run: the album-level settings, and how to retouch (``options``, as open-eyes).

    ``options.faces`` "all" retouches every face of the person, open-eyed ones too; batch
    chooses the faces itself (``options.only``), and ``options.min_face`` also bounds the
    album's detection.
    """

    album: Path  # folder of photos, walked recursively
    person_dir: Path  # photos of the person (one face each): identity and references
    out_dir: Optional[Path] = None  # None: album.parent / (album.name + "_open")
    overwrite: bool = False  # redo outputs that already exist
    copy_unchanged: bool = False  # copy photos with nothing to retouch (byte-identical)
    workers: Optional[int] = None  # processes decoding and detecting; None: CPU cores; 0: this process
    identity_k: int = IDENTITY_K  # see person.py
    identify_all: bool = False  # measure the identity of every face (fuller report, slower)
    options: RetouchOptions = field(default_factory=RetouchOptions)


@dataclass
class BatchPlan:
    """What a run is about to do (given to ``on_start``, before the first photo)."""

    album: Path
    out_dir: Path
    person: Person
    photos: int  # files with an image suffix
    to_analyse: int  # of which decoded and searched in this run
    already_done: int  # outputs that exist, or known unchanged from the report
    others: Counter
    temp_removed: int
    workers: int
    weights: str
    device: str


def run_batch(
    options: BatchOptions,
    on_start: Optional[Callable[[BatchPlan], None]] = None,
    on_photo: Optional[Callable[[PhotoRecord], None]] = None,
) -> BatchSummary:
    """Retouch the person of ``options.person_dir`` across ``options.album``; see the package doc.

    Raises (nothing written yet) DataError for a missing album or an unusable person folder,
    NoReferenceError when the person's eyes are closed or hidden in every photo, WeightsError, and
    OutputError for an output folder inside the album or held by another run. Problems with
    single photos never raise: they are recorded and the run goes on.
    """
    from exgan_cli.apps.inputs import load_model

    t_start = time.perf_counter()
    retouch = options.options
    album, out_dir, threshold, workers = _check_inputs(options)  # before anything is loaded or written

    # The person and the model, loaded once.
    person = load_person(options.person_dir, detector=retouch.detector, threshold=threshold, cache=retouch.cache)
    model = load_model(retouch.weights, retouch.device, engine="torch")  # many faces: torch's import pays
    make_out_dir(out_dir)
    matcher = _matcher(options, person, threshold)
    settings = settings_key(person, matcher)
    summary = BatchSummary(album=album, out_dir=out_dir, report=out_dir / REPORT_NAME, person=person,
                           workers=workers, weights=model.source)
    with locked(out_dir):
        # The plan: what an earlier run left, what is already done, what is left to analyse.
        summary.temp_removed = remove_temp_files(out_dir)
        previous = {} if options.overwrite else read_report(summary.report)
        scan = scan_album(album)
        summary.photos, summary.others = len(scan.photos), scan.others
        done, queue = split_done(scan.photos, album, out_dir, previous, settings, options.overwrite)
        plan = BatchPlan(
            album=album, out_dir=out_dir, person=person, photos=len(scan.photos), to_analyse=len(queue),
            already_done=len(done), others=scan.others, temp_removed=summary.temp_removed, workers=workers,
            weights=model.source, device=model.device,
        )
        report = Report(summary.report)
        try:
            report.write(_run_start(options, plan, matcher, settings))
            if on_start:
                on_start(plan)

            def record(rec: PhotoRecord) -> None:
                summary.count(rec)
                report.write(rec.to_dict(settings))
                if on_photo:
                    on_photo(rec)

            # The photos: those already done first, then each analysed photo as it comes back.
            dest = Destination(album, out_dir, overwrite=options.overwrite, copy_unchanged=options.copy_unchanged)
            for rec in done:
                record(keep_unchanged(rec, dest) if rec.status == "unchanged" else rec)
            base = replace(retouch, identity_threshold=threshold)
            main_threads = max(1, default_workers() - workers) if workers > 0 else None
            with torch_threads(main_threads), contextlib.closing(analyse_all(queue, matcher, workers)) as analyses:
                for analysis in analyses:
                    record(finish_photo(analysis, dest, person, model, base))
            summary.completed = True
        finally:
            # The end: the totals, even after an interruption.
            summary.seconds = time.perf_counter() - t_start
            with contextlib.suppress(Exception):
                report.write(summary.to_dict())
            report.close()
    return summary


def _check_inputs(options: BatchOptions) -> tuple[Path, Path, float, int]:
    """(album, out_dir, identity threshold, worker processes); DataError, OutputError or
    ExganError for an album, output folder or threshold that cannot be used."""
    from exgan_cli.stages.faces import SAME_PERSON_THRESHOLD

    album = Path(options.album)
    check_album(album)
    out_dir = Path(options.out_dir) if options.out_dir is not None else default_out_dir(album)
    check_out_dir(album, out_dir)
    given = options.options.identity_threshold
    threshold = SAME_PERSON_THRESHOLD if given is None else float(given)
    if not threshold > 0:
        raise ExganError(f"identity threshold must be positive, not {threshold}")
    workers = default_workers() if options.workers is None else max(0, int(options.workers))
    return album, out_dir, threshold, workers


def _matcher(options: BatchOptions, person: Person, threshold: float) -> Matcher:
    """What the workers need to find the person's faces to retouch."""
    from exgan_cli.stages.faces import MIN_FACE

    retouch = options.options
    return Matcher(
        samples=person.descriptors, threshold=threshold, k=options.identity_k, detector=retouch.detector,
        min_face=float(MIN_FACE if retouch.min_face is None else retouch.min_face), faces=retouch.faces,
        identify_all=options.identify_all,
    )


def _run_start(options: BatchOptions, plan: BatchPlan, matcher: Matcher, settings: str) -> dict[str, Any]:
    """The report's "run-start" line: the person and every setting of the run."""
    return {
        "kind": "run-start", "time": now(), "album": str(plan.album), "out_dir": str(plan.out_dir),
        "person": plan.person.to_dict(), "settings": settings, "threshold": matcher.threshold, "k": options.identity_k,
        "detector": matcher.detector, "min_face": matcher.min_face, "all_faces": matcher.all_faces, "faces": matcher.faces,
        "overwrite": options.overwrite, "copy_unchanged": options.copy_unchanged,
        "self_check": options.options.self_check.enabled, "detail": options.options.blend.detail,
        "weights": plan.weights, "workers": plan.workers,
        "photos": plan.photos, "to_analyse": plan.to_analyse, "other_files": dict(plan.others),
        "temp_files_removed": plan.temp_removed,
    }
