"""Seams of retouched eyes in real closed-eye photos: the open-eyes blend against plain pastes.

A visible box is a change of the skin around the new eyes that stops at the box's border. On
every face that the eye-state classifier finds closed in the LFW photos of the persons in
--persons (default: train/closed_eval_persons_lfw.txt, never trained on), the pipeline
(apps.retouch.retouch, self-check off so that every variant keeps the same reference, chosen from
that person's other photos) is run with four blends:

  open-eyes   the default: feathered alpha, colours matched to the skin ring, full-resolution detail
  no colour   the same without the colour match
  hard        a hard-edged box paste (no feather), colours matched, no detail
  naive       a hard box paste without colour matching: what a naive tool does

Result and original are warped to the aligned crop (the model's alignment, from the original
landmarks, identical for both) where the eye boxes are exact rectangles. On a band straddling
each box border (a quarter of the box height wide, half inside, half outside) two figures of
the change D = luminance(result) - luminance(original), in 0..1 units:

  border change  mean |D|: how much the skin at the border was altered
  border edge    mean |gradient of D| (3x3 Sobel / 8): how sharply that change starts; a box
                 outline is an edge in D

Both are 0 for a result that leaves the border as it was. Printed: the mean of each figure with
a 95% interval, and each variant's ratio to the open-eyes blend paired on the same faces.

    python benchmarks/seams.py [--weights DIR] [--persons FILE] [--data ../shared/data/lfw]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def band_mask(boxes, res: int) -> np.ndarray:
    """The band straddling the border of each eye box, a quarter of the box height wide."""
    import cv2

    from exgan_cli.stages.geometry import boxes_to_mask

    out = np.zeros((res, res), bool)
    for box in boxes:
        hole = (boxes_to_mask([box], res) > 0.5).astype(np.uint8)
        r = max(1, round(0.125 * (box[3] - box[1])))
        k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        out |= (cv2.dilate(hole, k) > 0) & ~(cv2.erode(hole, k, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0)
    return out


def border_figures(result: np.ndarray, original: np.ndarray, landmarks: np.ndarray, model) -> tuple[float, float]:
    import cv2

    from exgan_cli.stages import geometry
    from exgan_cli.files.images import luminance

    res = model.align_cfg.resolution
    a, matrix = geometry.align_face(result, landmarks, model.align_cfg)
    b, _ = geometry.align_face(original, landmarks, model.align_cfg)
    boxes = geometry.eye_boxes(geometry.transform_points(landmarks, matrix), model.mask_cfg)
    band = band_mask(boxes, res)
    d = (luminance(a) - luminance(b)).astype(np.float64)
    gx = cv2.Sobel(d, cv2.CV_64F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(d, cv2.CV_64F, 0, 1, ksize=3) / 8.0
    return float(np.abs(d)[band].mean() / 255.0), float(np.hypot(gx, gy)[band].mean() / 255.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="model folder [default: bundled]")
    ap.add_argument("--persons", type=Path, default=ROOT / "train" / "closed_eval_persons_lfw.txt")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    args = ap.parse_args()

    os.environ.setdefault("EXGAN_CACHE_DIR", tempfile.mkdtemp(prefix="exgan-seams-cache-"))
    from exgan_cli.stages import eye_state as eyes, faces as facelib
    from exgan_cli.stages.blend import BlendConfig
    from exgan_cli.errors import ExganError
    from exgan_cli.files.images import load_image
    from exgan_cli.evaluation.metrics import mean_ci
    from exgan_cli.options import RetouchOptions
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.stages.references import load_candidates, open_cache
    from exgan_cli.stages.selfcheck import SelfCheckConfig
    from exgan_cli.model.weights import load_pretrained, resolve_default

    model = load_pretrained(args.weights or resolve_default(), device="cpu")
    variants = {
        "open-eyes": BlendConfig(),
        "no colour": BlendConfig(colour_match=False),
        "hard": BlendConfig(feather=0.0, inset=0.0, detail=False),
        "naive": BlendConfig(feather=0.0, inset=0.0, detail=False, colour_match=False),
    }
    names = [n.strip() for n in args.persons.read_text().splitlines() if n.strip() and not n.startswith("#")]
    figures: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    skipped = 0
    for person in names:
        photos = sorted((args.data / person).glob("*.jpg"))
        for photo in photos:
            try:
                image = load_image(photo)
            except ExganError:
                continue
            found = facelib.detect_faces(image.pixels)
            if not found or not any(eyes.assess(image.pixels, f).closed for f in found):
                continue
            refs = [p for p in photos if p != photo]
            cands, _ = load_candidates(refs, cache=open_cache("hog"))
            rows = {}
            for name, blend in variants.items():
                opts = RetouchOptions(blend=blend, self_check=SelfCheckConfig(enabled=False))
                try:
                    result = retouch(image.pixels, cands, model, opts, faces=found)
                except ExganError:
                    break
                done = [r for r in result.faces if r.status == "retouched"]
                rows[name] = [border_figures(result.pixels, image.pixels, found[r.index].landmarks, model) for r in done]
            if len(rows) != len(variants) or not rows["open-eyes"]:
                skipped += 1
                continue
            for name, vals in rows.items():
                figures[name] += vals
    n = len(figures["open-eyes"])
    print(f"weights: {model.source}; {n} retouched closed-eyed faces of {len(names)} persons ({skipped} photos without a usable reference)\n")
    base_change = np.array([c for c, _ in figures["open-eyes"]])
    base_edge = np.array([e for _, e in figures["open-eyes"]])
    print(f"{'blend':<11} {'border change':>26} {'border edge':>26}   paired ratio to open-eyes (median): change, edge")
    for name, vals in figures.items():
        ch = np.array([c for c, _ in vals])
        ed = np.array([e for _, e in vals])
        c, e = mean_ci(ch.tolist()), mean_ci(ed.tolist())
        rc = statistics.median((ch / np.maximum(base_change, 1e-9)).tolist())
        re = statistics.median((ed / np.maximum(base_edge, 1e-9)).tolist())
        print(f"{name:<11} {c.mean:.4f} [{c.low:.4f}, {c.high:.4f}]   {e.mean:.4f} [{e.low:.4f}, {e.high:.4f}]   {rc:5.2f}x, {re:5.2f}x")


if __name__ == "__main__":
    main()
