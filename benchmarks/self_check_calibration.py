"""Calibrate the self-check on results a person has judged (issue #14).

Two steps:

1. ``--make OUT``: run open-eyes' pipeline with its self-check OFF on real closed eyes (every
   closed-eyed face of the persons in --persons, default train/closed_eval_persons_lfw.txt: LFW
   persons the models never trained on, with their other photos as references) and on hard cases
   (--hard: target:reference pairs of the high-resolution photos, retouched with --faces all and
   the pose limit lifted: big pose differences, strong expressions). Every result is written as a
   tile OUT/<case>.png (before | after | reference eyes, enlarged) plus OUT/cases.json with the
   check's measures (selfcheck.check_face with the reference actually used) and its verdict.
2. A person looks at every tile and writes a label file (JSON: {"case": "good" | "bad"}, with a
   note per bad one): train/self_check_labels.json.
3. ``--score OUT``: how often the check keeps the good results and rejects the bad ones.

    python benchmarks/self_check_calibration.py --make /tmp/sc [--weights DIR] [--limit N]
    python benchmarks/self_check_calibration.py --score /tmp/sc [--labels train/self_check_labels.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
HARD = ("img7.jpg:img6.jpg,img1.jpg:img7.jpg,img1.jpg:img11.jpg,img6.jpg:img2.jpg,img4.jpg:img10.jpg,img2.jpg:img5.jpg,"
        "img11.jpg:img1.jpg,img5.jpg:img4.jpg,img10.jpg:img6.jpg,img2.jpg:img11.jpg")


def tile(before: np.ndarray, after: np.ndarray, ref: np.ndarray, face, ref_face, height: int = 160) -> np.ndarray:
    """before | after | reference: the band around both eyes, each scaled to ``height``."""
    import cv2

    from eye_colour import eye_band

    def fit(band):
        w = max(1, round(band.shape[1] * height / band.shape[0]))
        return cv2.resize(band, (w, height), interpolation=cv2.INTER_CUBIC if band.shape[0] < height else cv2.INTER_AREA)

    parts = [fit(eye_band(before, face.landmarks)), fit(eye_band(after, face.landmarks)), fit(eye_band(ref, ref_face.landmarks))]
    gap = np.full((height, 6, 3), 255, np.uint8)
    return np.hstack([parts[0], gap, parts[1], gap, parts[2]])


def make(args) -> None:
    from PIL import Image

    from exgan_cli.stages import eye_state as eyes, faces as facelib, selfcheck
    from exgan_cli.files.images import load_image
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates
    from exgan_cli.model.weights import load_pretrained

    out = Path(args.make)
    out.mkdir(parents=True, exist_ok=True)
    model = load_pretrained(args.weights)
    off = selfcheck.SelfCheckConfig(enabled=False)
    cases: dict[str, dict] = {}

    def judge(name: str, img, result, face_index: int, faces, cand, kind: str) -> None:
        face = faces[face_index]
        ref_eyes = selfcheck.ReferenceEyes.measure(cand.pixels, cand.face.landmarks)
        d0 = facelib.descriptor_distance(facelib.face_descriptor(img, face), cand.descriptor)
        check = selfcheck.check_face(result, face, cand.descriptor, d0, facelib.SAME_PERSON_THRESHOLD, reference=ref_eyes)
        Image.fromarray(tile(img, result, cand.pixels, face, cand.face)).save(out / f"{name}.png")
        cases[name] = {"kind": kind, "reference": str(cand.path), "face_width": round(facelib.face_width(face), 1),
                       "passed": check.passed, "reasons": check.reasons, **check.to_dict()}
        print(f"{name:<40} {'pass' if check.passed else 'FAIL'}  {'; '.join(check.reasons)}", flush=True)

    # real closed eyes of persons never trained on
    persons = [p.strip() for p in Path(args.persons).read_text().splitlines() if p.strip()]
    n = 0
    for person in persons:
        photos = sorted((SHARED / "lfw" / person).glob("*.jpg"))[: args.per_person]
        for p in photos:
            if args.limit and n >= args.limit:
                break
            img = load_image(p).pixels
            faces = facelib.detect_faces(img)
            if not faces:
                continue
            c = facelib.central_face(faces, (img.shape[1], img.shape[0]))
            i = faces.index(c)
            if not eyes.assess(img, c).closed:
                continue
            cands, _ = load_candidates([q for q in photos if q != p])
            if not cands:
                continue
            res = retouch(img, cands, model, RetouchOptions(face_index=i, self_check=off, best_of=1, force=True), faces=faces)
            rep = res.faces[i]
            if rep.status != "retouched":
                continue
            cand = next(c for c in cands if str(c.path) == rep.reference["path"] and c.index == rep.reference["face"])
            judge(f"blink-{p.stem}", img, res.pixels, i, faces, cand, "lfw blink")
            n += 1
    # hard cases: open eyes repainted from another photo (pose, expression, size)
    for pair in (args.hard.split(",") if args.hard else []):
        a, b = pair.split(":")
        img = load_image(SHARED / "photos" / a).pixels
        faces = facelib.detect_faces(img)
        i = max(range(len(faces)), key=lambda k: facelib.face_width(faces[k]))
        cands, _ = load_candidates([SHARED / "photos" / b])
        cand = max(cands, key=lambda c: c.width)
        opts = RetouchOptions(faces="all", face_index=i, self_check=off, best_of=1, force=True, any_identity=True)
        res = retouch(img, [cand], model, opts, faces=faces)
        judge(f"hard-{Path(a).stem}-{Path(b).stem}", img, res.pixels, i, faces, cand, "hard: high resolution, another pose")
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases in {out}")


def score(args) -> None:
    cases = json.loads((Path(args.score) / "cases.json").read_text())
    labels = json.loads(Path(args.labels).read_text())["labels"]
    good = [k for k, v in labels.items() if v["label"] == "good" and k in cases]
    bad = [k for k, v in labels.items() if v["label"] == "bad" and k in cases]
    kept = [k for k in good if cases[k]["passed"]]
    rejected = [k for k in bad if not cases[k]["passed"]]
    print(f"{len(good)} good results, {len(kept)} kept ({len(kept) / max(1, len(good)):.0%})")
    print(f"{len(bad)} bad results, {len(rejected)} rejected ({len(rejected) / max(1, len(bad)):.0%})")
    for k in good:
        if k not in kept:
            print(f"  good but rejected: {k}: {'; '.join(cases[k]['reasons'])}")
    for k in bad:
        if k not in rejected:
            print(f"  bad but kept: {k} ({labels[k].get('note', '')})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make", type=Path)
    ap.add_argument("--score", type=Path)
    ap.add_argument("--weights", default=str(ROOT / "weights" / "exgan-reference-128"))
    ap.add_argument("--persons", default=str(ROOT / "train" / "closed_eval_persons_lfw.txt"))
    ap.add_argument("--per-person", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--hard", default=HARD)
    ap.add_argument("--labels", default=str(ROOT / "train" / "self_check_labels.json"))
    args = ap.parse_args()
    if args.make:
        make(args)
    if args.score:
        score(args)


if __name__ == "__main__":
    main()
