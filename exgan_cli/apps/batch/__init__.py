"""Album runs: open one person's closed eyes in every photo of a folder (`exgan batch`).

``run_batch(BatchOptions(album, person_dir, options=RetouchOptions(...)))`` walks the album
recursively and, in every photo, retouches the closed-eyed faces of the person shown in
``person_dir`` (and only theirs), each with the best reference from ``person_dir`` (the same
selection and the same ``RetouchOptions`` as `exgan open-eyes`). It returns a BatchSummary and
can report each photo to a callback (the CLI draws a progress bar with it).

One concern per module, in the order a run meets them:

- person.py: who the person is (identity samples, the identity distance) and their references;
- album.py: the album's photos, the output folder, its lock, atomic copies;
- journal.py: report.jsonl (one line per photo) and the resume it allows;
- workers.py: decode, detect, eye state and identity in worker processes;
- photo.py: one analysed photo retouched (self-checked) and written;
- runner.py: ``run_batch``, the phases above in order.
"""

from exgan_cli.apps.batch.album import AlbumScan, check_out_dir, default_out_dir, remove_temp_files, scan_album
from exgan_cli.apps.batch.journal import REPORT_NAME, STATUSES, BatchSummary, PhotoRecord, read_report
from exgan_cli.apps.batch.person import IDENTITY_K, Person, identity_distance, load_person
from exgan_cli.apps.batch.runner import BatchOptions, BatchPlan, run_batch
from exgan_cli.apps.batch.workers import default_workers

__all__ = [
    "AlbumScan", "BatchOptions", "BatchPlan", "BatchSummary", "IDENTITY_K", "Person", "PhotoRecord", "REPORT_NAME",
    "STATUSES", "check_out_dir", "default_out_dir", "default_workers", "identity_distance", "load_person",
    "read_report", "remove_temp_files", "run_batch", "scan_album",
]
