"""Throughput of `exgan batch` on an album of 100 real photos, against a floor; --full-size: full-size photos.

The album (built in a temp dir from ../shared/data): 40 LFW photos of Donald Rumsfeld (5 with
closed eyes by our eye-state threshold), 52 LFW photos of 13 other people (4 each; some of
them with closed eyes too, which must not be retouched) and 8 high-resolution photos (0.4 to
12.6 MP; a group selfie and a couple among them). The person folder holds 6 other photos of
Rumsfeld. The floor is what any photo tool pays: decoding each photo with Pillow and encoding
it as JPEG (quality 95), one after the other in this process, measured in the same run as
CPU time (per photo, the median of 3 passes: 2 before the batch runs, 1 after), so that other
processes on a shared machine do not inflate it. For each run (the defaults, then --min-face
250, which spares dlib's upsampling on all these photos) it prints photos/s of the whole run
(person and model loading and worker start-up included) and of the album phase, their ratio
to the floor, the same from CPU time (what an idle machine with that many cores would give),
and where the time goes.

    python benchmarks/batch.py [--weights DIR] [--workers N] [--device cpu] [--min-face 0 250]

Without --weights it uses the bundled model, or, when there is none, a randomly initialised
generator of the default size (the same cost as a trained one).

--full-size (#16) builds instead an album of full-size photos from ../shared/data/photos: the
three largest photos of the one person there (img1, img4, img7: 2.6-4.3 MP) and six large
photos of others (img49 12.6 MP, img40 14.1 MP, img23, img41, img54, couple.jpg: 3.6-5.2 MP),
each copied twice (18 photos, 108 MP, 6.0 MP a photo), and a person folder of that person's
other photos (img2, img5, img6, img10, img11). For each --min-face it runs, in this order and
in the same run: the detection-only floor (exgan_cli.files.images.load_image +
stages.faces.detect_faces with batch's detector, "auto", and min_face; landmarks included)
on one process, then on as many spawned processes as batch's workers (their start-up timed
apart); then batch with its default workers, and batch --workers 0 (one process). It prints
photos/s of each (batch: the album phase, worker start-up included, and the whole run), the
CPU seconds, the load average at the end of each, the stage times summed from batch's report,
and the ratios batch / single process and batch / floor.

    python benchmarks/batch.py --full-size [--min-face 0 250] [--workers N]

Measured
--------
On an idle machine (2026-11-30, 2 cores, load average 0.4 at the start, 1.4 at the end; nothing
else running):

    $ python benchmarks/batch.py --full-size
    defaults (--min-face 40):
      floor, 1 process     23.64 s = 0.76 photos/s; CPU 24.13 s
      floor, 2 processes   14.54 s = 1.24 photos/s (+ pool start-up 1.10 s); CPU 28.19 s
      batch, 2 workers     18.43 s = 0.98 photos/s (album phase; whole run 22.37 s = 0.80 photos/s); CPU 39.98 s
      batch, --workers 0   24.30 s = 0.74 photos/s (album phase); CPU 24.98 s
      ratios (photos/s): batch / single process 1.32, batch / floor on 1 process 1.28,
                         batch / floor on 2 processes 0.79; single process / floor on 1 process 0.97
    --min-face 250:
      floor, 1 process      6.84 s = 2.63 photos/s
      floor, 2 processes    5.04 s = 3.57 photos/s (+ pool start-up 0.83 s)
      batch, 2 workers      8.86 s = 2.03 photos/s (album phase)
      batch, --workers 0    7.45 s = 2.42 photos/s (album phase)
      ratios (photos/s): batch / single process 0.84, batch / floor on 1 process 0.77,
                         batch / floor on 2 processes 0.57; single process / floor on 1 process 0.92

With both cores free, 2 workers are 1.32x one process at the default settings and reach 0.79 of
the 2-process floor. At --min-face 250 the album takes 7-9 s, and the workers' start-up (spawn,
imports, dlib's models and the eye-state classifier, ~2.7 s each) is most of it: one process wins.

The first runs, made while other jobs held the second core:

2026-11-30, 2 cores (AMD EPYC VM, 1 thread a core), shared: other engineers' pytest with two
worker processes ran throughout. `uptime` before: load average 1.71, 2.30, 3.05; after: 1.58,
2.56, 3.04 (1-minute load at the end of each row below). Bundled weights; nobody in this album
has closed eyes, so nothing is retouched (18 unchanged, 20 faces, none identified).

    $ python benchmarks/batch.py --full-size
    defaults (--min-face 40):
      floor, 1 process     23.39 s = 0.77 photos/s; CPU 23.31 s; load 2.5
      floor, 2 processes   25.22 s = 0.71 photos/s (+ pool start-up 1.68 s); CPU 25.22 s; load 3.7
      batch, 2 workers     33.20 s = 0.54 photos/s (album phase; whole run 36.82 s = 0.49 photos/s); CPU 36.80 s; load 3.5
                           stage seconds summed over photos: load 3.23, detect 52.52
      batch, --workers 0   25.13 s = 0.72 photos/s (album phase; whole run 25.29 s = 0.71 photos/s); CPU 24.92 s; load 3.7
                           stage seconds summed over photos: load 1.22, detect 23.90
      ratios (photos/s): batch / single process 0.76, batch / floor on 1 process 0.70,
                         batch / floor on 2 processes 0.76; single process / floor on 1 process 0.93
    --min-face 250:
      floor, 1 process      6.67 s = 2.70 photos/s; CPU 6.64 s; load 3.9
      floor, 2 processes    9.97 s = 1.81 photos/s (+ pool start-up 2.07 s); CPU 9.86 s; load 4.1
      batch, 2 workers     15.53 s = 1.16 photos/s (album phase; whole run 15.67 s = 1.15 photos/s); CPU 15.63 s; load 4.0
                           stage seconds summed over photos: load 3.75, detect 16.32
      batch, --workers 0    9.83 s = 1.83 photos/s (album phase; whole run 9.96 s = 1.81 photos/s); CPU 9.85 s; load 4.0
                           stage seconds summed over photos: load 1.22, detect 8.59
      ratios (photos/s): batch / single process 0.63, batch / floor on 1 process 0.43,
                         batch / floor on 2 processes 0.64; single process / floor on 1 process 0.68

A run 5 minutes earlier (load average 1.8 at the start, 3.9 at the end) gave at --min-face 40:
floor 0.76 / 0.70 photos/s (1 / 2 processes), batch 0.49 (2 workers) and 0.64 (--workers 0),
ratios batch / single 0.76, batch / floor 0.64 and 0.70; at 250: floor 2.06 / 1.76, batch 1.04
and 2.04, ratios 0.51, 0.51 and 0.59.

What they say. Batch in one process is the floor plus the eye-state classifier: 0.84-0.99x the
floor's photos/s (the 0.68 above is the load rising between two rows), detection being 95% of
its stage time. On this shared machine no second core was free (the load stayed at 2.5-4), so
two processes gain nothing even for the floor (0.71 vs 0.77 photos/s) and batch's 2 workers
are slower than its single process (0.76x at --min-face 40, 0.51-0.63x at 250): the workers'
detection takes twice its single-process time a photo (52.5 s vs 23.9 s summed) and each
worker's start-up (spawn, imports, dlib's models and the eye-state classifier: about 2.7 s
measured in a fresh interpreter) falls inside the album phase; at --min-face 250 that fixed
cost is most of the 5.7 s between 2 workers and one process. Against the floor on the same
number of processes batch gives 0.70-0.76x at --min-face 40 and 0.59-0.64x at 250. These
figures bound the two-worker case from below; on an idle 2-core machine the CPU seconds
(36.8 s at --min-face 40 over two cores) allow about 1 photo/s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

PERSON = "Donald_Rumsfeld"
OTHERS = [
    "George_W_Bush", "Colin_Powell", "Tony_Blair", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez",
    "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft", "Jacques_Chirac", "Serena_Williams",
    "Vladimir_Putin", "Laura_Bush",
]
HIGHRES = ["selfie-many-people.jpg", "couple.jpg", "img49.jpg", "img4.jpg", "img23.jpg", "img13.jpg", "img18.jpg", "img20.jpg"]

# --full-size: photos/ at full size. One person (img1, 2, 4, 5, 6, 7, 10, 11 in master.csv): the
# three largest of them in the album, the others as the person folder; six large photos of
# other people (a couple among them); each album photo twice.
FULL_PERSON_ALBUM = ["img1.jpg", "img4.jpg", "img7.jpg"]
FULL_PERSON_DIR = ["img2.jpg", "img5.jpg", "img6.jpg", "img10.jpg", "img11.jpg"]
FULL_OTHERS = ["img49.jpg", "img40.jpg", "img23.jpg", "img41.jpg", "img54.jpg", "couple.jpg"]
FULL_COPIES = 2


def build(tmp: Path) -> tuple[Path, Path]:
    album, person = tmp / "album", tmp / "person"
    lfw = DATA / "lfw"
    own = sorted((lfw / PERSON).glob("*.jpg"))
    (album / "rumsfeld").mkdir(parents=True)
    person.mkdir()
    for p in own[:40]:
        shutil.copy(p, album / "rumsfeld" / p.name)
    for p in own[40:46]:
        shutil.copy(p, person / p.name)
    for name in OTHERS:
        (album / "others" / name).mkdir(parents=True)
        for p in sorted((lfw / name).glob("*.jpg"))[:4]:
            shutil.copy(p, album / "others" / name / p.name)
    (album / "highres").mkdir()
    for name in HIGHRES:
        shutil.copy(DATA / "photos" / name, album / "highres" / name)
    return album, person


def build_full_size(tmp: Path) -> tuple[Path, Path]:
    album, person = tmp / "album", tmp / "person"
    photos = DATA / "photos"
    for kind, names in (("person", FULL_PERSON_ALBUM), ("others", FULL_OTHERS)):
        (album / kind).mkdir(parents=True)
        for name in names:
            for i in range(FULL_COPIES):
                shutil.copy(photos / name, album / kind / f"{Path(name).stem}-{i}.jpg")
    person.mkdir()
    for name in FULL_PERSON_DIR:
        shutil.copy(photos / name, person / name)
    return album, person


def detect_only(path: str, detector: str, min_face: float) -> tuple[float, float, float]:
    """The detection-only floor for one photo: decode as batch does, then the same detector
    (landmarks included) at the same min_face; (wall, CPU seconds, faces)."""
    from exgan_cli.files.images import load_image
    from exgan_cli.stages.faces import detect_faces

    t, c = time.perf_counter(), time.process_time()
    faces = detect_faces(load_image(path).pixels, detector=detector, min_face=min_face)
    return time.perf_counter() - t, time.process_time() - c, len(faces)


def _warm_worker(detector: str) -> None:
    """Import and load dlib's models in a floor worker (as batch workers do before their first photo)."""
    import numpy as np

    from exgan_cli.stages.faces import detect_faces

    detect_faces(np.zeros((64, 64, 3), np.uint8), detector="hog")


