"""Eye state on real photos: the eye-state classifier against the EAR rule, on the held-out split.

Default run (the comparison): the test split of exgan_cli.training.eye_data.split_of, which
training never sees:
  closed: the CEW crops of <data-root>/closed_eyes whose file name hashes to "test" (~120);
  open:   the LFW photos of the persons whose name hashes to "test" (~1,500 photos).
Every photo goes through the library's own path, once, and both methods judge the same face:
load_image -> detect_faces(detector="auto": HOG, then dlib's CNN when HOG finds nothing) ->
the face nearest the centre (the labelled one) -> eyes.eye_state (EAR rule: both EARs < 0.21)
and the classifier's decision (weights/eye-state/config.json: P(closed) >= its threshold, or
both EARs below its ear_below, or both below its lean_ear_below with P(closed) >= its
lean_threshold: EyeClassifier.decide), which is what eye_state.assess returns. The calibration of
those cuts and the real-blink figures of issue #14 are benchmarks/eye_blinks.py.

Printed per method: closed recall (of the detected closed faces, and of all closed files),
open faces flagged closed (of the detected LFW faces), and the faces not detected (with HOG
alone, and with auto). LFW is mostly open eyes but not only: some of its news photos catch a
blink, a squint or a look down. ``--review FILE`` (default train/lfw_eye_review.json) holds
a person's labels of LFW faces (closed / open / unsure; see train/eye_state.md): "flagged
(reviewed)" leaves the held-out faces labelled closed or unsure out of the open faces, the raw
"flagged" counts every flag on LFW as a false alarm. The LFW faces labelled closed also give a
second closed recall, on news photos rather than CEW crops.

    python benchmarks/eye_state.py [--data-root ../shared/data] [--jobs 2] [--scores out.json]
    python benchmarks/eye_state.py --calibrate [--n-open 1500 --seed 0]   # the EAR threshold sweep

--calibrate is the original EAR calibration (docs/eye_state.md, first part): all 600 CEW crops
against a seeded random sample of LFW photos, detection with HOG, the share flagged per
threshold, and the largest threshold flagging at most 10% of LFW.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exgan_cli.errors import ExganError  # noqa: E402

# --calibrate criterion: the largest threshold (step 0.01) that flags at most this share of LFW.
# A false "closed" sends an open-eyed photo through the GAN, so false alarms are capped first,
# then recall is maximised under the cap.
MAX_OPEN_FLAGGED = 0.10
THRESHOLDS = [round(0.10 + 0.01 * i, 2) for i in range(21)]  # 0.10 .. 0.30
DEFAULT_REVIEW = ROOT / "train" / "lfw_eye_review.json"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the machine's cores


def _measure(args: tuple[str, str]) -> dict:
    """One photo -> its central face's detector, EARs and P(closed) (None when no face)."""
    from exgan_cli.stages import eye_classifier
    from exgan_cli.stages.eye_state import eye_state
    from exgan_cli.stages.faces import central_face, detect_faces
    from exgan_cli.files.images import load_image

    path, detector = args
    row: dict = {"path": path, "detector": None, "max_ear": None, "min_ear": None, "p_closed": None}
    try:
        img = load_image(path)
    except ExganError:
        return row
    face = central_face(detect_faces(img.pixels, detector=detector), img.size)
    if face is None:
        return row
    st = eye_state(face.landmarks)
    row.update(detector=face.detector, max_ear=st.score, min_ear=min(st.left, st.right))
    clf = eye_classifier.default_classifier() if detector == "auto" else None
    if clf is not None:
        row["p_closed"] = clf.probability(img.pixels, face.landmarks, (st.left, st.right))
    return row


def _run(paths: list[str], detector: str, jobs: int) -> list[dict]:
    work = [(p, detector) for p in paths]
    if jobs <= 1:
        _init_worker()
        return [_measure(w) for w in work]
    with mp.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
        return pool.map(_measure, work, chunksize=8)


def _pct(k: int, n: int) -> str:
    return f"{k / n:6.1%} ({k}/{n})" if n else "   -"


