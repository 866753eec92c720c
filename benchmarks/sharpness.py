"""Sharpness of retouched eyes: plain upscaled paste vs full-resolution detail (exgan_cli.stages.detail).

R = variance of the Laplacian of luminance inside the eye boxes / the same on a ring of skin
around them (detail.sharpness_ratio). Real open eyes in sharp photos: ~1.4 to 10, median ~3; a
blurry paste: below 1.

Every photo of one person in the shared photo set (the connected "Yes" pairs of master.csv
that contain --person) is a target when its face is at least --min-face px wide, and every
other photo of that person is its reference, so each target is retouched once per reference:
apps.retouch.retouch(..., RetouchOptions(faces="all")) repaints the (open) eyes, once with
BlendConfig(detail=False) and once with detail on. Printed per target and overall: R of the
real eyes, of the plain paste and of the new method; the identity distance of the result to
the reference (faces.descriptor_distance, as the pipeline reports it) for both; and the
time the detail adds to the paste stage per face (median of 5 runs of that stage, each way).
The pipeline's self-check is off, so both runs keep the same reference.

Also printed: the reference the pipeline itself would choose for each target among the other
photos (reference_choice.choose_reference with the target's face width, as apps.retouch.retouch calls it)
and its figures, next to the choice of the older absolute-size scoring (no target width).

The generator: --weights when given, else the bundled weights/exgan-reference-128 (a trained
model), else a randomly initialised Generator saved with weights.save_pretrained in a temporary
folder (said in the output). A random model paints smooth mush; that still tests the sharpness
path, since what is blurry in a plain paste is the upsampling, not the model. With --oracle
the same pairs also run with an "oracle generator" that returns the target's own aligned crop:
what a perfect 128 px generator would paint, so "plain" there is the best a 128 px paste can
be.

With --also DIR (a second model, e.g. the warp model beside the bundled one) the grid's rows are
real eyes | --weights | --also | the reference's own eye (both models with detail), and the
summary adds the second model's R.

    python benchmarks/sharpness.py [--weights DIR] [--also DIR] [--oracle] [--no-synthesis] [--grid docs/detail_grid.jpg]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "photos"
REAL_RANGE = (1.4, 10.0)  # 10th percentile .. top of real open eyes (issue #8)


def person_photos(master: Path, person: str) -> list[str]:
    """The photos connected to ``person`` by "Yes" pairs in master.csv, sorted by number."""
    links: dict[str, set[str]] = {}
    with open(master, newline="") as f:
        for row in csv.DictReader(f):
            if row["Decision"].strip().lower() == "yes":
                a, b = row["file_x"], row["file_y"]
                links.setdefault(a, set()).add(b)
                links.setdefault(b, set()).add(a)
    seen, todo = {person}, [person]
    while todo:
        for n in links.get(todo.pop(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return sorted(seen, key=lambda n: (len(n), n))


def load_model(weights_arg: str | None, tmp: Path):
    """(model, description): --weights, bundled, or a random Generator saved to ``tmp``."""
    from exgan_cli.model import weights
    from exgan_cli.stages.geometry import AlignConfig, MaskConfig

    if weights_arg:
        return weights.load_pretrained(weights_arg), f"weights {weights_arg} (trained)"
    bundled = weights.bundled_weights_dir() / weights.DEFAULT_MODEL
    if (bundled / weights.CONFIG_FILE).is_file() and (bundled / weights.MODEL_FILE).is_file():
        return weights.load_pretrained(bundled), f"bundled weights {bundled} (trained)"
    import torch

    from exgan_cli.model import Generator, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig()
    folder = weights.save_pretrained(
        tmp / "random-model", Generator(cfg), None, cfg, AlignConfig(resolution=cfg.resolution), MaskConfig(),
        weights.model_card(cfg, "# random\n\nRandomly initialised, for benchmarks."), {"steps": 0},
    )
    return weights.load_pretrained(folder), (
        f"NO TRAINED WEIGHTS (no {bundled}, no --weights): a RANDOMLY INITIALISED Generator "
        f"(default ModelConfig, seed 0) saved with save_pretrained in a temporary folder; its eyes are smooth mush"
    )


TIMING_RUNS = 5


def paste_ms(img: np.ndarray, face, cand, model, detail: bool, detail_cfg=None) -> float:
    """Median milliseconds of the paste stage for one face (colour match, alpha, paste_back),
    the way apps.retouch.retouch runs it, with or without the detail."""
    from exgan_cli.apps import retouch as pipeline
    from exgan_cli.stages.generate import align_for_model, exemplar_batch
    from exgan_cli.stages.blend import BlendConfig, feather_alpha, match_colour, paste_back
    from exgan_cli.stages.detail import DetailSource, Exemplar

    prep = align_for_model(img, face.landmarks, model)
    ref = align_for_model(cand.pixels, cand.face.landmarks, model)
    gen = pipeline.generate_crops(model, prep.crop[None], prep.mask[None], exemplar_batch(model, [prep], [ref])).raw[0]
    cfg = BlendConfig(detail=detail) if detail_cfg is None else BlendConfig(detail=detail, detail_cfg=detail_cfg)
    times = []
    for _ in range(TIMING_RUNS):
        t = time.perf_counter()
        colour = match_colour(gen, prep.crop, prep.boxes, cfg)
        alpha = feather_alpha(prep.boxes, model.align_cfg.resolution, cfg)
        source = DetailSource(face.landmarks, Exemplar(cand.pixels, cand.face.landmarks, ref.matrix), cfg.detail_cfg) if detail else None
        paste_back(img, colour, alpha, prep.matrix, source)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


@contextmanager
def oracle_generator():
    """Make pipeline.generate_crops return the target's own aligned crops (a perfect 128 px G)."""
    from exgan_cli.apps import retouch as pipeline
    from exgan_cli.stages.generate import Generated

    real = pipeline.generate_crops
    pipeline.generate_crops = lambda model, crops, masks, exemplars: Generated(crops.astype(np.float32))
    try:
        yield
    finally:
        pipeline.generate_crops = real


