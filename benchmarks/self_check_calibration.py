"""Calibrate the self-check on results a person has judged (issue #14).

Three steps:

1. ``--make OUT``: run open-eyes' pipeline with its self-check OFF on real closed eyes (every
   closed-eyed face of the persons in --persons, default train/closed_eval_persons_lfw.txt: LFW
   persons the models never trained on, with their other photos as references) and on hard cases
   (--hard: target:reference pairs of the high-resolution photos, retouched with --faces all and
   the pose limit lifted: big pose differences, strong expressions; ``photo.jpg#K`` names face K
   of a group photo, left to right, otherwise its largest face is used; by default the 35 pairs of
   the v1 and v2 sets). Every result is written
   as a tile OUT/<case>.png (before | after | reference eyes, enlarged), its crops as
   OUT/cases/<case>.npz (so that a changed check can judge it again without the generator), and
   OUT/cases.json with the check's measures and verdict at the time.
2. A person looks at every tile and writes a label file (JSON: {"case": "good" | "bad"}, with a
   note each): train/self_check_labels.json (v1 model), train/self_check_labels_v2.json.
3. ``--score OUT [OUT ...]``: how often the check, as the code stands now, keeps the good results
   and rejects the bad ones (overall and by face size).

    python benchmarks/self_check_calibration.py --make /tmp/sc [--weights DIR] [--limit N] [--hard PAIRS]
    python benchmarks/self_check_calibration.py --score /tmp/sc [/tmp/sc2] [--labels train/self_check_labels_v2.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"
SMALL_FACE = 150.0  # px: LFW's faces are below, the high-resolution photos' above (selfcheck.COLOUR_MIN_FACE)
# the v1 set's hard cases: the light-eyed person repainted from another photo of hers
HARD = ("img7.jpg:img6.jpg,img1.jpg:img7.jpg,img1.jpg:img11.jpg,img6.jpg:img2.jpg,img4.jpg:img10.jpg,img2.jpg:img5.jpg,"
        "img11.jpg:img1.jpg,img5.jpg:img4.jpg,img10.jpg:img6.jpg,img2.jpg:img11.jpg")
# the v2 set's other hard cases (train/self_check_labels_v2.json): the other same-person pairs of
# photos/master.csv, two portraits, the couple and the group selfie repainted from their own eyes
HARD_V2 = ("img24.jpg:img25.jpg,img25.jpg:img24.jpg,img15.jpg:img13.jpg,img13.jpg:img15.jpg,img14.jpg:img13.jpg,"
           "img20.jpg:img21.jpg,img21.jpg:img20.jpg,img16.jpg:img17.jpg,img17.jpg:img16.jpg,img12.jpg:img3.jpg,"
           "img3.jpg:img12.jpg,img22.jpg:img23.jpg,img23.jpg:img22.jpg,img18.jpg:img19.jpg,img19.jpg:img18.jpg,"
           "img8.jpg:img9.jpg,img9.jpg:img8.jpg,couple.jpg#1:couple.jpg#1,couple.jpg#0:couple.jpg#0,"
           "selfie-many-people.jpg#0:selfie-many-people.jpg#0,selfie-many-people.jpg#1:img4.jpg,"
           "selfie-many-people.jpg#2:selfie-many-people.jpg#2,selfie-many-people.jpg#3:selfie-many-people.jpg#3,"
           "img26.jpg:img26.jpg,img49.jpg:img49.jpg")


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


def _spec(text: str) -> tuple[str, int | None]:
    """'photo.jpg' (its largest face) or 'photo.jpg#K' (face K, left to right)."""
    name, _, k = text.partition("#")
    return name, (int(k) if k else None)


def _crop(rgb: np.ndarray, face) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The face with a margin of one face width (enough for the landmarks, descriptor and eye
    state), its landmarks and box moved into the crop."""
    w = max(face.box[2] - face.box[0], face.box[3] - face.box[1])
    x0, y0 = max(0, face.box[0] - w), max(0, face.box[1] - w)
    x1, y1 = min(rgb.shape[1], face.box[2] + w), min(rgb.shape[0], face.box[3] + w)
    box = (face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0)
    return rgb[y0:y1, x0:x1], np.asarray(face.landmarks) - (x0, y0), box