def compare(root: Path, jobs: int, review_file: Path | None, scores: Path | None) -> int:
    from exgan_cli.stages import eye_classifier
    from exgan_cli.training import eye_data
    from exgan_cli.stages.eye_state import CLOSED_EAR_THRESHOLD

    clf = eye_classifier.default_classifier()
    if clf is None:
        print(f"error: no eye-state weights in {eye_classifier.default_folder()}", file=sys.stderr)
        return 6
    split = eye_data.split_of
    closed_paths = sorted(str(p) for p in (root / "closed_eyes").iterdir() if split(p.name) == "test")
    open_paths = sorted(str(p) for p in (root / "lfw").glob("*/*.jpg") if split(p.parent.name) == "test")
    labels = eye_data.read_review(review_file) if review_file is not None else {}
    reviewed = {f"lfw/{k}": v for k, v in labels.items() if v in ("closed", "unsure")}  # not clearly open

    t0 = time.time()
    closed = _run(closed_paths, "auto", jobs)
    opened = _run(open_paths, "auto", jobs)
    secs = time.time() - t0

    def rel(p: str) -> str:
        return str(Path(p).relative_to(root))

    c_det = [r for r in closed if r["detector"]]
    o_det = [r for r in opened if r["detector"]]
    o_rev = [r for r in o_det if rel(r["path"]) not in reviewed]
    o_shut = [r for r in o_det if reviewed.get(rel(r["path"])) == "closed"]
    t_clf = clf.threshold
    methods = {
        f"classifier ({clf.rule()})": lambda r: clf.decide(r["p_closed"], r["max_ear"]),
        f"  its network alone (P >= {t_clf:.2f})": lambda r: r["p_closed"] >= t_clf,
        f"EAR rule (max EAR < {CLOSED_EAR_THRESHOLD:.2f})": lambda r: r["max_ear"] < CLOSED_EAR_THRESHOLD,
    }
    print(f"data: {root}; weights: {clf.source} (sha256 {clf.sha256[:12]})")
    print(f"held-out test split: {len(closed)} CEW closed crops, {len(opened)} LFW photos of "
          f"{len({Path(p).parent.name for p in open_paths})} persons; {secs:.0f} s with {jobs} worker(s)")
    for name, rows in (("closed", closed), ("open", opened)):
        hog = sum(r["detector"] == "hog" for r in rows)
        cnn = sum(r["detector"] == "cnn" for r in rows)
        print(f"  {name:6s}: not detected with HOG alone {len(rows) - hog}, with auto (HOG, then CNN) {len(rows) - hog - cnn} "
              f"(the CNN found {cnn})")
    print(f"  reviewed LFW faces ({review_file.name if review_file else '-'}) among the detected: "
          f"{len(o_shut)} closed, {sum(reviewed.get(rel(r['path'])) == 'unsure' for r in o_det)} unsure (left out of "
          f"'flagged (reviewed)'), {sum(labels.get(rel(r['path'])[4:]) == 'open' for r in o_det)} open")
    print()
    print(f"{'method':62s} {'closed recall':>16s} {'(of all files)':>16s} {'open flagged':>18s} {'flagged (reviewed)':>18s}"
          f" {'LFW closed recall':>17s}")
    summary = {}
    for name, is_closed in methods.items():
        kc = sum(bool(is_closed(r)) for r in c_det)
        ko = sum(bool(is_closed(r)) for r in o_det)
        kr = sum(bool(is_closed(r)) for r in o_rev)
        ks = sum(bool(is_closed(r)) for r in o_shut)
        print(f"{name:62s} {_pct(kc, len(c_det)):>16s} {_pct(kc, len(closed)):>16s} {_pct(ko, len(o_det)):>18s} "
              f"{_pct(kr, len(o_rev)):>18s} {_pct(ks, len(o_shut)):>17s}")
        summary[name.strip()] = {"closed_recall": kc / max(1, len(c_det)), "closed_recall_all": kc / max(1, len(closed)),
                                 "open_flagged": ko / max(1, len(o_det)), "open_flagged_reviewed": kr / max(1, len(o_rev)),
                                 "lfw_closed_recall": ks / max(1, len(o_shut))}
    print()
    print(f"classifier at other thresholds, with EAR < {clf.ear_below:.2f} (for reference; the shipped one was chosen on the validation split):")
    def share(rows: list[dict], t: float) -> float:
        return float(np.mean([r["p_closed"] >= t or r["max_ear"] < clf.ear_below for r in rows])) if rows else float("nan")

    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        print(f"  P >= {t:.2f}: closed recall {share(c_det, t):6.1%}, open flagged {share(o_det, t):6.1%}, "
              f"reviewed {share(o_rev, t):6.1%}, LFW closed {share(o_shut, t):6.1%}")
    if scores is not None:
        from exgan_cli.files.images import atomic_write_bytes

        data = {"closed": closed, "open": opened, "summary": summary, "threshold": t_clf, "ear_below": clf.ear_below}
        atomic_write_bytes(scores, json.dumps(data, indent=1).encode())
    return 0


