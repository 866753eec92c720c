"""The faces of the eye-state benchmarks (benchmarks/eye_state.py, benchmarks/eye_blinks.py), scored once.

Every photo goes through the library's own path: load_image -> detect_faces(detector="auto") -> the
central face (a CEW crop, an LFW photo) or every face (the high-resolution photos of ../shared/data/photos)
-> both EARs, the eye region's pixels (eye_state.eye_region_measures, eye_width: what decides "hidden")
and P(closed) by each eye-state classifier compared: the bundled one ("after") and the one of the decision
before issue #24 ("before": weights/eye-state at BEFORE_REV, read from git).

Which faces (training/eye_data.role_of, by the name of the CEW file or the LFW person):
- "test": the classifier's held-out persons, never trained or tuned on (the figures of the Bar);
- "tune": the persons the decision's cuts are fitted on (benchmarks/eye_blinks.py), never trained on;
- photos: every face of the 64 high-resolution photos (never trained or tuned on).
Labels: train/eye_state_labels.json (a person's: open / narrow / closed / hidden / unsure, a note each).
An LFW face of a test or tune person that is not labelled there is open: every face with a low EAR, a
P(closed) above 0.02, a low eye visibility or called closed by either decision was looked at.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "train" / "eye_state_labels.json"
# weights/eye-state as it was before issue #24 (the decision of issue #14:
# P >= 0.81 or EAR < 0.18 or (EAR < 0.21 and P >= 0.05)); "before" reads it from git.
BEFORE_REV = "d680e749532108d9518be1645be4aba79b451d8c"
FACE_SIZE_SPLIT = 150.0  # px: the Bar's two face sizes


def before_folder(rev: str = BEFORE_REV) -> Path:
    """weights/eye-state at ``rev`` of this repository, written to a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="exgan-eye-state-before-"))
    for name in ("model.safetensors", "config.json", "README.md"):
        data = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:weights/eye-state/{name}"],
                              check=True, capture_output=True).stdout
        (out / name).write_bytes(data)
    return out


def photo_list(root: Path) -> list[tuple[str, str, str]]:
    """(path, set, mode) of every photo scored: CEW crops and LFW photos of test and tune persons
    (mode "central"), the high-resolution photos (mode "all")."""
    from exgan_cli.training.eye_data import role_of

    out = [(str(p), "cew", "central") for p in sorted((root / "closed_eyes").iterdir()) if role_of(p.name) != "train"]
    out += [(str(p), "lfw", "central") for p in sorted((root / "lfw").glob("*/*.jpg")) if role_of(p.parent.name) != "train"]
    out += [(str(p), "photos", "all") for p in sorted((root / "photos").iterdir())
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]
    return out


_CLASSIFIERS: dict[str, Any] = {}


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _measure(job: tuple[str, str, str]) -> list[dict]:
    """One photo -> one row per face judged (none when no face is found): where it is, its EARs and
    its eye pixels' measures (what does not depend on a classifier)."""
    from exgan_cli.errors import ExganError
    from exgan_cli.files.images import load_image
    from exgan_cli.stages.eye_state import eye_region_measures, eye_state, eye_width
    from exgan_cli.stages.faces import central_face, detect_faces, face_width

    path, which, mode = job
    try:
        img = load_image(path)
    except ExganError:
        return []
    faces = detect_faces(img.pixels, detector="auto")
    if mode == "central":
        face = central_face(faces, img.size)
        faces = [face] if face is not None else []
    rows = []
    for i, f in enumerate(faces):
        st = eye_state(f.landmarks)
        vis, tint, cheek = eye_region_measures(img.pixels, f.landmarks)
        rows.append({"path": path, "set": which, "face": i, "box": [int(v) for v in f.box], "detector": f.detector,
                     "width": face_width(f), "left": st.left, "right": st.right, "max_ear": st.score,
                     "eye_px": eye_width(f.landmarks), "visibility": vis, "tint": tint, "cheek": cheek,
                     "landmarks": np.round(f.landmarks, 3).tolist()})
    return rows


def _p_closed(job: tuple[str, list[list[list[float]]], list[tuple[float, float]], str]) -> list[float]:
    """P(closed) of a classifier folder for the faces (their landmarks and EARs) of one photo."""
    from exgan_cli.files.images import load_image
    from exgan_cli.stages.eye_classifier import load_classifier

    path, landmarks, ears, folder = job
    if folder not in _CLASSIFIERS:
        _CLASSIFIERS[folder] = load_classifier(folder)
    rgb = load_image(path).pixels
    return [_CLASSIFIERS[folder].probability(rgb, np.asarray(lm), e) for lm, e in zip(landmarks, ears)]


