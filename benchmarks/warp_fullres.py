"""The new eyes at the photo's own resolution, for several models on every same-person pair.

Every ordered pair (target, reference) of one person's high-resolution photos (the connected
"Yes" groups of ../shared/data/photos/master.csv: 9 persons, 76 ordered pairs) goes through the
open-eyes pipeline (apps.retouch.retouch, faces="all", self-check off, pose limit lifted), which
repaints the target's (open) eyes from the reference; the target's real eyes are the truth. Each
--weights model runs on the same pairs in the same run. Per pair and model:

    R          detail.sharpness_ratio of the result (Laplacian variance in the eye boxes over a
               skin ring); "in range" when inside the p5-p95 of real open eyes in the same
               face-width bin (measured here on every face of the photos that a person labelled
               open in train/eye_state_labels.json, group photos included); the summary also
               gives the share of the targets' own real eyes in that range (what a result exactly
               as sharp as the real eyes would score: it is out of range where they are, marked
               "!" after "R real") and how far R is off the target's own eyes (median factor)
    colour     eye_colour.iris_colour CIE76 distance of the result's irises to the truth's, and
               the natural figure: the reference's own irises against the truth's
    L1 eyes    mean |result - truth| (0..1) over the eye boxes grown by half their height, at
               full resolution: where the new eyes land and what they look like, against the
               real ones
    identity   faces.descriptor_distance of the result to the target's own face (the real eyes)
    mixed      a warp model's: of the photo pixels its field takes from the reference, the share
               blended half and half with G's (0.2 < weight < 0.8), where two irises or pupils
               that do not lie on each other show as a ghost (stages/warp.py's "mixed")

Printed: the per-pair table, the share of the targets' own real eyes in the R range, each
model's summary (share of R in range, median R and its median factor off the target's own eyes,
median colour against the natural median, median L1 eyes, median identity), and the paired
differences of each model against the first (L1 eyes, colour, identity, |log2 R / R real|: mean,
bootstrap 95% CI, wins). --grid writes a contact sheet of --grid-pairs:
per row the real eyes | each model's | the reference's, at the target's resolution.

    python benchmarks/warp_fullres.py --weights weights/exgan-reference-128 --weights weights/exgan-warp-128 \
        [--weights train/init/exgan-reference-128-v1] [--grid docs/warp_grid.jpg --grid-pairs a:b,...]

--wrong repaints every target a second time with a WRONG reference (another person's photo, the
persons taken in turn: wrong_reference): the exemplar gain at
full resolution, per model, is wrong minus right (L1 eyes, colour, identity; paired, bootstrap 95%
CI), for all pairs and separately for the light-eyed person (img1's photos: 56 of the 76 pairs)
and the others; issue #23's bar sets it on LFW at 128 px (`exgan evaluate`), where the references'
irises are a few JPEG pixels. Add weights/exgan-none-128 as the first --weights for the gain over
no exemplar the same way (the paired lines against the first model, split the same way); with
--plain-none it runs a second time without the iris colour match (label +plain), so that neither G
nor the irises' colour use the reference (the detail stage still takes the reference's texture: not
`evaluate`'s no-exemplar model, which sees no reference at all).

--without-fullres-warp adds each warp model a second time (label +128) with its field used only inside
G's 128 px output: that output is pasted with the detail stage like any other model's (BlendConfig.warp
off), so the two show what applying the field to the reference photo itself adds or costs.
--with-fullres-warp does the converse for a model whose config keeps the field at 128 px (warp_fullres
false, as weights/exgan-warp-128 ships): again with the field applied at full resolution (label +fullres).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data" / "photos"
BINS = (0, 150, 300, 600, 10_000)  # face width bins (px), as benchmarks/real_eyes.py


def person_groups(master: Path) -> list[list[str]]:
    """The persons of master.csv: connected components of its "Yes" pairs, each sorted by number."""
    from sharpness import person_photos

    names: set[str] = set()
    with open(master, newline="") as f:
        for row in csv.DictReader(f):
            if row["Decision"].strip().lower() == "yes":
                names |= {row["file_x"], row["file_y"]}
    groups, seen = [], set()
    for n in sorted(names, key=lambda n: (len(n), n)):
        if n not in seen:
            g = person_photos(master, n)
            seen |= set(g)
            groups.append(g)
    return groups


def eye_region(landmarks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask: the eye boxes (geometry.eye_boxes) grown by half their height."""
    from exgan_cli.stages.geometry import MaskConfig, boxes_to_mask, eye_boxes

    boxes = eye_boxes(landmarks, MaskConfig())
    g = 0.5 * float(np.mean([b[3] - b[1] for b in boxes]))
    grown = [(x0 - g, y0 - g, x1 + g, y1 + g) for x0, y0, x1, y1 in boxes]
    return boxes_to_mask(grown, shape[:2]) > 0.5


