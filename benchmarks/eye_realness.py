"""Can a score read from the eye pixels tell good in-paintings from bad ones? (issue #14)

The self-check's measures (contrast, R, colour, the eye-state classifier) separate the labelled
results of benchmarks/self_check_calibration.py poorly on LFW-sized faces. This asks whether
that is for want of labelled failures: a larger set of the generator's own results, labelled by
a person, a small CNN trained on them, and how repeatable the labels themselves are.

1. ``--make OUT``: the bundled model's in-painting (the generator and its composite in the
   model's 128 px crop, as `exgan evaluate` makes them) of open-eyed LFW faces of persons outside
   the calibration persons (train/closed_eval_persons_lfw.txt), each painted from the next photo
   of the same person; one pair per person, in a seeded order, the first --count shown on contact
   sheets OUT/sheet-NN.png (result | reference: the band around both eyes, enlarged) for a person
   to label. Also OUT/pool.npz (every pair's eye bands and their truth).
2. A person labels the sheets: train/eye_realness_labels.json ({"target|reference": good/bad}).
3. ``--score OUT``: how well each check measure ranks the labelled good results above the bad
   (ROC AUC: 0.5 is chance, 1 perfect), the CNN's (5-fold cross-validated), the CNN trained on
   every label and judged on held-out calibration cases (``--cases DIR=LABELS``: a folder made by
   self_check_calibration.py --make and its label file: other persons, the whole pipeline), and
   the agreement of the repeated labels (the file's "repeat" block).

    python benchmarks/eye_realness.py --make /tmp/er
    python benchmarks/eye_realness.py --score /tmp/er --cases /tmp/sc=train/self_check_labels_v3.json
    python benchmarks/eye_realness.py --discriminator /tmp/er
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LFW = ROOT.parent / "shared" / "data" / "lfw"
LABELS = ROOT / "train" / "eye_realness_labels.json"
BAND = (96, 32)  # the eye band's size (w, h): four eye corners on a line at x = 12, 36, 60, 84
MIN_EAR = 0.2  # open-eyed targets and references only (eye aspect ratio of both eyes)


def eye_band(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Both eyes, levelled and scaled so that the four eye corners fall on fixed points."""
    import cv2

    from exgan_cli.stages.geometry import similarity_transform

    src = np.asarray(landmarks, float)[[36, 39, 42, 45]]
    dst = np.array([[12, 16], [36, 16], [60, 16], [84, 16]], float)
    m = similarity_transform(src, dst)
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, BAND, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def aligned_band(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """eye_band of the face in the model's 128 px crop (a full-resolution result judged at the
    size the pool's results are made at)."""
    from exgan_cli.stages import geometry

    crop, m = geometry.align_face(rgb, landmarks, geometry.AlignConfig())
    return eye_band(crop, geometry.transform_points(landmarks, m))


# ---------------------------------------------------------------------------------------
# --make


def pool_pairs(paths: list[str], usable: np.ndarray, seed: int = 8) -> tuple[list[tuple[int, int]], list[int]]:
    """(target, reference) of every usable face of the persons left, each with the next photo of
    its person; and one pair per person in a seeded order (the ones shown for labelling)."""
    excluded = set((ROOT / "train" / "closed_eval_persons_lfw.txt").read_text().split())
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        person = p.split("/")[0]
        if usable[i] and person not in excluded:
            by_person.setdefault(person, []).append(i)
    pairs = [(i, idx[(k + 1) % len(idx)]) for _, idx in sorted(by_person.items()) if len(idx) > 1 for k, i in enumerate(idx)]
    rng = np.random.default_rng(seed)
    first: dict[str, int] = {}
    for k in rng.permutation(len(pairs)):
        first.setdefault(paths[pairs[k][0]].split("/")[0], int(k))
    shown = [first[p] for p in sorted(first)]
    return pairs, [shown[i] for i in rng.permutation(len(shown))]


def make(out: Path, count: int) -> None:
    from exgan_cli.apps.inputs import load_model
    from exgan_cli.evaluation.baselines import composite
    from exgan_cli.stages import geometry
    from exgan_cli.stages.generate import AlignedFace, exemplar_batch, inpaint_crops
    from exgan_cli.training.dataset import load_dataset, prepare_dataset

    out.mkdir(parents=True, exist_ok=True)
    cache = out / "lfw-6.npz"  # at most 6 photos a person (George_W_Bush has 530)
    if not cache.exists():
        prepare_dataset(LFW, cache, geometry.AlignConfig(), workers=2, limit_per_person=6)
    ds = load_dataset(cache)
    model = load_model(None, "cpu", engine="torch")
    usable = np.array([not c and e.min() >= MIN_EAR for c, e in zip(ds.closed, ds.ear)])
    pairs, shown = pool_pairs(list(ds.paths), usable)
    none = np.eye(2, 3, dtype=np.float32)  # crops are aligned already

    def face(i: int) -> AlignedFace:
        lm = ds.landmarks[i].astype(np.float64)
        boxes = geometry.eye_boxes(lm, model.mask_cfg)
        return AlignedFace(ds.crops[i], none, lm, boxes, geometry.boxes_to_mask(boxes, model.align_cfg.resolution))

    bands: dict[str, list] = {"result": [], "truth": [], "ref": [], "measures": []}
    for s in range(0, len(pairs), 64):
        targets, refs = [face(i) for i, _ in pairs[s:s + 64]], [face(j) for _, j in pairs[s:s + 64]]
        raw = inpaint_crops(model, np.stack([t.crop for t in targets]), np.stack([t.mask for t in targets]), exemplar_batch(model, targets, refs))
        for g, t, r in zip(raw, targets, refs):
            result = np.clip(composite(g.astype(np.float32), t.crop, t.mask), 0, 255).astype(np.uint8)
            bands["result"].append(eye_band(result, t.landmarks))
            bands["truth"].append(eye_band(t.crop, t.landmarks))
            bands["ref"].append(eye_band(r.crop, r.landmarks))
            bands["measures"].append(check_measures(result, t.landmarks, r.crop, r.landmarks))
    keys = [f"{ds.paths[i]}|{ds.paths[j]}" for i, j in pairs]
    np.savez_compressed(out / "pool.npz", keys=np.array(keys), shown=np.array(shown), **{k: np.stack(v) for k, v in bands.items()})
    for n in range(0, min(count, len(shown)), 24):
        write_sheet(out / f"sheet-{n // 24:02d}.png", [(str(n + k), bands["result"][i], bands["ref"][i]) for k, i in enumerate(shown[n:n + 24])])
    print(f"{len(pairs)} pairs of {len(set(k.split('/')[0] for k in keys))} persons; sheets of the first {min(count, len(shown))} in {out}")


def write_sheet(path: Path, tiles: list[tuple[str, np.ndarray, np.ndarray]], cols: int = 3) -> None:
    """Numbered result | reference tiles, 3.5x, ``cols`` to a row."""
    import cv2

    def tile(name: str, result: np.ndarray, ref: np.ndarray) -> np.ndarray:
        t = cv2.resize(np.hstack([result, np.full((BAND[1], 3, 3), 255, np.uint8), ref]), None, fx=3.5, fy=3.5, interpolation=cv2.INTER_CUBIC)
        t = np.vstack([np.full((14, t.shape[1], 3), 255, np.uint8), t, np.full((6, t.shape[1], 3), 255, np.uint8)])
        cv2.putText(t, name, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        return t

    made = [tile(*t) for t in tiles]
    made += [np.full_like(made[0], 255)] * (-len(made) % cols)
    gap = np.full((made[0].shape[0], 14, 3), 255, np.uint8)
    rows = [np.hstack([x for k in range(cols) for x in ((gap, made[i + k]) if k else (made[i + k],))]) for i in range(0, len(made), cols)]
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


# ---------------------------------------------------------------------------------------
# --score


def auc(score: np.ndarray, good: np.ndarray) -> float:
    """P(a good result scores above a bad one), ties half: the ranking's quality (0.5: chance)."""
    s, g = np.asarray(score, float), np.asarray(good, bool)
    ok = np.isfinite(s)
    p, n = s[ok & g], s[ok & ~g]
    return float(np.mean(p[:, None] > n[None]) + 0.5 * np.mean(p[:, None] == n[None]))


MEASURES = ("contrast over the reference's", "R (eye detail over skin)", "-P(closed)", "-CIE76 to the reference's iris", "-|L*| to the reference's iris")


def check_measures(result: np.ndarray, landmarks: np.ndarray, ref: np.ndarray, ref_landmarks: np.ndarray) -> list[float]:
    """The self-check's measures of a result (128 px crop) against its reference, higher meaning
    better (MEASURES), on landmarks fitted again on the result as the check does."""
    from exgan_cli.stages import detail, eye_state, faces as facelib, selfcheck
    from exgan_cli.stages.eye_colour import iris_colour

    lm = np.asarray(landmarks, float)
    box = tuple(int(v) for v in (*lm.min(0), *lm.max(0)))
    after = facelib.refit_face(result, facelib.Face(box, lm, "hog", 1.0))
    c, cr = selfcheck.eye_contrast(result, after.landmarks), selfcheck.eye_contrast(ref, ref_landmarks)
    ca, cb = iris_colour(result, after.landmarks), iris_colour(ref, ref_landmarks)
    closed = eye_state.assess(result, after).p_closed
    de = float(np.linalg.norm(ca.lab - cb.lab)) if ca and cb else float("nan")
    dl = float(abs(ca.lab[0] - cb.lab[0])) if ca and cb else float("nan")
    return [c / cr if c and cr else float("nan"), detail.sharpness_ratio(result, after.landmarks),
            -float(closed) if closed is not None else float("nan"), -de, -dl]


def lightness(bands: np.ndarray) -> np.ndarray:
    """CIELAB L* (0-100) of uint8 RGB bands."""
    import cv2

    return np.stack([cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2LAB)[..., 0] for b in bands]).astype(np.float32) * (100 / 255)


def eye_tensor(bands: np.ndarray):
    """(N, 32, 96, 3) bands -> (2N, 3, 32, 48): each face's left eye, then its right eye mirrored
    (one network judges both; a face is as good as its worse eye)."""
    import torch

    b = np.asarray(bands, np.float32) / 127.5 - 1
    eyes = np.concatenate([b[:, :, :48], b[:, :, 48:][:, :, ::-1]])
    return torch.from_numpy(np.ascontiguousarray(eyes.transpose(0, 3, 1, 2)))


def eye_net(width: int = 16):
    """A small CNN over one eye (3x32x48) -> a logit, higher: a good eye."""
    import torch.nn as nn

    def block(i: int, o: int) -> list:
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(0.2)]

    c = width
    return nn.Sequential(*block(3, c), *block(c, c), nn.MaxPool2d(2), *block(c, 2 * c), *block(2 * c, 2 * c), nn.MaxPool2d(2),
                         *block(2 * c, 4 * c), nn.MaxPool2d(2), *block(4 * c, 4 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * c, 1))


