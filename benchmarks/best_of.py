"""Identity cost of new eyes with one reference vs the best of several (RetouchOptions.best_of).

On every face that the eye-state classifier finds closed (the central face of each LFW photo of
the persons in --persons, default train/closed_eval_persons_lfw.txt, never trained on), with the
person's other photos as references, the pipeline runs as open-eyes does (self-check on) once
per --best-of value. For each result: the mean descriptor distance from the retouched face to
the central open-eyed face of each of the person's other photos, minus the same for the original
face (the identity change; > 0: the new eyes make the face look less like the person). Printed:
mean change per setting and the paired difference to --best-of 1 (95% t-interval), and the time
of the retouch per face.

    python benchmarks/best_of.py [--best-of 1 2 3] [--weights DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--best-of", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--persons", type=Path, default=ROOT / "train" / "closed_eval_persons_lfw.txt")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    args = ap.parse_args()
    os.environ.setdefault("EXGAN_CACHE_DIR", tempfile.mkdtemp(prefix="exgan-bestof-cache-"))

    from exgan_cli.stages import eye_state as eyes, faces as facelib
    from exgan_cli.errors import ExganError
    from exgan_cli.files.images import load_image
    from exgan_cli.evaluation.metrics import mean_ci
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates, open_cache
    from exgan_cli.model.weights import load_pretrained, resolve_default

    model = load_pretrained(args.weights or resolve_default(), device="cpu")
    settings = sorted(set(args.best_of))
    change: dict[int, list[float]] = {n: [] for n in settings}
    seconds: dict[int, list[float]] = {n: [] for n in settings}
    names = [n.strip() for n in args.persons.read_text().splitlines() if n.strip() and not n.startswith("#")]
    for person in names:
        photos = sorted((args.data / person).glob("*.jpg"))
        for photo in photos:
            image = load_image(photo)
            found = facelib.detect_faces(image.pixels)
            face = facelib.central_face(found, image.size)
            if face is None or not eyes.assess(image.pixels, face).closed:
                continue
            cands, _ = load_candidates([p for p in photos if p != photo], cache=open_cache("hog"))
            judges = []
            for path in sorted({c.path for c in cands}):
                mine = [c for c in cands if c.path == path]
                centre = facelib.central_face([c.face for c in mine], mine[0].photo.size)
                judges += [c.descriptor for c in mine if c.face is centre and not c.eye.closed]
            if not judges:
                continue

            def to_person(rgb: np.ndarray, f) -> float:
                d = facelib.face_descriptor(rgb, f)
                return float(np.mean([facelib.descriptor_distance(d, j) for j in judges]))

            before = to_person(image.pixels, face)
            row = {}
            for n in settings:
                t = time.perf_counter()
                try:
                    result = retouch(image.pixels, cands, model, RetouchOptions(face_index=found.index(face), best_of=n), faces=found)
                except ExganError:
                    break
                took = time.perf_counter() - t
                rep = result.faces[found.index(face)]
                if rep.status != "retouched":
                    break
                row[n] = (to_person(result.pixels, facelib.refit_face(result.pixels, face)) - before, took)
            if len(row) == len(settings):
                for n, (c, s) in row.items():
                    change[n].append(c)
                    seconds[n].append(s)
    base = settings[0]
    print(f"weights: {model.source}; {len(change[base])} retouched closed-eyed faces of {len(names)} persons\n")
    print(f"{'best of':>8} {'identity change (mean, 95% CI)':>34} {'paired vs best of ' + str(base):>34} {'retouch s/face':>15}")
    for n in settings:
        c = mean_ci(change[n])
        d = mean_ci([a - b for a, b in zip(change[n], change[base])])
        print(f"{n:>8} {c.mean:+.4f} [{c.low:+.4f}, {c.high:+.4f}]{'':>8} {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]{'':>8} "
              f"{statistics.median(seconds[n]):.3f}")


if __name__ == "__main__":
    main()