def paired(a: list[float], b: list[float], seed: int = 0) -> tuple[float, float, float, int, int]:
    """mean(b - a), its bootstrap 95% CI, in how many pairs b < a, and of how many (both finite)."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan"), float("nan"), float("nan"), 0, 0
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (4000, d.size))].mean(axis=1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), int((d < 0).sum()), int(d.size)


@contextlib.contextmanager
def taking_whole_eyes(on: bool):
    """While on, a warp model's blend weight is 1 in the holes and 0 outside (its displacement as
    it learned it): the experiment "a field that takes the whole eye", without training one."""
    import exgan_cli.apps.retouch as pipeline
    from exgan_cli.stages.generate import Generated

    original = pipeline.generate_crops
    if on:
        def whole(model, crops, masks, exemplars):
            gen = original(model, crops, masks, exemplars)
            return Generated(gen.raw, gen.flow, None if gen.weight is None else np.clip(np.asarray(masks, np.float32), 0, 1))
        pipeline.generate_crops = whole
    try:
        yield
    finally:
        pipeline.generate_crops = original


def real_open_faces(photos_dir: Path, labels: Path):
    """(photo pixels, face) of every face labelled "open" in the label file's "photos" (keys
    <file>#<i> with the face's box), matched to the face found there by the box's centre."""
    import json

    from exgan_cli.files.images import load_image
    from exgan_cli.stages import faces as facelib

    by_file: dict[str, list[list[int]]] = {}
    for key, v in json.loads(labels.read_text(encoding="utf-8")).get("photos", {}).items():
        if v["state"] == "open":
            by_file.setdefault(key.rsplit("#", 1)[0], []).append(v["box"])
    for name, boxes in sorted(by_file.items()):
        if not (photos_dir / name).is_file():
            continue
        img = load_image(photos_dir / name).pixels
        faces = facelib.detect_faces(img, detector="auto")
        for x0, y0, x1, y1 in boxes:
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            hit = [f for f in faces if f.box[0] <= cx < f.box[2] and f.box[1] <= cy < f.box[3]]
            if hit:
                yield img, hit[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DATA)
    ap.add_argument("--weights", action="append", default=[], help="a model folder (repeat; the first is the baseline)")
    ap.add_argument("--pairs", default="all", help="target:reference pairs, or 'all'")
    ap.add_argument("--take-whole", action="store_true",
                    help="also run each warp model with its blend weight set to 1 in the holes (label +whole)")
    ap.add_argument("--without-fullres-warp", action="store_true",
                    help="also run each warp model whose config applies its field at full resolution with it not applied: only its 128 px output "
                         "(which the field made) is pasted, with the detail stage, as for the other models (label +128)")
    ap.add_argument("--with-fullres-warp", action="store_true",
                    help="also run each warp model whose config keeps its field at 128 px (warp_fullres false) with the "
                         "field applied to the reference photo at full resolution (label +fullres)")
    ap.add_argument("--wrong", action="store_true", help="also repaint each target with another person's photo (the exemplar gain)")
    ap.add_argument("--plain-none", action="store_true",
                    help="also run each none-mode model without the iris colour match (label +plain): no exemplar in G or in the "
                         "irises' colour (the detail stage still takes the reference's texture)")
    ap.add_argument("--labels", type=Path, default=ROOT / "train" / "eye_state_labels.json",
                    help="eye states labelled by a person: the real open eyes' R ranges come from its photos' open faces")
    ap.add_argument("--grid", type=Path, default=None, help="write a contact sheet of --grid-pairs here")
    ap.add_argument("--grid-pairs", default="", help="pairs shown in the grid, target:reference,...")
    ap.add_argument("--grid-width", type=int, default=300, help="each tile: this many px per 2.4 eye distances")
    args = ap.parse_args()
    if not args.weights:
        args.weights = [str(ROOT / "weights" / "exgan-reference-128")]

    from eye_colour import eye_band, grid_image, iod

    from exgan_cli.apps.retouch import retouch
    from exgan_cli.files.images import load_image, save_image
    from exgan_cli.model.weights import load_pretrained
    from exgan_cli.options import BlendConfig, RetouchOptions
    from exgan_cli.stages import faces as facelib
    from exgan_cli.stages.detail import sharpness_ratio
    from exgan_cli.stages.eye_colour import colour_distance, iris_colour
    from exgan_cli.stages.references import load_candidates
    from exgan_cli.stages.selfcheck import SelfCheckConfig

    models = [(Path(w).name, load_pretrained(w)) for w in args.weights]
    if args.take_whole:  # each warp model again, its blend weight set to 1 in the holes (its displacement kept)
        models += [(f"{label}+whole", m) for label, m in models if m.model_cfg.warp]
    base = [(label, m) for label, m in models if "+" not in label and m.model_cfg.warp]  # the variants below: of these only
    if args.without_fullres_warp:  # a warp model whose config applies its field at full resolution, at 128 px only
        models += [(f"{label}+128", m) for label, m in base if m.model_cfg.warp_fullres]
    if args.plain_none:  # a model blind to the reference, and its irises left the colour it painted
        models += [(f"{label}+plain", m) for label, m in models if "+" not in label and m.model_cfg.mode == "none"]
    if args.with_fullres_warp:  # a model shipped with warp_fullres false, again with it true
        models += [(f"{label}+fullres", replace(m, model_cfg=replace(m.model_cfg, warp_fullres=True)))
                   for label, m in base if not m.model_cfg.warp_fullres]
    for label, m in models:
        print(f"{label}: {m.source} ({m.model_cfg.mode}{', warp' if m.model_cfg.warp else ''})")
    groups = person_groups(args.photos / "master.csv")
    photos, found, largest, cands = {}, {}, {}, {}
    for g in groups:
        for n in g:
            img = load_image(args.photos / n).pixels
            fs = facelib.detect_faces(img)
            if not fs:
                print(f"  {n}: no face found, skipped")
                continue
            photos[n], found[n] = img, fs
            largest[n] = max(range(len(fs)), key=lambda i: facelib.face_width(fs[i]))
            cs, _ = load_candidates([args.photos / n])
            cands[n] = [max(cs, key=lambda c: c.width)]
    if args.pairs == "all":
        pairs = [(a, b) for g in groups for a in g for b in g if a != b and a in photos and b in photos]
    else:
        pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    grid_pairs = [tuple(p.split(":")) for p in args.grid_pairs.split(",") if p]
    usable = [[n for n in g if n in photos] for g in groups]
    usable = [g for g in usable if g]
    group_of = {n: gi for gi, g in enumerate(usable) for n in g}

    def wrong_reference(b: str) -> str:
        """Another person's photo: the k-th reference of a person (k: its place among that person's
        photos) is replaced by a photo of the (k+1)-th person after it, so that one person's pairs
        meet several others (light- and dark-eyed), as in `exgan evaluate`'s next person."""
        g, k = group_of[b], usable[group_of[b]].index(b)
        other = usable[(g + 1 + k % (len(usable) - 1)) % len(usable)]
        return other[k % len(other)]

    light = set(usable[group_of["img1.jpg"]]) if "img1.jpg" in group_of else set()  # the light-eyed person
    if args.wrong and len(usable) < 2:
        raise SystemExit("--wrong needs photos of at least two persons")

    # the real eyes' R per face-width bin: every face of the photos that a person labelled open
    # (train/eye_state_labels.json, group photos included: the targets alone leave two bins with
    # two faces each, whose "p5-p95" is no range), else every target's own eyes
    real_r: dict[int, list[float]] = {}
    for img, f in real_open_faces(args.photos, args.labels) if args.labels.is_file() else \
            ((photos[n], found[n][largest[n]]) for n in photos):
        b = int(np.searchsorted(BINS, facelib.face_width(f), side="right") - 1)
        real_r.setdefault(b, []).append(sharpness_ratio(img, f.landmarks))
    for n in photos:  # a face-width bin the labels leave empty: the targets' own eyes there
        b = int(np.searchsorted(BINS, facelib.face_width(found[n][largest[n]]), side="right") - 1)
        if b not in real_r:
            real_r[b] = [sharpness_ratio(photos[m], found[m][largest[m]].landmarks) for m in photos
                         if int(np.searchsorted(BINS, facelib.face_width(found[m][largest[m]]), side="right") - 1) == b]
    ranges = {b: (float(np.percentile(v, 5)), float(np.percentile(v, 95))) for b, v in real_r.items()}
    for b, (lo, hi) in sorted(ranges.items()):
        print(f"real open eyes, faces {BINS[b]}-{BINS[b + 1]} px: R p5 {lo:.2f}, p95 {hi:.2f} ({len(real_r[b])} faces)")

    options = RetouchOptions(faces="all", self_check=SelfCheckConfig(enabled=False), best_of=1, any_identity=True, force=True,
                             blend=BlendConfig())
    rows: dict[str, dict[str, list[float]]] = {label: {"r_in": [], "colour": [], "l1": [], "id": [], "r": [], "r_off": [], "mixed": [],
                                                       "wrong_l1": [], "wrong_colour": [], "wrong_id": []} for label, _ in models}
    hers: list[bool] = []  # per pair: the target is the light-eyed person
    natural: list[float] = []
    truth_in: list[float] = []  # the target's own real eyes inside that range: what eyes as sharp as the real ones would score
    tiles: dict[tuple[str, str], list[np.ndarray]] = {}
    t0 = time.perf_counter()
    print(f"{'target':<10} {'reference':<10} {'face':>5} {'R real':>6} {'natural':>7}  "
          + "  ".join(f"| {label[:18]:<18} {'R':>5} {'col':>5} {'L1':>6} {'ID':>5}" for label, _ in models))
    for a, b in pairs:
        img, face = photos[a], found[a][largest[a]]
        width = facelib.face_width(face)
        bin_ = int(np.searchsorted(BINS, width, side="right") - 1)
        lo, hi = ranges[bin_]
        truth_c = iris_colour(img, face.landmarks)
        ref_c = iris_colour(photos[b], cands[b][0].face.landmarks)
        nat = colour_distance(ref_c, truth_c) if truth_c is not None and ref_c is not None else float("nan")
        natural.append(nat)
        region = eye_region(face.landmarks, img.shape)
        own = facelib.face_descriptor(img, face)
        r_real = sharpness_ratio(img, face.landmarks)
        truth_in.append(float(lo <= r_real <= hi))
        hers.append(a in light)
        line = f"{a:<10} {b:<10} {width:5.0f} {r_real:6.2f}{'' if lo <= r_real <= hi else '!'} {nat:7.1f}  "
        tile_row = [eye_band(img, face.landmarks, args.grid_width / (2.4 * iod(face.landmarks)))]
        for label, model in models:
            opts = RetouchOptions(**{**options.__dict__, "face_index": largest[a],
                                     "blend": BlendConfig(warp=not label.endswith("+128"), iris_colour=not label.endswith("+plain"))})
            with taking_whole_eyes(label.endswith("+whole")):
                res = retouch(img, cands[b], model, opts, faces=found[a])
            r = sharpness_ratio(res.pixels, face.landmarks)

            def scores(pixels: np.ndarray) -> tuple[float, float, float]:
                """colour to the truth, L1 eyes, identity to the target's own face"""
                out_c = iris_colour(pixels, face.landmarks)
                col = colour_distance(out_c, truth_c) if out_c is not None and truth_c is not None else float("nan")
                l1 = float(np.abs(pixels[region].astype(np.float32) - img[region].astype(np.float32)).mean() / 255.0)
                return col, l1, facelib.descriptor_distance(facelib.face_descriptor(pixels, face), own)

            col, l1, ident = scores(res.pixels)
            rec = rows[label]
            if args.wrong:
                with taking_whole_eyes(label.endswith("+whole")):
                    wrong = retouch(img, cands[wrong_reference(b)], model, opts, faces=found[a])
                for key, v in zip(("wrong_colour", "wrong_l1", "wrong_id"), scores(wrong.pixels)):
                    rec[key].append(v)
            rec["r"].append(r)
            rec["r_off"].append(abs(float(np.log2(r / r_real))) if r > 0 and r_real > 0 else float("nan"))
            rec["r_in"].append(float(lo <= r <= hi))
            rec["colour"].append(col)
            rec["l1"].append(l1)
            rec["id"].append(ident)
            sc = res.faces[largest[a]].self_check or {}
            if sc.get("kept") is not None and "warp" in sc["attempts"][sc["kept"]]:
                rec["mixed"].append(sc["attempts"][sc["kept"]]["warp"].get("mixed", 0.0))
            line += f"| {label[:18]:<18} {r:5.2f}{'' if lo <= r <= hi else '!'} {col:5.1f} {l1:6.4f} {ident:5.3f}  "
            if (a, b) in grid_pairs:
                tile_row.append(eye_band(res.pixels, face.landmarks, args.grid_width / (2.4 * iod(face.landmarks))))
        if (a, b) in grid_pairs:
            rf = cands[b][0].face
            tile_row.append(eye_band(photos[b], rf.landmarks, args.grid_width / (2.4 * iod(rf.landmarks))))
            tiles[(a, b)] = tile_row
        print(line, flush=True)
    print(f"{len(pairs)} pairs in {time.perf_counter() - t0:.0f} s")
    nat_med = float(np.nanmedian(natural))
    print(f"natural iris colour (reference vs truth): median {nat_med:.1f}")
    print(f"the targets' own real eyes: R in the real p5-p95 {100 * np.mean(truth_in):.0f}% ({int(sum(truth_in))} of {len(truth_in)})")
    for label, rec in rows.items():
        print(f"{label}: R in the real p5-p95 {100 * np.mean(rec['r_in']):.0f}% ({int(sum(rec['r_in']))} of {len(rec['r_in'])}), "
              f"R median {np.nanmedian(rec['r']):.2f}, off the target's own eyes by x{2 ** np.nanmedian(rec['r_off']):.2f} (median); colour to truth median {np.nanmedian(rec['colour']):.1f} "
              f"(natural {nat_med:.1f}); L1 eyes median {np.median(rec['l1']):.4f}; identity median {np.median(rec['id']):.3f}")
        if rec["mixed"]:  # a warp model: how much of what it took is a half-and-half mix (ghost risk)
            mixed = np.asarray(rec["mixed"])
            print(f"{label}: of the reference pixels taken, mixed half and half with G (0.2 < weight < 0.8): median "
                  f"{100 * np.median(mixed):.0f}%, over half on {int((mixed > 0.5).sum())} of {len(mixed)} faces")
    base_label = models[0][0]
    subsets = [("", np.ones(len(hers), bool))]
    if any(hers) and not all(hers):
        subsets += [(", light-eyed person", np.array(hers)), (", the others", ~np.array(hers))]
    # the first model, and with --plain-none also the plain no-exemplar run, against every other
    plains = [label for label in rows if label.endswith("+plain")]
    for baseline in [base_label] + plains:
        for label, rec in rows.items():
            if label in (base_label, baseline) or (baseline in plains and label in plains):
                continue
            for key, name in (("l1", "L1 eyes"), ("colour", "colour"), ("id", "identity"), ("r_off", "|log2 R/R real|")):
                for tag, keep in subsets[: 1 if key in ("id", "r_off") else None]:
                    m, lo_, hi_, wins, n = paired(np.asarray(rows[baseline][key])[keep], np.asarray(rec[key])[keep])
                    print(f"{label} - {baseline}, {name}{tag}: {m:+.4f} [{lo_:+.4f}, {hi_:+.4f}], lower in {wins} of {n}")
    if args.wrong:  # the exemplar gain: wrong reference minus right one (> 0: the right reference helps)
        for label, rec in rows.items():
            for key, name in (("l1", "L1 eyes"), ("colour", "colour"), ("id", "identity")):
                for tag, keep in subsets:
                    m, lo_, hi_, wins, n = paired(np.asarray(rec[key])[keep], np.asarray(rec[f"wrong_{key}"])[keep])
                    print(f"{label}: exemplar gain (wrong - right reference), {name}{tag}: {m:+.4f} [{lo_:+.4f}, {hi_:+.4f}], "
                          f"the right one worse in {wins} of {n}")
    if args.grid and tiles:
        save_image(grid_image([tiles[p] for p in grid_pairs if p in tiles]), args.grid, overwrite=True)
        print(f"wrote {args.grid}: per row real | {' | '.join(label for label, _ in models)} | reference")


if __name__ == "__main__":
    main()