def face_scores(net, bands: np.ndarray) -> np.ndarray:
    """The worse eye's logit of each face."""
    import torch

    net.eval()
    with torch.no_grad():
        s = net(eye_tensor(bands))[:, 0].numpy()
    return np.minimum(s[: len(bands)], s[len(bands):])


def train_net(bands: np.ndarray, good: np.ndarray, epochs: int = 30, seed: int = 0):
    """Fit eye_net to face labels (binary cross-entropy on the worse eye's logit), with small
    shifts, brightness and contrast jitter, and the two eyes swapped at random."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = eye_net()
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-3)
    x, n, y = eye_tensor(bands), len(bands), torch.as_tensor(good, dtype=torch.float32)
    net.train()
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, 32):
            b = perm[i:i + 32]
            pair = [x[b], x[b + n]] if rng.random() < 0.5 else [x[b + n], x[b]]
            dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
            batch = torch.roll(torch.cat(pair), (dy, dx), (2, 3))
            batch = batch * (1 + 0.1 * torch.randn(len(batch), 1, 1, 1)) + 0.1 * torch.randn(len(batch), 1, 1, 1)
            s = net(batch)[:, 0]
            loss = F.binary_cross_entropy_with_logits(torch.minimum(s[: len(b)], s[len(b):]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def case_bands(folder: Path, labels: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The after-bands of a self_check_calibration.py --make folder's labelled cases."""
    marks = json.loads(labels.read_text())["labels"]
    names, bands, good = [], [], []
    for f in sorted((folder / "cases").glob("*.npz")):
        if f.stem in marks:
            with np.load(f) as z:
                bands.append(aligned_band(z["after"], z["landmarks"].astype(np.float64)))
            names.append(f.stem)
            good.append(marks[f.stem]["label"] == "good")
    return names, np.stack(bands), np.array(good)


