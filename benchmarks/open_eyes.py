"""Per-stage times of open-eyes on a ~12 MP photo and a 250 px photo, against a floor.

The floor is what any photo tool pays: decoding the same file with Pillow and encoding the
result as JPEG (quality 95), measured in the same run. Figures are medians over --repeat
runs with the model already loaded and the reference's analysis in the cache (a reference folder
used before: exgan_cli/stages/reference_cache.py); the references stage measured on a first sight of
the reference (empty cache) is printed too. Also times `exgan --help` in a fresh process.

    python benchmarks/open_eyes.py [--weights DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def floor_seconds(path: Path) -> float:
    from PIL import Image

    t = time.perf_counter()
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=95, subsampling=0)
    return time.perf_counter() - t


def one_run(photo: Path, refs: list[Path], model, out_dir: Path, min_face: float | None = None, cache_dir: Path | None = None) -> dict[str, float]:
    from exgan_cli.stages import faces
    from exgan_cli.files.images import load_image, save_image
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates, open_cache

    times: dict[str, float] = {}
    t = time.perf_counter()
    image = load_image(photo)
    times["load"] = time.perf_counter() - t
    # detect_faces = boxes (on a bounded copy) + landmarks (full resolution): timed apart.
    t = time.perf_counter()
    mf = faces.MIN_FACE if min_face is None else min_face
    faces._detect_boxes(image.pixels, "hog", 1600, mf)
    times["detect"] = time.perf_counter() - t
    t = time.perf_counter()
    found = faces.detect_faces(image.pixels, min_face=mf)
    times["landmarks"] = max(0.0, time.perf_counter() - t - times["detect"])
    t = time.perf_counter()
    candidates, _ = load_candidates(refs, cache=open_cache("hog", cache_dir) if cache_dir else None)
    times["references"] = time.perf_counter() - t
    result = retouch(image.pixels, candidates, model, RetouchOptions(faces="all", any_identity=True), faces=found[:1])
    times["references"] += result.timings.get("references", 0.0)
    times["generate"] = result.timings["generate"]
    times["blend"] = result.timings["blend"]
    times["self-check"] = result.timings.get("check", 0.0)
    t = time.perf_counter()
    save_image(result.pixels, out_dir / f"out{photo.suffix}", like=image, overwrite=True)
    times["write"] = time.perf_counter() - t
    times["total"] = sum(v for k, v in times.items() if k != "total")
    return times


def help_seconds() -> tuple[float, bool]:
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "exgan_cli", "--help"], check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys; import exgan_cli.cli; print(any(m in sys.modules for m in ('torch', 'dlib', 'cv2')))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip() == "True"
    return statistics.median(runs), heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", type=Path, default=DATA / "photos" / "img49.jpg", help="~12 MP photo, one face")
    ap.add_argument("--large-ref", type=Path, default=DATA / "photos" / "img31.jpg")
    ap.add_argument("--small", type=Path, default=ROOT / "examples" / "hugo_chavez_closed.jpg", help="250 px photo")
    ap.add_argument("--small-ref", type=Path, default=ROOT / "examples" / "refs" / "hugo_chavez_2.jpg")
    ap.add_argument("--weights", default=None, help="model folder [default: bundled]")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from exgan_cli.model.weights import load_pretrained, resolve_default

    model = load_pretrained(args.weights or resolve_default(), device=args.device)
    print(f"weights: {model.source}  device: {args.device}  torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        cases = (
            ("12MP", args.large, args.large_ref, None),
            ("12MP --min-face 250", args.large, args.large_ref, 250.0),
            ("250px", args.small, args.small_ref, None),
        )
        for label, photo, ref, min_face in cases:
            cache = Path(tmp) / f"cache-{label}"
            one_run(photo, [ref], model, Path(tmp), min_face, cache)  # warm-up: model files, allocator; fills the cache
            runs = [one_run(photo, [ref], model, Path(tmp), min_face, cache) for _ in range(args.repeat)]
            cold = [one_run(photo, [ref], model, Path(tmp), min_face, Path(tmp) / f"cold-{label}-{i}")["references"] for i in range(args.repeat)]
            floors = [floor_seconds(photo) for _ in range(args.repeat)]
            from PIL import Image

            with Image.open(photo) as im:
                size = im.size
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            floor = statistics.median(floors)
            print(f"\n{label}: {photo.name} {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP), median of {args.repeat}")
            for k, v in med.items():
                print(f"  {k:<11} {v * 1000:8.1f} ms")
            cold_refs = statistics.median(cold)
            print(f"  (references seen for the first time: {cold_refs * 1000:.1f} ms, total {(med['total'] - med['references'] + cold_refs) * 1000:.1f} ms"
                  f" = {(med['total'] - med['references'] + cold_refs) / statistics.median(floors):.2f}x the floor)")
            print(f"  floor (Pillow decode + JPEG encode) {floor * 1000:.1f} ms")
            print(f"  total / floor = {med['total'] / floor:.2f}x")
    h, heavy = help_seconds()
    print(f"\nexgan --help: {h * 1000:.0f} ms (median of 5, fresh process); imports torch/dlib/cv2: {heavy}")


if __name__ == "__main__":
    main()