def calibrate(root: Path, n_open: int, seed: int, jobs: int, scores: Path | None) -> int:
    closed_paths = sorted(str(p) for p in (root / "closed_eyes").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    lfw_all = sorted(str(p) for p in (root / "lfw").glob("*/*.jpg"))
    open_paths = random.Random(seed).sample(lfw_all, min(n_open, len(lfw_all)))

    t0 = time.time()
    closed = _run(closed_paths, "hog", jobs)
    opened = _run(open_paths, "hog", jobs)
    secs = time.time() - t0

    c_max = np.array([r["max_ear"] for r in closed if r["max_ear"] is not None])
    o_max = np.array([r["max_ear"] for r in opened if r["max_ear"] is not None])
    print(f"data: {root}")
    print(f"closed: {len(closed)} crops, {len(c_max)} faces detected, {len(closed) - len(c_max)} not detected")
    print(f"open:   {len(opened)} LFW photos (seed {seed}), {len(o_max)} faces detected, {len(opened) - len(o_max)} not detected")
    print(f"time: {secs:.0f} s with {jobs} worker(s)")
    print()
    print("rule: closed <=> both eyes' EAR < t (max EAR < t)")
    print(f"{'t':>5} {'closed recall':>14} {'(of all files)':>15} {'LFW flagged':>12}")
    rows = []
    for t in THRESHOLDS:
        recall = float((c_max < t).mean())
        recall_all = float((c_max < t).sum() / len(closed))
        flagged = float((o_max < t).mean())
        rows.append((t, recall, recall_all, flagged))
        print(f"{t:5.2f} {recall:14.1%} {recall_all:15.1%} {flagged:12.1%}")
    ok = [r for r in rows if r[3] <= MAX_OPEN_FLAGGED]
    chosen = max(ok, key=lambda r: r[0]) if ok else rows[0]
    print()
    print(
        f"chosen threshold: {chosen[0]:.2f} (largest with LFW flagged <= {MAX_OPEN_FLAGGED:.0%}): "
        f"closed recall {chosen[1]:.1%} of detected ({chosen[2]:.1%} of all), LFW flagged {chosen[3]:.1%}"
    )
    print(f"EAR medians: closed {np.median(c_max):.3f}, LFW {np.median(o_max):.3f} (max of the two eyes)")
    if scores is not None:
        from exgan_cli.files.images import atomic_write_bytes

        atomic_write_bytes(scores, json.dumps({"closed": closed, "open": opened}, indent=1).encode())
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=None, help="folder with lfw/ and closed_eyes/ (default ../shared/data from the repo root)")
    ap.add_argument("--calibrate", action="store_true", help="the EAR threshold sweep instead of the held-out comparison")
    ap.add_argument("--n-open", type=int, default=1500, help="--calibrate: LFW photos sampled as open-eyed faces")
    ap.add_argument("--seed", type=int, default=0, help="--calibrate: seed of the LFW sample")
    ap.add_argument("--review", type=Path, default=DEFAULT_REVIEW, help="reviewed LFW faces (train/lfw_eye_review.json)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--scores", type=Path, default=None, help="write the per-photo scores to this JSON file")
    args = ap.parse_args(argv)
    root = args.data_root if args.data_root is not None else (ROOT / ".." / "shared" / "data").resolve()
    for d in (root / "closed_eyes", root / "lfw"):
        if not d.is_dir():
            print(f"error: {d}: folder not found", file=sys.stderr)
            return 9
    if args.calibrate:
        return calibrate(root, args.n_open, args.seed, args.jobs, args.scores)
    return compare(root, args.jobs, args.review, args.scores)


if __name__ == "__main__":
    raise SystemExit(main())