def score(out: Path, labels: Path, cases: list[str]) -> None:
    import torch

    torch.set_num_threads(2)
    spec = json.loads(labels.read_text())
    with np.load(out / "pool.npz") as z:
        index = {k: i for i, k in enumerate(z["keys"])}
        pool = {k: z[k] for k in ("result", "measures", "truth")}
    missing = [k for k in spec["labels"] if k not in index]
    if missing:
        sys.exit(f"{len(missing)} labelled pairs are not in {out}/pool.npz (made from other data?), e.g. {missing[0]}")
    keys = list(spec["labels"])
    idx = np.array([index[k] for k in keys])
    good = np.array([spec["labels"][k]["label"] == "good" for k in keys])
    print(f"{len(keys)} labelled results: {good.sum()} good, {(~good).sum()} bad")
    rep = spec.get("repeat", {}).get("labels", {})
    if rep:
        same = sum(rep[k] == spec["labels"][k]["label"] for k in rep)
        print(f"the same person labelling {len(rep)} of them again, blind, in another order: {same} of {len(rep)} the same ({same / len(rep):.0%})")
    for j, name in enumerate(MEASURES):
        print(f"  AUC {auc(pool['measures'][idx, j], good):.2f}  {name}")
    bands = pool["result"][idx]
    truth = np.abs(lightness(bands) - lightness(pool["truth"][idx])).mean(axis=(1, 2))
    print(f"  AUC {auc(-truth, good):.2f}  for comparison: -L* distance to the true eyes (which no check can know)")
    folds = np.arange(len(keys)) % 5
    for share in (0.25, 0.5, 1.0):  # the learning curve: a quarter, half, all of each training fold
        cv = np.zeros(len(keys))
        for f in range(5):
            train = np.flatnonzero(folds != f)[: round(share * (folds != f).sum())]
            cv[folds == f] = face_scores(train_net(bands[train], good[train]), bands[folds == f])
        print(f"  AUC {auc(cv, good):.2f}  CNN on the eye pixels, 5-fold cross-validated, trained on {len(train)} labels")
    limit = np.percentile(cv[good], 10)  # keeps nine good results in ten
    print(f"  at the limit that keeps 90% of the good results, the last CNN rejects {np.mean(cv[~good] < limit):.0%} of the bad ones")
    net = train_net(bands, good)
    for item in cases:
        folder, _, lab = item.partition("=")
        names, b, g = case_bands(Path(folder), Path(lab))
        print(f"held out, {folder} ({len(names)} cases, {g.sum()} good): CNN AUC {auc(face_scores(net, b), g):.2f}")