def floor_run(photos: list[Path], detector: str, min_face: float, workers: int) -> dict[str, float]:
    """Decode + detection of every photo, in this process (workers 0) or on ``workers`` spawned
    processes; wall seconds of the photos (pool start-up apart) and the CPU seconds they took."""
    args = [(str(p), detector, min_face) for p in photos]
    if workers <= 0:
        t = time.perf_counter()
        res = [detect_only(*a) for a in args]
        return {"wall": time.perf_counter() - t, "cpu": sum(r[1] for r in res), "faces": sum(r[2] for r in res), "startup": 0.0}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm_worker, [detector] * workers))
        t = time.perf_counter()
        res = list(pool.map(detect_only, *zip(*args)))
        wall = time.perf_counter() - t
    return {"wall": wall, "cpu": sum(r[1] for r in res), "faces": sum(r[2] for r in res), "startup": t - t0}


def full_size(args: argparse.Namespace, weights_for) -> None:
    """--full-size: batch (default workers), batch --workers 0, and the detection-only floor on
    one and on two processes, for each --min-face, all in this run."""
    from exgan_cli.apps.batch import BatchOptions, default_workers, load_person, run_batch
    from exgan_cli.options import RetouchOptions
    from exgan_cli.stages.faces import MIN_FACE

    with tempfile.TemporaryDirectory() as tmpname:
        tmp = args.keep or Path(tmpname)
        album, person = build_full_size(tmp)
        os.environ["EXGAN_CACHE_DIR"] = str(tmp / "cache")
        photos = sorted(album.rglob("*.jpg"))
        n = len(photos)
        mp = sum(_megapixels(p) for p in photos)
        weights = weights_for(tmp)
        detector = RetouchOptions().detector
        print(f"full-size album: {n} photos, {mp:.1f} MP in all ({mp / n:.1f} MP a photo; "
              f"{', '.join(f'{k} {sum(1 for p in photos if p.parent.name == k)}' for k in ('person', 'others'))}),"
              f" person folder: {len(list(person.iterdir()))} photos; detector {detector}; weights {weights}")
        print(f"cores: {default_workers()}, load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
        load_person(person)  # warm-up: dlib's models in this process, the person's analyses in the cache
        batch_workers = default_workers() if args.workers is None else args.workers
        for min_face in args.min_face:
            mf = float(min_face or MIN_FACE)
            label = f"--min-face {min_face}" if min_face else f"defaults (--min-face {MIN_FACE})"
            print(f"\n{label}:", flush=True)
            rows = {}
            for name, workers in (("floor, 1 process", 0), (f"floor, {batch_workers} processes", batch_workers)):
                f = floor_run(photos, detector, mf, workers)
                rows[name] = (f["wall"], f["cpu"])
                extra = f" (+ pool start-up {f['startup']:.2f} s)" if workers else ""
                print(f"  {name:<24} {f['wall']:6.2f} s = {n / f['wall']:5.2f} photos/s{extra}; CPU {f['cpu']:.2f} s;"
                      f" {f['faces']} faces; load {os.getloadavg()[0]:.1f}", flush=True)
            for name, workers in ((f"batch, {batch_workers} workers", batch_workers), ("batch, --workers 0", 0)):
                out = tmp / f"out-{min_face or 'default'}-{workers}"
                phase: dict = {}
                c0, t0 = cpu_seconds(), time.perf_counter()
                summary = run_batch(
                    BatchOptions(album=album, person_dir=person, out_dir=out, workers=workers,
                                 options=RetouchOptions(weights=weights, device=args.device, min_face=min_face or None)),
                    on_start=lambda plan, phase=phase: phase.setdefault("start", time.perf_counter()),
                )
                total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                album_s = time.perf_counter() - phase["start"]
                rows[name] = (album_s, cpu)
                stages: dict[str, float] = defaultdict(float)
                for line in (out / "report.jsonl").read_text().splitlines():
                    d = json.loads(line)
                    if d["kind"] == "photo":
                        for k, v in d["timings"].items():
                            stages[k] += v
                print(f"  {name:<24} {album_s:6.2f} s = {n / album_s:5.2f} photos/s (album phase; whole run {total:.2f} s ="
                      f" {n / total:.2f} photos/s); CPU {cpu:.2f} s; {dict(summary.counts)}, faces {summary.faces_seen},"
                      f" the person's {summary.faces_matched}, retouched {summary.faces_retouched}; load {os.getloadavg()[0]:.1f}", flush=True)
                print(f"  {'':<24} stage seconds summed over photos: {', '.join(f'{k} {v:.2f}' for k, v in stages.items())}")
            b = rows[f"batch, {batch_workers} workers"][0]
            print(f"  ratios (photos/s): batch / single process {rows['batch, --workers 0'][0] / b:.2f},"
                  f" batch / floor on 1 process {rows['floor, 1 process'][0] / b:.2f},"
                  f" batch / floor on {batch_workers} processes {rows[f'floor, {batch_workers} processes'][0] / b:.2f};"
                  f" single process / floor on 1 process {rows['floor, 1 process'][0] / rows['batch, --workers 0'][0]:.2f}")
        print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


def _megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0] * im.size[1] / 1e6


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the worker processes)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def floor_pass(photos: list[Path]) -> dict[str, float]:
    from PIL import Image

    times = {}
    for p in photos:
        t = time.process_time()
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=95)
        times[str(p)] = time.process_time() - t  # CPU time: robust to other processes' load
    return times