def save_case(path: Path, img, result, face, ref, ref_face, ref_descriptor, d0: float) -> None:
    """What --score needs to judge the case again with the current check: the original and the
    result around the face, the reference face, its descriptor and the original's distance."""
    path.parent.mkdir(parents=True, exist_ok=True)
    before, lm, box = _crop(img, face)
    after = _crop(result, face)[0]
    r, rlm, rbox = _crop(ref, ref_face)
    np.savez_compressed(path, before=before, after=after, landmarks=lm, box=np.array(box), detector=face.detector,
                        score=face.score, ref=r, ref_landmarks=rlm, ref_box=np.array(rbox), ref_descriptor=ref_descriptor, d0=d0)


def rejudge(path: Path):
    """selfcheck.check_face, as the code stands now, on a case saved by --make."""
    from exgan_cli.stages import faces as facelib, selfcheck

    z = np.load(path)
    face = facelib.Face(tuple(int(v) for v in z["box"]), z["landmarks"], str(z["detector"]), float(z["score"]))
    ref_eyes = selfcheck.ReferenceEyes.measure(z["ref"], z["ref_landmarks"])
    return selfcheck.check_face(z["after"], face, z["ref_descriptor"], float(z["d0"]), facelib.SAME_PERSON_THRESHOLD,
                                reference=ref_eyes)


def make(args) -> None:
    from PIL import Image

    from exgan_cli.stages import eye_state as eyes, faces as facelib, selfcheck
    from exgan_cli.files.images import load_image
    from exgan_cli.options import BlendConfig, RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates
    from exgan_cli.model.weights import load_pretrained

    out = Path(args.make)
    out.mkdir(parents=True, exist_ok=True)
    model = load_pretrained(args.weights)
    if args.fullres_warp and model.model_cfg.warp:  # the field applied at full resolution whatever the config says
        model = replace(model, model_cfg=replace(model.model_cfg, warp_fullres=True))
    off = selfcheck.SelfCheckConfig(enabled=False)
    cases: dict[str, dict] = {}

    def judge(name: str, img, result, face_index: int, faces, cand, kind: str, report=None) -> None:
        face = faces[face_index]
        ref_eyes = selfcheck.ReferenceEyes.measure(cand.pixels, cand.face.landmarks)
        d0 = facelib.descriptor_distance(facelib.face_descriptor(img, face), cand.descriptor)
        check = selfcheck.check_face(result, face, cand.descriptor, d0, facelib.SAME_PERSON_THRESHOLD, reference=ref_eyes)
        Image.fromarray(tile(img, result, cand.pixels, face, cand.face)).save(out / f"{name}.png")
        save_case(out / "cases" / f"{name}.npz", img, result, face, cand.pixels, cand.face, cand.descriptor, d0)
        cases[name] = {"kind": kind, "reference": str(cand.path), "face_width": round(facelib.face_width(face), 1),
                       "passed": check.passed, "reasons": check.reasons, **check.to_dict()}
        sc = (report.self_check or {}) if report is not None else {}
        if sc.get("kept") is not None and "warp" in sc["attempts"][sc["kept"]]:  # a warp model: what its field took
            cases[name]["warp"] = sc["attempts"][sc["kept"]]["warp"]
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
            res = retouch(img, cands, model, RetouchOptions(face_index=i, self_check=off, best_of=1, force=True,
                                                            blend=BlendConfig(iris_colour=not args.no_iris_colour, warp=not args.no_fullres_warp)), faces=faces)
            rep = res.faces[i]
            if rep.status != "retouched":
                continue
            cand = next(c for c in cands if str(c.path) == rep.reference["path"] and c.index == rep.reference["face"])
            judge(f"blink-{p.stem}", img, res.pixels, i, faces, cand, "lfw blink", rep)
            n += 1
    # hard cases: open eyes repainted from another photo (pose, expression, size)
    for pair in (args.hard.split(",") if args.hard else []):
        (a, ka), (b, kb) = (_spec(x) for x in pair.split(":"))
        img = load_image(SHARED / "photos" / a).pixels
        faces = facelib.detect_faces(img)
        i = max(range(len(faces)), key=lambda k: facelib.face_width(faces[k])) if ka is None else ka
        cands, _ = load_candidates([SHARED / "photos" / b])
        cand = max(cands, key=lambda c: c.width) if kb is None else next(c for c in cands if c.index == kb)
        opts = RetouchOptions(faces="all", face_index=i, self_check=off, best_of=1, force=True, any_identity=True,
                              blend=BlendConfig(iris_colour=not args.no_iris_colour, warp=not args.no_fullres_warp))
        res = retouch(img, [cand], model, opts, faces=faces)
        if res.faces[i].status != "retouched":
            print(f"{pair}: {res.faces[i].status}", flush=True)
            continue
        name = f"hard-{Path(a).stem}{'' if ka is None else f'f{ka}'}-{Path(b).stem}{'' if kb is None else f'f{kb}'}"
        judge(name, img, res.pixels, i, faces, cand, "hard: high resolution, another pose", res.faces[i])
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases in {out}")


