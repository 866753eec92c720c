"""Throughput of `exgan batch` on an album of 100 real photos, against a floor.

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
    args = ap.parse_args()

    from exgan_cli.apps.batch import BatchOptions, default_workers, run_batch
    from exgan_cli.errors import WeightsError
    from exgan_cli.options import RetouchOptions
    from exgan_cli.model.weights import resolve_default

    with tempfile.TemporaryDirectory() as tmpname:
        tmp = args.keep or Path(tmpname)
        album, person = build(tmp)
        # A private reference-analysis cache: the first run measures the person's photos, later
        # runs find them there (as a user's second batch over the same person-dir would).
        os.environ["EXGAN_CACHE_DIR"] = str(tmp / "cache")
        photos = sorted(p for p in album.rglob("*.jpg"))
        weights = args.weights
        if weights is None:
            try:
                weights = str(resolve_default())
            except WeightsError:
                weights = str(random_weights(tmp / "random-weights"))
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