def _map(fn: Callable, work: list, jobs: int) -> list:
    if jobs <= 1:
        _init_worker()
        return [fn(w) for w in work]
    with mp.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
        return pool.map(fn, work, chunksize=8)


def score(root: Path, folders: Sequence[Path], jobs: int, cache: Path | None, log: Callable[[str], None] = print) -> list[dict]:
    """Rows of every face of photo_list(root), with "p": P(closed) by each classifier folder (in order).
    ``cache``: the faces and every classifier's P(closed) scored before (a JSON file, written back): a
    second run detects nothing, a new classifier only reads the photos again."""
    from exgan_cli.model.weights import file_sha256

    data = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    t0 = time.time()
    if data.get("root") != str(root) or "faces" not in data:
        work = [(p, s, m) for p, s, m in photo_list(root)]
        data = {"root": str(root), "faces": [r for rs in _map(_measure, work, jobs) for r in rs], "p": {}}
        log(f"found the faces of {len(work)} photos ({len(data['faces'])} faces) in {time.time() - t0:.0f} s with {jobs} worker(s)")
    rows = data["faces"]
    by_photo: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_photo.setdefault(r["path"], []).append(i)
    for folder in folders:
        key = file_sha256(Path(folder) / "model.safetensors")
        if key in data["p"]:
            continue
        t1 = time.time()
        work = [(path, [rows[i]["landmarks"] for i in idx], [(rows[i]["left"], rows[i]["right"]) for i in idx], str(folder))
                for path, idx in by_photo.items()]
        p = [0.0] * len(rows)
        for idx, ps in zip(by_photo.values(), _map(_p_closed, work, jobs)):
            for i, v in zip(idx, ps):
                p[i] = v
        data["p"][key] = p
        log(f"P(closed) of {folder} for {len(rows)} faces in {time.time() - t1:.0f} s")
    if cache is not None:
        cache.write_text(json.dumps(data))
    keys = [file_sha256(Path(f) / "model.safetensors") for f in folders]
    return [dict(r, p=[data["p"][k][i] for k in keys]) for i, r in enumerate(rows)]


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def label(rows: list[dict], labels: Path = LABELS) -> list[dict]:
    """Each row with its "role" (test / tune / photos), "key" and a person's "label" ("" for an LFW face
    nobody needed to look at: open; CEW crops are "closed")."""
    from exgan_cli.training.eye_data import role_of

    data = json.loads(labels.read_text(encoding="utf-8"))
    lfw, photos = data["lfw"], data["photos"]
    out = []
    for r in rows:
        p = Path(r["path"])
        if r["set"] == "cew":
            out.append(dict(r, role=role_of(p.name), key=p.name, label="closed", note="CEW closed-eye crop"))
        elif r["set"] == "lfw":
            key = f"{p.parent.name}/{p.name}"
            entry = lfw.get(key, {})
            out.append(dict(r, role=role_of(p.parent.name), key=key, label=entry.get("state", ""), note=entry.get("note", "")))
        else:
            key = f"{p.name}#{r['face']}"
            entry = photos.get(key, {})
            if entry.get("box") and _iou(entry["box"], r["box"]) < 0.5:  # another face than the one labelled
                entry = next((e for k, e in photos.items() if k.startswith(p.name + "#") and _iou(e["box"], r["box"]) >= 0.5), {})
            out.append(dict(r, role="photos", key=key, label=entry.get("state", ""), note=entry.get("note", "")))
    return out


def state_after(r: dict, clf: Any, k: int = 0) -> str:
    """The eye state eye_state.assess gives this face with classifier ``clf`` (its P is r["p"][k])."""
    from exgan_cli.stages.eye_state import hidden_reason

    if hidden_reason(r["visibility"], r["tint"], r["cheek"], r["eye_px"]):
        return "hidden"
    return clf.judge(r["p"][k], r["max_ear"])[0]


def state_before(r: dict, clf: Any, k: int = 1) -> str:
    """The eye state before issue #24: closed by that classifier's decision (its P is r["p"][k]), else open."""
    return "closed" if clf.decide(r["p"][k], r["max_ear"]) else "open"


def share(k: int, n: int) -> str:
    """"4.2% (3/71) [1.4, 11.7]": the share with its 95% Wilson interval."""
    from exgan_cli.evaluation.metrics import proportion_ci

    if not n:
        return "-"
    ci = proportion_ci(k, n)
    return f"{100 * k / n:5.1f}% ({k}/{n}) [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"