def score(args) -> None:
    """Kept / rejected per label, judged again by the check as the code stands now (each case's
    saved crops, cases/<case>.npz) or, for an older folder without them, by the verdict it recorded."""
    cases: dict[str, dict] = {}
    for folder in args.score:
        for name, case in json.loads((Path(folder) / "cases.json").read_text()).items():
            saved = Path(folder) / "cases" / f"{name}.npz"
            if saved.exists():
                check = rejudge(saved)
                case = {**case, "passed": check.passed, "reasons": check.reasons}
            cases[name] = case
    labels = json.loads(Path(args.labels).read_text())["labels"]
    for title, small in (("all", None), (f"faces under {SMALL_FACE:.0f} px", True), (f"faces of {SMALL_FACE:.0f} px and more", False)):
        keep = lambda k: k in cases and (small is None or (cases[k]["face_width"] < SMALL_FACE) == small)  # noqa: E731
        good = [k for k, v in labels.items() if v["label"] == "good" and keep(k)]
        bad = [k for k, v in labels.items() if v["label"] == "bad" and keep(k)]
        kept = [k for k in good if cases[k]["passed"]]
        rejected = [k for k in bad if not cases[k]["passed"]]
        print(f"{title}: {len(kept)} of {len(good)} good kept ({len(kept) / max(1, len(good)):.0%}), "
              f"{len(rejected)} of {len(bad)} bad rejected ({len(rejected) / max(1, len(bad)):.0%})")
        if small is None:
            for k in good:
                if k not in kept:
                    print(f"  good but rejected: {k}: {'; '.join(cases[k]['reasons'])}")
            for k in bad:
                if k not in rejected:
                    print(f"  bad but kept: {k} ({labels[k].get('note', '')})")
    unlabelled = sorted(set(cases) - set(labels))
    if unlabelled:
        print(f"{len(unlabelled)} cases without a label: {', '.join(unlabelled)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make", type=Path)
    ap.add_argument("--score", type=Path, nargs="+", help="folders made by --make (their cases together)")
    ap.add_argument("--weights", default=str(ROOT / "weights" / "exgan-reference-128"))
    ap.add_argument("--persons", default=str(ROOT / "train" / "closed_eval_persons_lfw.txt"))
    ap.add_argument("--per-person", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--hard", default=HARD + "," + HARD_V2, help="target:reference pairs (default: the v1 and v2 sets')")
    ap.add_argument("--labels", default=str(ROOT / "train" / "self_check_labels_v3.json"))
    ap.add_argument("--fullres-warp", action="store_true",
                    help="a warp model's field applied at full resolution even where its config says warp_fullres false")
    ap.add_argument("--no-fullres-warp", action="store_true",
                    help="a warp model's field used at 128 px only: its 128 px output pasted with the detail stage (BlendConfig.warp off)")
    ap.add_argument("--no-iris-colour", action="store_true", help="make the results without the iris colour match (v2's pipeline)")
    args = ap.parse_args()
    if args.fullres_warp and args.no_fullres_warp:
        ap.error("--fullres-warp and --no-fullres-warp contradict each other")
    if args.make:
        make(args)
    if args.score:
        score(args)


if __name__ == "__main__":
    main()
