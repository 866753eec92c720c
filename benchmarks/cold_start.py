"""What a user waits for: `exgan open-eyes` cold, in a fresh process, on a ~12 MP photo with a
~12 MP reference it has never seen (issue #16): img49 (12.6 MP) and img40 (14.1 MP).

Each run starts a new interpreter with an empty reference cache (EXGAN_CACHE_DIR in a fresh
temporary folder), so imports, model loading, detection on both photos, the reference's analysis,
in-painting, the self-check and the write are all paid, as on a user's first run. The face's eyes
are open in this photo, so `--faces all --force --any-identity` makes it retouch the one face with
this reference (another person: the bundled pair of ~12 MP photos is not one person), and
`--no-self-check` lets it write the result (the check would rightly refuse another person's eyes;
it costs ~0.15 s here).

The floor, measured in the same run: a fresh interpreter that imports torch, dlib and cv2, and has
Pillow decode and re-encode the photo and decode the reference. Printed: the medians of --repeat
runs of each, alternating, and their ratio. With --weights (repeatable), open-eyes runs once per
model in each round (the bundled default first), and each model's median is also given against
the default's, measured in the same run.

    python benchmarks/cold_start.py [--photo P] [--ref R] [--repeat N] [--weights weights/exgan-warp-128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "photos"

FLOOR = """
import sys
import torch, dlib, cv2
from PIL import Image
im = Image.open(sys.argv[1]); im.load()
im.save(sys.argv[3], format="JPEG", quality=95)
Image.open(sys.argv[2]).load()
"""


def timed(cmd: list[str], env: dict) -> tuple[float, int]:
    t = time.perf_counter()
    rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - t, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, default=DATA / "img49.jpg", help="~12 MP photo, one face")
    ap.add_argument("--ref", type=Path, default=DATA / "img40.jpg", help="a ~12 MP reference (14.1 MP; another person: see above)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--weights", action="append", default=[], help="also time open-eyes with this model (repeat)")
    args = ap.parse_args()
    exgan = [sys.executable, "-m", "exgan_cli"]
    command, floor = [], []
    others: dict[str, list[float]] = {w: [] for w in args.weights}
    with tempfile.TemporaryDirectory(prefix="exgan-cold-") as tmp:
        for k in range(args.repeat):
            env = {**os.environ, "EXGAN_CACHE_DIR": str(Path(tmp) / f"cache{k}")}
            t, _ = timed([sys.executable, "-c", FLOOR, str(args.photo), str(args.ref), str(Path(tmp) / "floor.jpg")], env)
            floor.append(t)
            t, rc = timed([*exgan, "open-eyes", str(args.photo), "--ref", str(args.ref), "-o", str(Path(tmp) / f"out{k}.jpg"),
                           "--faces", "all", "--force", "--any-identity", "--no-self-check", "--quiet"], env)
            if rc != 0:
                raise SystemExit(f"open-eyes exited {rc}")
            command.append(t)
            print(f"run {k + 1}: open-eyes {t:.2f} s (exit {rc}), floor {floor[-1]:.2f} s", flush=True)
            for w in args.weights:
                env = {**os.environ, "EXGAN_CACHE_DIR": str(Path(tmp) / f"cache{k}-{len(others[w])}-{Path(w).name}")}
                t, rc = timed([*exgan, "open-eyes", str(args.photo), "--ref", str(args.ref), "-o", str(Path(tmp) / f"out{k}w.jpg"),
                               "--weights", w, "--faces", "all", "--force", "--any-identity", "--no-self-check", "--quiet",
                               "--overwrite"], env)
                if rc != 0:
                    raise SystemExit(f"open-eyes --weights {w} exited {rc}")
                others[w].append(t)
                print(f"run {k + 1}: open-eyes --weights {w} {t:.2f} s", flush=True)
    c, f = statistics.median(command), statistics.median(floor)
    print(f"open-eyes cold: median {c:.2f} s; floor (fresh interpreter importing torch, dlib, cv2 + Pillow decode/encode "
          f"of the photo and decode of the reference): median {f:.2f} s; ratio {c / f:.2f}x (load average {os.getloadavg()[0]:.1f})")
    for w, times in others.items():
        m = statistics.median(times)
        print(f"open-eyes cold --weights {w}: median {m:.2f} s, {m / c:.2f}x the default's, {m / f:.2f}x the floor")


if __name__ == "__main__":
    main()