def eye_window(rgb: np.ndarray, landmarks: np.ndarray, eye: int = 0, pad: float = 0.45) -> np.ndarray:
    """Full-resolution crop around one eye box (0: the image's left eye), ``pad`` box heights wider."""
    from exgan_cli.stages.geometry import eye_boxes

    x0, y0, x1, y1 = eye_boxes(landmarks)[eye]
    h = y1 - y0
    x0, y0 = int(max(0, x0 - pad * h)), int(max(0, y0 - pad * h))
    x1, y1 = int(min(rgb.shape[1], x1 + pad * h)), int(min(rgb.shape[0], y1 + pad * h))
    return rgb[y0:y1, x0:x1]


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(name: str, values: list[float]) -> str:
    v = [x for x in values if np.isfinite(x)]
    return f"{name:<16} median {statistics.median(v):5.2f}  p10 {pct(v, 10):5.2f}  min {min(v):5.2f}  max {max(v):5.2f}  (n={len(v)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DATA, help="folder with master.csv and the photos")
    ap.add_argument("--person", default="img1.jpg", help="a photo of the person (master.csv name)")
    ap.add_argument("--min-face", type=float, default=200.0, help="smallest target face width (px)")
    ap.add_argument("--weights", default=None, help="model folder (default: the bundled weights/exgan-reference-128)")
    ap.add_argument("--also", default=None, help="a second model: the grid shows real | --weights | --also | reference")
    ap.add_argument("--oracle", action="store_true", help="also run with the oracle generator (target's own crop)")
    ap.add_argument("--grid", type=Path, default=None, help="write a before | plain | new grid (JPEG) here")
    ap.add_argument("--only-grid", action="store_true", help="run only the --grid-pairs (quick: just the picture)")
    ap.add_argument("--no-synthesis", action="store_true", help="detail without the synthesised finest band (DetailConfig.synthesize=False)")
    ap.add_argument("--grid-pairs", default="img4.jpg:img10.jpg,img1.jpg:img11.jpg,img7.jpg:img6.jpg,img1.jpg:img7.jpg",
                    help="target:reference pairs shown in the grid, one eye each (oracle rows too with --oracle)")
    args = ap.parse_args()

    import torch

    from exgan_cli.stages import faces as facelib
    from exgan_cli.stages.blend import BlendConfig
    from exgan_cli.stages.detail import DetailConfig, sharpness_ratio
    from exgan_cli.files.images import load_image
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.reference_choice import choose_reference
    from exgan_cli.stages.references import load_candidates
    from exgan_cli.stages.selfcheck import SelfCheckConfig

    names = person_photos(args.photos / "master.csv", args.person)
    print(f"person of {args.person}: {', '.join(names)}")
    tmp = Path(tempfile.mkdtemp(prefix="exgan-sharpness-"))
    model, described = load_model(args.weights, tmp)
    shutil.rmtree(tmp, ignore_errors=True)  # the model is in memory now
    print(f"generator: {described}")
    also = None
    if args.also:
        from exgan_cli.model.weights import load_pretrained

        also = load_pretrained(args.also)
        print(f"second model: {args.also}")
    print(f"torch threads: {torch.get_num_threads()}, CPU cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")

    photos, cands = {}, {}
    for n in names:
        img = load_image(args.photos / n).pixels
        found = facelib.detect_faces(img)
        if not found:
            print(f"  {n}: no face found, skipped")
            continue
        face = facelib.largest_face(found)
        photos[n] = (img, found, face)
        c, _ = load_candidates([args.photos / n])
        # The reference loader detects without the small-face pass (references.reference_min_face),
        # so its box can differ slightly from the target's detection: match by overlap.
        cands[n] = [x for x in c if box_iou(x.face.box, face.box) > 0.5][:1]
    for n, (img, found, face) in photos.items():
        print(f"  {n}: {img.shape[1]}x{img.shape[0]}, face {facelib.face_width(face):.0f} px, R real {sharpness_ratio(img, face.landmarks):.2f}")

    detail_cfg = DetailConfig(synthesize=not args.no_synthesis)
    print(f"detail: {'WITHOUT' if args.no_synthesis else 'with'} the synthesised finest band")
    # The reference the pipeline would choose for each target among the other photos: with the
    # target's face width (apps.retouch.retouch) and, for comparison, with the absolute size term only.
    picks: dict[str, dict[str, str]] = {}
    for t, (img, found, face) in photos.items():
        if not cands.get(t):
            continue
        others = [x for n, found_here in cands.items() if n != t for x in found_here]
        me = cands[t][0]
        by = {c.path.name: c for c in others}
        picks[t] = {
            "relative": choose_reference(me.descriptor, me.pose, others, target_width=facelib.face_width(face)).candidate.path.name,
            "absolute": choose_reference(me.descriptor, me.pose, others).candidate.path.name,
        }
        if facelib.face_width(face) >= args.min_face:
            w = facelib.face_width(face)
            print(f"  {t}: the pipeline picks {picks[t]['relative']} ({by[picks[t]['relative']].width / w:.2f} of the width);"
                  f" absolute size only: {picks[t]['absolute']} ({by[picks[t]['absolute']].width / w:.2f})")

    modes = [("random G" if "RANDOM" in described else "model (trained)", None)]
    if args.oracle:
        modes.append(("oracle G (target's own 128 px crop)", oracle_generator))
    grid_pairs = [tuple(p.split(":")) for p in args.grid_pairs.split(",") if p]
    grid_rows: list[tuple[str, np.ndarray]] = []
    for mode, ctx in modes:
        rows = []
        print(f"\n== generator: {mode} ==")
        print(f"{'target':<10}{'face':>6}{'R real':>8}{'reference':>12}{'ref face':>9}{'R plain':>9}{'R new':>8}{'id plain':>10}{'id new':>8}{'+ms':>7}")
        for t, (img, found, face) in photos.items():
            width = facelib.face_width(face)
            if width < args.min_face:
                continue
            r_real = sharpness_ratio(img, face.landmarks)
            idx = found.index(face)
            for r in photos:
                if r == t or not cands.get(r) or (args.only_grid and (t, r) not in grid_pairs):
                    continue
                res = {}
                for detail in (False, True):
                    # The self-check is off: both runs keep this reference, whatever the result.
                    opts = RetouchOptions(
                        faces="all", face_index=idx, blend=BlendConfig(detail=detail, detail_cfg=detail_cfg),
                        self_check=SelfCheckConfig(enabled=False),
                    )
                    if ctx is None:
                        res[detail] = retouch(img, cands[r], model, opts, faces=found)
                    else:
                        with ctx():
                            res[detail] = retouch(img, cands[r], model, opts, faces=found)
                added = float("nan")
                if ctx is None:  # the time does not depend on what the generator painted
                    added = paste_ms(img, face, cands[r][0], model, True, detail_cfg) - paste_ms(img, face, cands[r][0], model, False, detail_cfg)
                rp = sharpness_ratio(res[False].pixels, face.landmarks)
                rn = sharpness_ratio(res[True].pixels, face.landmarks)
                second = None
                if also is not None and ctx is None:
                    opts = RetouchOptions(faces="all", face_index=idx, blend=BlendConfig(detail=True, detail_cfg=detail_cfg),
                                          self_check=SelfCheckConfig(enabled=False))
                    second = retouch(img, cands[r], also, opts, faces=found)
                ip = res[False].faces[idx].identity_after
                inew = res[True].faces[idx].identity_after
                ref_w = facelib.face_width(cands[r][0].face)
                r_also = sharpness_ratio(second.pixels, face.landmarks) if second is not None else float("nan")
                rows.append({"target": t, "ref": r, "width": width, "ref_width": ref_w, "real": r_real, "plain": rp, "new": rn,
                             "also": r_also, "id_plain": ip, "id_new": inew, "ms": added})
                print(f"{t:<10}{width:6.0f}{r_real:8.2f}{r:>12}{ref_w:9.0f}{rp:9.2f}{rn:8.2f}{ip if ip is not None else float('nan'):10.3f}{inew if inew is not None else float('nan'):8.3f}{added:7.0f}"
                      + (f"  R second {r_also:.2f}" if second is not None else ""))
                if (t, r) in grid_pairs and second is not None:
                    ref_img = photos[r][0]
                    panels = [eye_window(img, face.landmarks), eye_window(res[True].pixels, face.landmarks),
                              eye_window(second.pixels, face.landmarks), eye_window(ref_img, cands[r][0].face.landmarks)]
                    label = f"{t} ({width:.0f} px face) <- reference {r} ({ref_w:.0f} px, {ref_w / width:.2f} of the width)"
                    grid_rows.append((grid_pairs.index((t, r)), len(grid_rows), label, panels))
                elif (t, r) in grid_pairs:
                    panels = [eye_window(x, face.landmarks) for x in (img, res[False].pixels, res[True].pixels)]
                    label = f"{t} ({width:.0f} px face) <- reference {r} ({ref_w:.0f} px, {ref_w / width:.2f} of the width), {mode}"
                    grid_rows.append((grid_pairs.index((t, r)), len(grid_rows), label, panels))
        # Per target, the real R once; per pair, the results.
        reals = {row["target"]: row["real"] for row in rows}
        print(f"\nsummary ({mode}, {len(rows)} target/reference pairs, {len(reals)} targets):")
        print("  " + summary("R real eyes", list(reals.values())))
        print("  " + summary("R plain paste", [x["plain"] for x in rows]))
        print("  " + summary("R new (detail)", [x["new"] for x in rows]))
        if also is not None and ctx is None:
            print("  " + summary("R second model", [x["also"] for x in rows]))
            print(f"  R second model within the real range {REAL_RANGE}: "
                  f"{sum(REAL_RANGE[0] <= x['also'] <= REAL_RANGE[1] for x in rows)}/{len(rows)}")
        inside = sum(REAL_RANGE[0] <= x["new"] <= REAL_RANGE[1] for x in rows)
        print(f"  R new within the real range {REAL_RANGE}: {inside}/{len(rows)}")
        half = [x for x in rows if x["ref_width"] >= 0.5 * x["width"]]
        if half:
            inside = sum(REAL_RANGE[0] <= x["new"] <= REAL_RANGE[1] for x in half)
            print(f"    with a reference face at least half the target's width: {inside}/{len(half)}"
                  f" (min R {min(x['new'] for x in half):.2f}); smaller references:"
                  f" {sum(REAL_RANGE[0] <= x['new'] <= REAL_RANGE[1] for x in rows if x not in half)}/{len(rows) - len(half)}")
        for kind, name in (("relative", "the pipeline's own choice"), ("absolute", "choice by absolute size (before)")):
            chosen = [x for x in rows if picks.get(x["target"], {}).get(kind) == x["ref"]]
            if chosen:
                print(f"  {name}: " + ", ".join(f"{x['target']}<-{x['ref']} R {x['new']:.2f}" for x in chosen)
                      + f"; in range {sum(REAL_RANGE[0] <= x['new'] <= REAL_RANGE[1] for x in chosen)}/{len(chosen)}")
        ids = [(x["id_plain"], x["id_new"]) for x in rows if x["id_plain"] is not None and x["id_new"] is not None]
        if ids:
            p, n = np.array(ids).T
            print(f"  identity distance to the reference: plain mean {p.mean():.3f} median {np.median(p):.3f} | new mean {n.mean():.3f} median {np.median(n):.3f} | new <= plain in {int((n <= p).sum())}/{len(ids)}")
        if ctx is None:
            ms = [x["ms"] for x in rows]
            big = [x["ms"] for x in rows if x["width"] >= 500]
            print(f"  time added per face (paste stage, median of {TIMING_RUNS} runs each): median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms"
                  + (f"; faces >= 500 px: median {statistics.median(big):.0f} ms" if big else "")
                  + f" (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    if args.grid and grid_rows:
        # pair by pair, the oracle row (what a good generator gets) first
        grid_rows.sort(key=lambda g: (g[0], -g[1]))
        names = (("real eyes", Path(args.weights or "bundled").name, Path(args.also).name, "the reference's eye") if also is not None
                 else ("before (real eyes)", "plain paste", "new (detail)"))
        write_grid(args.grid, [(label, panels) for _, _, label, panels in grid_rows], names=names)
        print(f"\ngrid: {args.grid} ({args.grid.stat().st_size / 1024:.0f} KB)")


def write_grid(path: Path, rows: list[tuple[str, list[np.ndarray]]], width: int = 1500,
               names: tuple[str, ...] = ("before (real eyes)", "plain paste", "new (detail)")) -> None:
    """Rows of panels (before | plain | new, or ``names``) at full resolution (each row at most ``width`` px wide).

    A panel wider than a third of ``width`` shows its centre (the eye): pixels are never
    scaled, the point is the full-resolution detail.
    """
    import cv2
    from PIL import Image

    gap = 6
    lines = []
    n = len(names)
    each = min((width - (n - 1) * gap) // n, max(p.shape[1] for _, panels in rows for p in panels))
    for label, panels in rows:
        cut = []
        for p in panels:
            if p.shape[1] > each:
                x = (p.shape[1] - each) // 2
                p = p[:, x: x + each]
            cut.append(np.pad(p, ((0, 0), (0, each - p.shape[1]), (0, 0)), constant_values=255))
        h = max(c.shape[0] for c in cut)
        cut = [np.pad(c, ((0, h - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cut]
        bar = np.full((h, gap, 3), 255, np.uint8)
        row = np.hstack([x for c in cut for x in (c, bar)][:-1])
        head = np.full((44, row.shape[1], 3), 255, np.uint8)
        cv2.putText(head, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (70, 70, 70), 1, cv2.LINE_AA)
        for i, name in enumerate(names):
            cv2.putText(head, name, (i * (each + gap) + 4, 37), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        lines += [head, row, np.full((gap, row.shape[1], 3), 255, np.uint8)]
    full = np.vstack(lines)
    quality = 90
    while True:
        Image.fromarray(full).save(path, quality=quality, subsampling=0, optimize=True)
        if path.stat().st_size < 950_000 or quality <= 60:
            break
        quality -= 5


if __name__ == "__main__":
    main()