def random_weights(folder: Path) -> Path:
    import torch

    from exgan_cli.model import weights
    from exgan_cli.stages.geometry import AlignConfig, MaskConfig
    from exgan_cli.model.config import ModelConfig
    from exgan_cli.model.generator import Generator

    torch.manual_seed(0)
    cfg = ModelConfig()
    return weights.save_pretrained(folder, Generator(cfg), None, cfg, AlignConfig(resolution=cfg.resolution), MaskConfig(),
                                   "random weights for benchmarks")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="model folder [default: bundled, else random default-size]")
    ap.add_argument("--workers", type=int, default=None, help="[default: CPU cores]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--min-face", type=int, nargs="+", default=[0, 250], help="runs to make (0: the default, 40) [default: 0 250]")
    ap.add_argument("--keep", type=Path, default=None, help="build the album here and keep it")
    ap.add_argument("--full-size", action="store_true",
                    help="the full-size album (photos/), against one process and the detection-only floor")
    args = ap.parse_args()

    def weights_for(tmp: Path) -> str:
        if args.weights is not None:
            return args.weights
        try:
            return str(resolve_default())
        except WeightsError:
            return str(random_weights(tmp / "random-weights"))

    from exgan_cli.apps.batch import BatchOptions, default_workers, run_batch
    from exgan_cli.errors import WeightsError
    from exgan_cli.options import RetouchOptions
    from exgan_cli.model.weights import resolve_default

    if args.full_size:
        full_size(args, weights_for)
        return
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = args.keep or Path(tmpname)
        album, person = build(tmp)
        # A private reference-analysis cache: the first run measures the person's photos, later
        # runs find them there (as a user's second batch over the same person-dir would).
        os.environ["EXGAN_CACHE_DIR"] = str(tmp / "cache")
        photos = sorted(p for p in album.rglob("*.jpg"))
        weights = weights_for(tmp)
        kinds = {str(p): p.relative_to(album).parts[0] for p in photos}
        print(f"album: {len(photos)} photos ({', '.join(f'{k} {list(kinds.values()).count(k)}' for k in ('rumsfeld', 'others', 'highres'))}),"
              f" person: {len(list(person.iterdir()))} photos; weights {weights}")
        print(f"cores: {default_workers()}, load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")

        from exgan_cli.apps.batch import load_person

        load_person(person)  # warm-up: dlib's models in this process (the workers load their own each run)
        passes = [floor_pass(photos) for _ in range(2)]  # and one more after the runs (the load varies)
        runs = []
        for min_face in args.min_face:
            out = tmp / f"out-{min_face or 'default'}"
            phase = {}
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            summary = run_batch(
                BatchOptions(album=album, person_dir=person, out_dir=out, workers=args.workers,
                             options=RetouchOptions(weights=weights, device=args.device, min_face=min_face or None)),
                on_start=lambda plan, phase=phase: phase.setdefault("start", time.perf_counter()),
            )
            total = time.perf_counter() - t0
            cpu = cpu_seconds() - c0
            runs.append((min_face, summary, total, time.perf_counter() - phase["start"], out / "report.jsonl", cpu))
        passes.append(floor_pass(photos))
        floor = {k: statistics.median(p[k] for p in passes) for k in passes[0]}
        floor_s = sum(floor.values())
        n = len(photos)
        print(f"\nfloor (Pillow decode + JPEG q95 encode, sequential, one core; CPU time): {floor_s:.2f} s = {n / floor_s:.1f} photos/s")
        for min_face, summary, total, album_s, report, cpu in runs:
            label = f"--min-face {min_face}" if min_face else "defaults (--min-face 40)"
            print(f"\n{label}: {dict(summary.counts)}; faces seen {summary.faces_seen}, the person's {summary.faces_matched},"
                  f" retouched {summary.faces_retouched}; {summary.workers} workers")
            print(f"  whole run:   {total:6.2f} s = {n / total:5.1f} photos/s, ratio to floor {floor_s / total:.3f}")
            print(f"  album phase: {album_s:6.2f} s = {n / album_s:5.1f} photos/s, ratio to floor {floor_s / album_s:.3f}"
                  f"  (setup: person, model, workers {total - album_s:.2f} s)")
            cores = min(default_workers(), max(1, summary.workers))
            print(f"  CPU time:    {cpu:6.2f} s (all processes); on {cores} idle core(s) that is >= {cpu / cores:.2f} s wall ="
                  f" {n * cores / cpu:5.1f} photos/s, ratio to floor {floor_s * cores / cpu:.3f}")
            # Where the time goes: stage times per photo from the report, summed per kind of photo.
            stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
            for line in report.read_text().splitlines():
                d = json.loads(line)
                if d["kind"] == "photo":
                    for k, v in d["timings"].items():
                        stages[d["path"].split("/")[0]][k] += v
            for kind in ("rumsfeld", "others", "highres"):
                f = sum(v for k, v in floor.items() if kinds[k] == kind)
                cells = ", ".join(f"{k} {v:.2f}" for k, v in stages[kind].items())
                print(f"    {kind:<9} floor {f:5.2f} s | {cells}")
        print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