def discriminator(out: Path, labels: Path, epochs: int = 8) -> None:
    """eye_net trained to tell real eyes (the truth) from the generator's (every result), persons
    split 4:1, the labelled ones kept out: its held-out real-vs-generated AUC, and how it ranks the
    labelled good results against the bad after each epoch."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    torch.manual_seed(0)
    spec = json.loads(labels.read_text())["labels"]
    with np.load(out / "pool.npz") as z:
        keys, real, fake = list(z["keys"]), z["truth"], z["result"]
    person = np.array([k.split("/")[0] for k in keys])
    labelled = {k.split("/")[0] for k in spec}
    rng = np.random.default_rng(0)
    names = np.unique(person)
    val = set(rng.choice(names, len(names) // 5, replace=False))
    held = np.array([p in val and p not in labelled for p in person])
    train = np.array([p not in val and p not in labelled for p in person])
    idx = np.array([keys.index(k) for k in spec])
    good = np.array([v["label"] == "good" for v in spec.values()])
    x = torch.cat([eye_tensor(real[train]), eye_tensor(fake[train])])
    y = torch.cat([torch.ones(2 * train.sum()), torch.zeros(2 * train.sum())])
    net = eye_net()
    opt = torch.optim.Adam(net.parameters(), 2e-3, weight_decay=1e-4)
    for epoch in range(epochs):
        net.train()
        for b in torch.randperm(len(y)).split(64):
            loss = F.binary_cross_entropy_with_logits(net(x[b])[:, 0], y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        s_real, s_fake = face_scores(net, real[held]), face_scores(net, fake[held])
        print(f"epoch {epoch}: held-out real vs generated AUC {auc(np.r_[s_real, s_fake], np.r_[np.ones(len(s_real)), np.zeros(len(s_fake))] > 0):.2f}, "
              f"labelled good vs bad AUC {auc(face_scores(net, fake[idx]), good):.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--make", type=Path, help="make the pool of results and the sheets to label in this folder")
    ap.add_argument("--count", type=int, default=360, help="results shown on the sheets")
    ap.add_argument("--score", type=Path, help="a folder made by --make")
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--cases", nargs="*", default=[], help="DIR=LABELS: self_check_calibration.py --make folders, held out")
    ap.add_argument("--discriminator", type=Path, help="a folder made by --make: train a real-vs-generated eye net on it")
    args = ap.parse_args()
    if args.discriminator:
        discriminator(args.discriminator, args.labels)
    if args.make:
        make(args.make, args.count)
    if args.score:
        score(args.score, args.labels, args.cases)
    if not (args.make or args.score or args.discriminator):
        ap.error("give --make OUT, --score OUT or --discriminator OUT")


if __name__ == "__main__":
    main()
