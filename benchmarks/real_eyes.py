"""What real open eyes measure, by face size: the ranges the self-check (selfcheck.py) accepts.

For open-eyed faces (the eye-state classifier says open, both EARs >= 0.2) in ../shared/data
(a seeded sample of LFW photos, whose faces are ~110 px wide, and every high-resolution photo),
prints per face-width bin the percentiles of

    R         detail.sharpness_ratio: Laplacian variance in the eye boxes over a skin ring
    contrast  selfcheck.eye_contrast: luminance spread inside the eye contours over the cheeks'
    P(closed) the eye-state classifier's, on faces it calls open (how sure it is of real open eyes)

The self-check's lower bound on R (selfcheck.SHARPNESS_FLOOR) is the 1st percentile under 150 px
and, from 150 px, the 5th percentile of those faces pooled (the last line printed); its contrast
bound is relative to the reference's eyes.

--pairs: how far real eyes of one person move in colour between two photos (the same-person
pairs of photos/master.csv, largest face each, both orders): the iris colour relative to the
skin (eye_colour.iris_colour) of photo A against B's, in a* (both eyes) and in b* (the bluer eye,
selfcheck.eye_colours), and how many pairs the self-check's colour tolerances would refuse if A's
real eyes were a result painted from B.

    python benchmarks/real_eyes.py [--lfw N] [--seed S]
    python benchmarks/real_eyes.py --pairs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
BINS = (0, 150, 300, 600, 10_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=int, default=600, help="LFW photos sampled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", action="store_true", help="colour between two real photos of one person")
    args = ap.parse_args()
    if args.pairs:
        pairs()
        return

    from exgan_cli.stages import eye_state as eyes, faces as facelib
    from exgan_cli.stages.detail import sharpness_ratio
    from exgan_cli.files.images import load_image
    from exgan_cli.stages.selfcheck import eye_contrast, sharpness_floor

    lfw = sorted((DATA / "lfw").glob("*/*.jpg"))
    rng = np.random.default_rng(args.seed)
    photos = [lfw[i] for i in rng.choice(len(lfw), size=min(args.lfw, len(lfw)), replace=False)]
    photos += sorted((DATA / "photos").glob("*.jpg"))
    rows = []
    for p in photos:
        try:
            rgb = load_image(p).pixels
        except Exception:
            continue
        for f in facelib.detect_faces(rgb):
            st = eyes.assess(rgb, f)
            if st.closed or min(st.left, st.right) < 0.2:
                continue
            c = eye_contrast(rgb, f.landmarks)
            pc = st.p_closed if st.p_closed is not None else np.nan
            rows.append((facelib.face_width(f), sharpness_ratio(rgb, f.landmarks), c if c is not None else np.nan, pc))
    a = np.array(rows)
    print(f"{len(a)} open-eyed faces")
    print(f"{'face px':>12} {'n':>5}  {'R p1':>6} {'R p5':>6} {'R p50':>6} {'R p99':>6}  {'contrast p1':>11} {'p5':>6} {'p50':>6}  {'P(closed) p95':>13} {'p99':>6} {'max':>6}")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        b = a[(a[:, 0] >= lo) & (a[:, 0] < hi)]
        if len(b) == 0:
            continue
        r, c, pc = b[:, 1], b[:, 2][np.isfinite(b[:, 2])], b[:, 3][np.isfinite(b[:, 3])]
        pcs = f"{np.percentile(pc, 95):13.3f} {np.percentile(pc, 99):6.3f} {pc.max():6.3f}" if len(pc) else ""
        print(f"{lo:>5}-{hi:<6} {len(b):5d}  {np.percentile(r, 1):6.2f} {np.percentile(r, 5):6.2f} {np.percentile(r, 50):6.2f} "
              f"{np.percentile(r, 99):6.2f}  {np.percentile(c, 1):11.3f} {np.percentile(c, 5):6.3f} {np.percentile(c, 50):6.3f}  {pcs}")
    large = a[a[:, 0] >= 150, 1]
    if len(large):
        print(f"faces of 150 px and more, pooled ({len(large)}): R p5 {np.percentile(large, 5):.2f} "
              f"(selfcheck.SHARPNESS_FLOOR there: {sharpness_floor(150.0):.2f})")


def pairs() -> None:
    import csv

    from exgan_cli.stages import faces as facelib, selfcheck
    from exgan_cli.stages.eye_colour import iris_colour
    from exgan_cli.files.images import load_image

    rows = [r for r in csv.DictReader(open(DATA / "photos" / "master.csv")) if r["Decision"] == "Yes"]
    colours = {}
    for name in sorted({r[k] for r in rows for k in ("file_x", "file_y")}):
        rgb = load_image(DATA / "photos" / name).pixels
        f = facelib.largest_face(facelib.detect_faces(rgb))
        colours[name] = (iris_colour(rgb, f.landmarks), selfcheck.eye_colours(rgb, f.landmarks), facelib.face_width(f))
    da, db = [], []
    for r in rows:
        for a, b in ((r["file_x"], r["file_y"]), (r["file_y"], r["file_x"])):
            (ca, eyes_a, wa), (cb, _, wb) = colours[a], colours[b]
            da.append(abs(ca.redness - cb.redness))
            db.append(max(cb.lab[2] - e.lab[2] for e in eyes_a))
            print(f"{a:>10} from {b:<10} ({wa:4.0f} / {wb:4.0f} px)  |a*| {da[-1]:4.1f}  bluer eye's b* drop {db[-1]:5.1f}")
    da, db = np.array(da), np.array(db)
    print(f"{len(da)} ordered pairs of {len(colours)} photos: |a*| median {np.median(da):.1f}, max {da.max():.1f}, "
          f"> {selfcheck.REDNESS_TOLERANCE:.0f} in {np.mean(da > selfcheck.REDNESS_TOLERANCE):.0%}; "
          f"b* drop median {np.median(db):.1f}, max {db.max():.1f}, > {selfcheck.BLUENESS_TOLERANCE:.0f} in "
          f"{np.mean(db > selfcheck.BLUENESS_TOLERANCE):.0%}")


if __name__ == "__main__":
    main()
