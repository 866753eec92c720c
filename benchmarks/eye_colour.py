"""Eye colour at full resolution: is the person's own iris colour what open-eyes paints?

Every ordered pair (target, reference) of one person's high-resolution photos (the connected
"Yes" pairs of master.csv that contain --person; by default img1.jpg, a woman with light
green-grey eyes) goes through the open-eyes pipeline: apps.retouch.retouch with
RetouchOptions(faces="all") repaints the (open) eyes of the target's largest face with the
reference's, self-check off so that every pair keeps its reference. The real eyes are then the
truth. Printed per pair, with eye_colour.iris_colour read at the target's (or the reference's)
own landmarks at full resolution:

    result-truth  CIE76 distance of the result's iris colour to the truth's   (lower: better)
    result-ref    ... to the reference's                                       (lower: the exemplar carried)
    ref-truth     the reference's own irises against the truth's: the natural spread between
                  two photos of the same eyes
    a*, b*        iris colour relative to the skin (eye_colour.py): brown irises have a* and b*
                  well above grey-green ones

and the same for a second generator (--baseline, default the no-exemplar model) when given.
Also writes --grid (default docs/eye_colour_grid.jpg): per pair truth | the baseline's result (when
given) | the model's result | reference, a
band around both eyes at the target's full resolution (the reference's band scaled to the same
eye distance).

    python benchmarks/eye_colour.py [--weights DIR] [--baseline DIR|none] [--grid PATH] [--pairs a:b,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data" / "photos"
# the pairs issue #13 reported brown irises for (target:reference)
ISSUE_PAIRS = "img7.jpg:img6.jpg,img1.jpg:img7.jpg,img1.jpg:img11.jpg,img6.jpg:img2.jpg"


def eye_band(rgb: np.ndarray, landmarks: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Both eyes and brows: a box 2.4 inter-ocular distances wide, resized by ``scale``."""
    import cv2

    left, right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    iod = float(np.linalg.norm(right - left))
    cx, cy = (left + right) / 2
    x0, x1 = int(max(0, cx - 1.2 * iod)), int(min(rgb.shape[1], cx + 1.2 * iod))
    y0, y1 = int(max(0, cy - 0.55 * iod)), int(min(rgb.shape[0], cy + 0.45 * iod))
    band = rgb[y0:y1, x0:x1]
    if scale != 1.0:
        band = cv2.resize(band, (max(1, round(band.shape[1] * scale)), max(1, round(band.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return band


def iod(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0)))


def grid_image(rows: list[list[np.ndarray]], gap: int = 6) -> np.ndarray:
    """Rows of tiles side by side, each row as high as its tallest tile, on white."""
    lines = []
    width = max(sum(t.shape[1] for t in r) + gap * (len(r) - 1) for r in rows)
    for r in rows:
        h = max(t.shape[0] for t in r)
        line = np.full((h, width, 3), 255, np.uint8)
        x = 0
        for t in r:
            line[: t.shape[0], x : x + t.shape[1]] = t
            x += t.shape[1] + gap
        lines += [line, np.full((gap, width, 3), 255, np.uint8)]
    return np.vstack(lines[:-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DATA)
    ap.add_argument("--person", default="img1.jpg", help="a photo of the person (master.csv name)")
    ap.add_argument("--weights", default=str(ROOT / "weights" / "exgan-reference-128"))
    ap.add_argument("--baseline", default=str(ROOT / "weights" / "exgan-none-128"), help="a second model to compare, or 'none'")
    ap.add_argument("--pairs", default="all", help="target:reference pairs, or 'all' ordered pairs of the person's photos")
    ap.add_argument("--grid", type=Path, default=ROOT / "docs" / "eye_colour_grid.jpg")
    ap.add_argument("--grid-pairs", default=ISSUE_PAIRS, help="the pairs shown in the grid")
    ap.add_argument("--grid-width", type=int, default=360, help="each tile is scaled to this many px per 2.4 eye distances")
    ap.add_argument("--no-iris-colour", action="store_true",
                    help="without the iris colour match (BlendConfig.iris_colour): the generator's and the detail stage's colour alone")
    args = ap.parse_args()

    from sharpness import person_photos

    from exgan_cli.stages import faces as facelib
    from exgan_cli.stages.eye_colour import colour_distance, iris_colour
    from exgan_cli.files.images import load_image, save_image
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates
    from exgan_cli.stages.selfcheck import SelfCheckConfig
    from exgan_cli.model.weights import load_pretrained

    names = person_photos(args.photos / "master.csv", args.person)
    models = [("model", load_pretrained(args.weights))]
    if args.baseline.lower() != "none":
        models.append(("baseline", load_pretrained(args.baseline)))
    print(f"person of {args.person}: {', '.join(names)}")
    for label, m in models:
        print(f"{label}: {m.source} ({m.model_cfg.mode} mode)")

    photos, cands, largest = {}, {}, {}
    for n in names:
        img = load_image(args.photos / n).pixels
        found = facelib.detect_faces(img)
        if not found:
            print(f"  {n}: no face found, skipped")
            continue
        photos[n] = img
        largest[n] = max(range(len(found)), key=lambda i: facelib.face_width(found[i]))
        cs, _ = load_candidates([args.photos / n])
        cands[n] = [max(cs, key=lambda c: c.width)]  # the person: the largest face
    if args.pairs == "all":
        pairs = [(a, b) for a in photos for b in photos if a != b]
    else:
        pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    grid_pairs = [tuple(p.split(":")) for p in args.grid_pairs.split(",") if p]

    # self-check off and the pose limit lifted: every pair is repainted with its own reference
    from exgan_cli.options import BlendConfig

    options = RetouchOptions(faces="all", self_check=SelfCheckConfig(enabled=False), best_of=1, any_identity=True, force=True,
                             blend=BlendConfig(iris_colour=not args.no_iris_colour))
    head = f"{'target':<10} {'reference':<10} {'face px':>7}  {'truth a*/b*':>11}  {'ref a*/b*':>11}  {'ref-truth':>9}"
    for label, _ in models:
        head += f"  | {label}: {'a*/b*':>11} {'res-truth':>9} {'res-ref':>7}"
    print(head)
    table: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in models}
    natural: list[float] = []
    tiles: dict[tuple[str, str], list[np.ndarray]] = {}
    t0 = time.perf_counter()
    for a, b in pairs:
        img = photos[a]
        result_faces = facelib.detect_faces(img)
        face = result_faces[largest[a]]
        ref_face = cands[b][0].face
        truth_c = iris_colour(img, face.landmarks)
        ref_c = iris_colour(photos[b], ref_face.landmarks)
        if truth_c is None or ref_c is None:
            print(f"{a:<10} {b:<10} irises unreadable, skipped")
            continue
        nat = colour_distance(ref_c, truth_c)
        natural.append(nat)
        line = (f"{a:<10} {b:<10} {facelib.face_width(face):7.0f}  {truth_c.lab[1]:5.1f}/{truth_c.lab[2]:5.1f}  "
                f"{ref_c.lab[1]:5.1f}/{ref_c.lab[2]:5.1f}  {nat:9.1f}")
        row_tiles = None
        results = {}
        for label, model in models:
            opts = RetouchOptions(**{**options.__dict__, "face_index": largest[a]})
            res = retouch(img, cands[b], model, opts, faces=result_faces)
            out_c = iris_colour(res.pixels, face.landmarks) or truth_c.__class__(np.full(3, np.nan), 0)
            d_truth, d_ref = colour_distance(out_c, truth_c), colour_distance(out_c, ref_c)
            table[label].append((d_truth, d_ref))
            line += f"  | {label}: {out_c.lab[1]:5.1f}/{out_c.lab[2]:5.1f} {d_truth:9.1f} {d_ref:7.1f}"
            results[label] = res.pixels
        if (a, b) in grid_pairs:
            # truth | the baseline's result (when there is one) | the model's | the reference
            s = args.grid_width / (2.4 * iod(face.landmarks))
            row_tiles = [eye_band(img, face.landmarks, s)]
            row_tiles += [eye_band(results[label], face.landmarks, s) for label in ("baseline", "model") if label in results]
            row_tiles.append(eye_band(photos[b], ref_face.landmarks, args.grid_width / (2.4 * iod(ref_face.landmarks))))
        if row_tiles is not None:
            tiles[(a, b)] = row_tiles
        print(line, flush=True)
    print(f"{len(pairs)} pairs in {time.perf_counter() - t0:.0f} s")
    print(f"natural (reference vs truth): median {statistics.median(natural):.1f}")
    for label, vals in table.items():
        dt, dr = [v[0] for v in vals], [v[1] for v in vals]
        print(f"{label}: result-truth median {statistics.median(dt):.1f} (max {max(dt):.1f}), "
              f"result-reference median {statistics.median(dr):.1f}")
    if args.grid and tiles:
        rows = [tiles[p] for p in grid_pairs if p in tiles]
        save_image(grid_image(rows), args.grid, overwrite=True)
        cols = "truth | baseline | model | reference" if len(models) > 1 else "truth | result | reference"
        print(f"wrote {args.grid}: per row {cols} ({', '.join(f'{a} with {b}' for a, b in grid_pairs if (a, b) in tiles)})")


if __name__ == "__main__":
    main()
