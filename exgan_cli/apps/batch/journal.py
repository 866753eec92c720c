"""The run's report, ``out_dir/report.jsonl``, and the resume it allows.

One JSON object per line, appended and flushed as each photo finishes: a "run-start" line
(person, settings), one "photo" line per photo (status retouched | failed self-check |
unchanged | copied | skipped-existing | error, faces, which are the person, references,
distances, timings, error text) and a "run-end" line with the counts.

A re-run skips outputs that exist (``overwrite`` redoes them) and does not analyse again a
photo the report already records as unchanged under the same settings key (``settings_key``)
and the same source size and time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from exgan_cli.apps.batch.album import source_stat
from exgan_cli.apps.batch.person import Person
from exgan_cli.apps.batch.workers import Matcher

REPORT_NAME = "report.jsonl"  # in out_dir
STATUSES = ("retouched", "failed self-check", "unchanged", "copied", "skipped-existing", "error")


def now() -> str:
    """The report's time stamps: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class PhotoRecord:
    path: str  # relative to the album (POSIX)
    status: str  # one of STATUSES
    output: Optional[str] = None  # relative to out_dir, when a file was written or exists
    faces: list[dict] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)  # faces that are the person
    retouched: list[int] = field(default_factory=list)
    failed_check: list[int] = field(default_factory=list)  # faces in-painted but kept: failed the self-check
    references: list[str] = field(default_factory=list)  # reference photos used
    error: Optional[str] = None
    traceback: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)
    source: dict[str, int] = field(default_factory=dict)  # {"size", "mtime_ns"} of the photo
    resumed: bool = False  # known from an earlier run's report, not analysed again
    analysed: bool = False  # decoded and searched for faces in this run
    save: Optional[dict] = None  # how a retouched photo was written: images.SaveInfo.to_dict()

    def to_dict(self, settings: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": "photo",
            "path": self.path,
            "status": self.status,
            "output": self.output,
            "faces": self.faces,
            "matched": self.matched,
            "retouched": self.retouched,
            "failed_check": self.failed_check,
            "references": self.references,
            "error": self.error,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "source": self.source,
            "settings": settings,
            "resumed": self.resumed,
            "time": now(),
        }
        if self.traceback:
            d["traceback"] = self.traceback
        if self.save:
            d["save"] = self.save
        return d


@dataclass
class BatchSummary:
    album: Path
    out_dir: Path
    report: Path
    person: Person
    photos: int = 0
    counts: Counter = field(default_factory=Counter)  # status -> photos
    faces_seen: int = 0  # in the photos analysed
    faces_matched: int = 0  # of which the person's
    faces_retouched: int = 0
    faces_failed_check: int = 0  # in-painted, failed the self-check, left as they were
    analysed: int = 0  # photos decoded and searched in this run
    others: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (relative path, error)
    failed_check: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why): photos left as they were
    temp_removed: int = 0
    seconds: float = 0.0
    workers: int = 0
    weights: str = ""
    completed: bool = False  # False: interrupted (or failed) before the last photo

    @property
    def photos_per_second(self) -> float:
        return self.analysed / self.seconds if self.seconds > 0 else 0.0

    def count(self, rec: PhotoRecord) -> None:
        """Add one finished photo to the totals."""
        self.counts[rec.status] += 1
        if rec.status == "error":
            self.errors.append((rec.path, rec.error or ""))
        if rec.status == "failed self-check":
            why = "; ".join(f"face {f['index']}: {f.get('message', '')}" for f in rec.faces
                            if f.get("status") in ("failed self-check", "pose out of range"))
            self.failed_check.append((rec.path, why))
        if rec.analysed:
            self.analysed += 1
            self.faces_seen += len(rec.faces)
            self.faces_matched += len(rec.matched)
            self.faces_retouched += len(rec.retouched)
            self.faces_failed_check += len(rec.failed_check)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "run-end",
            "completed": self.completed,
            "album": str(self.album),
            "out_dir": str(self.out_dir),
            "photos": self.photos,
            "counts": {s: self.counts.get(s, 0) for s in STATUSES},
            "analysed": self.analysed,
            "faces_seen": self.faces_seen,
            "faces_matched": self.faces_matched,
            "faces_retouched": self.faces_retouched,
            "faces_failed_check": self.faces_failed_check,
            "other_files": dict(self.others),
            "errors": [{"path": p, "error": e} for p, e in self.errors],
            "failed_self_check": [{"path": p, "why": w} for p, w in self.failed_check],
            "temp_files_removed": self.temp_removed,
            "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 3),
            "time": now(),
        }


def settings_key(person: Person, matcher: Matcher) -> str:
    """What decides whether a photo has anything to retouch: a photo recorded as unchanged
    under the same key (and the same source size and time) needs no second look."""
    from exgan_cli.stages.eye_classifier import eye_state_key

    spec = {
        "person": [[p.name, *source_stat(p).values()] for p in person.photos],
        "threshold": matcher.threshold,
        "k": matcher.k,
        "detector": matcher.detector,
        "min_face": matcher.min_face,
        "all_faces": matcher.all_faces,
        **({"faces": "narrow"} if matcher.faces == "narrow" else {}),  # (a key of its own: older runs' settings keep their hash)
        "eye_state": eye_state_key(),  # which classifier (or the EAR rule) judged the eyes
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def read_report(path: Path) -> dict[str, dict]:
    """The last "photo" line of each photo in a report.jsonl that says what the photo needed
    ("skipped-existing" lines say nothing about it; unreadable lines are ignored)."""
    last: dict[str, dict] = {}
    if not path.is_file():
        return last
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue  # e.g. a line cut by a kill
            if (
                isinstance(d, dict) and d.get("kind") == "photo" and isinstance(d.get("path"), str)
                and d.get("status") != "skipped-existing"
            ):
                last[d["path"]] = d
    return last


def split_done(
    photos: list[str], album: Path, out_dir: Path, previous: dict[str, dict], settings: str, overwrite: bool
) -> tuple[list[PhotoRecord], list[tuple[str, str]]]:
    """(what is already done, (path, rel) of the photos to analyse): outputs that exist, and
    photos the report ``previous`` knows unchanged under the same settings and source file."""
    done: list[PhotoRecord] = []
    queue: list[tuple[str, str]] = []
    for rel in photos:
        src, dst = album / rel, out_dir / rel
        stat = source_stat(src)
        if dst.exists() and not overwrite:
            done.append(PhotoRecord(rel, "skipped-existing", output=rel, source=stat))
            continue
        prev = previous.get(rel)
        if (
            prev and prev.get("status") in ("unchanged", "copied") and prev.get("settings") == settings
            and prev.get("source") == stat and stat
        ):
            keep = ("faces", "matched")
            done.append(PhotoRecord(rel, "unchanged", source=stat, resumed=True, **{k: prev.get(k) or [] for k in keep}))
            continue
        queue.append((str(src), rel))
    return done, queue


class Report:
    """report.jsonl, appended: one line per event, flushed at once."""

    def __init__(self, path: Path):
        self.path = path
        ends_cleanly = True
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                ends_cleanly = f.read(1) == b"\n"
        self.file = open(path, "a", encoding="utf-8")
        if not ends_cleanly:  # a line cut by a kill: start a fresh one
            self.file.write("\n")

    def write(self, obj: dict) -> None:
        self.file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
