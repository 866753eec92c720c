"""How result quality falls with a strong expression, and with the expression difference between
a face and its reference (issue #14).

The companion of pose_limits.py. Reads an `exgan evaluate --json` file (the paper's protocol:
each row is one validation face in-painted with its reference) and the faces cache the evaluation
read (`exgan prepare`: aligned landmarks per photo), computes pose.expression for every target
and reference (mouth opening, smile width, cheek raise and brow height, in spreads from LFW's
median face; the eyes' own openness is left out, as on a closed-eyed target) and prints, per bin
of (a) the target's expression strength and (b) the expression difference target - reference:
the faces, the mean L1 eyes, colour eyes and ID distance of the exemplar model with the right
reference, and its L1 gain over the no-exemplar model on the same faces (mean +- standard
error), and its identity-distance gain likewise (positive: closer to the person than without
the exemplar). Then (c) the same gain per single measure, by how far the target is from neutral on it,
and (d) least-squares fits of the paired gains (L1, identity) on pose difference and expression difference
together (they are correlated: a laughing face is often turned too).

--within WEIGHTS asks what reference choice decides: it in-paints every evaluated face with EVERY
other evaluated face of its person (the model WEIGHTS, on the CPU: ~3 minutes for 800 pairs),
and fits, within each face (its references compared with one another, so nothing about the face
itself enters), L1 eyes and identity distance on the pose difference, the expression difference,
the reference's identity distance to the face and its own expression strength. The exchange rate
of expression difference against identity distance is what reference_choice.py's expression
weight is derived from.

    python benchmarks/expression_limits.py EVAL.json [--cache NPZ ...] [--model NAME] [--baseline NAME]
        [--max-pose DEG] [--within WEIGHTS [--pairs-json FILE]]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from exgan_cli.stages.pose import EXPRESSION_NAMES, expression, expression_difference, expression_strength

STRENGTH_BINS = (0.0, 1.0, 2.0, 3.0, 4.0, 99.0)
DIFFERENCE_BINS = (0.0, 1.0, 2.0, 3.0, 4.0, 99.0)
MEASURE_BINS = (0.0, 1.0, 2.0, 99.0)  # |spreads| from neutral on one measure
CACHES = (Path("/work/cache/lfw-128.npz"),)


def landmarks_by_photo(caches: list[Path]) -> dict[str, np.ndarray]:
    """'Person/Person_0001.jpg' -> aligned landmarks (68, 2), from `exgan prepare` caches."""
    out: dict[str, np.ndarray] = {}
    for path in caches:
        d = np.load(path, allow_pickle=False)
        out.update({str(p): lm for p, lm in zip(d["paths"], d["landmarks"])})
    return out


def _fmt_gain(g: list[float]) -> str:
    if not g:
        return ""
    se = float(np.std(g, ddof=1) / np.sqrt(len(g))) if len(g) > 1 else float("nan")
    return f"{np.mean(g):+.4f} +- {se:.4f}"


def table(title: str, mine: dict, base: dict | None, value: dict[str, float], bins: tuple[float, ...]) -> None:
    """One row per bin of ``value`` (photo -> figure): counts, quality, paired L1 gain."""
    print(f"\n{title}")
    print(f"{'bin':>9} {'n':>4} {'L1 eyes':>8} {'colour':>7} {'ID':>6}  {'L1 gain vs baseline':>20}  {'ID gain':>18}")
    for lo, hi in zip(bins[:-1], bins[1:]):
        photos = [p for p in mine if p in value and lo <= value[p] < hi]
        if not photos:
            continue
        l1 = float(np.mean([mine[p]["l1_eyes"] for p in photos]))
        col = float(np.nanmean([mine[p]["colour_eyes"] if mine[p]["colour_eyes"] is not None else np.nan for p in photos]))
        idd = float(np.mean([mine[p]["identity"] for p in photos]))
        gain = _fmt_gain([base[p]["l1_eyes"] - mine[p]["l1_eyes"] for p in photos if p in base]) if base else ""
        id_gain = _fmt_gain([base[p]["identity"] - mine[p]["identity"] for p in photos if p in base]) if base else ""
        label = f"{lo:g}-{hi:g}" if hi < 99 else f"{lo:g}+"
        print(f"{label:>9} {len(photos):4d} {l1:8.4f} {col:7.2f} {idd:6.3f}  {gain:>20}  {id_gain:>18}")


def fit(mine: dict, base: dict, pose: dict[str, float], diff: dict[str, float]) -> None:
    """Paired gain ~ a + b * pose difference + c * expression difference, with standard errors,
    for the L1 eyes and the identity distance."""
    photos = [p for p in mine if p in base and p in diff]
    x = np.array([[1.0, pose[p], diff[p]] for p in photos])
    for metric in ("l1_eyes", "identity"):
        y = np.array([base[p][metric] - mine[p][metric] for p in photos])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ coef
        se = np.sqrt(np.diag(np.linalg.inv(x.T @ x) * float(resid @ resid) / max(len(y) - 3, 1)))
        print(f"\n{metric} gain on {len(y)} faces = {coef[0]:+.5f} (+- {se[0]:.5f})"
              f" {coef[1]:+.6f} (+- {se[1]:.6f}) * pose deg {coef[2]:+.5f} (+- {se[2]:.5f}) * expression diff")
        if coef[1] < 0 and coef[2] < 0:
            print(f"  one spread of expression difference costs as much {metric} gain as {coef[2] / coef[1]:.1f} deg of pose difference")


def within_pairs(d: dict, name: str, cache: Path, weights: str, batch_size: int = 32) -> list[dict]:
    """In-paint every evaluated face with EVERY other evaluated face of its person as reference
    (the model ``weights``) and score L1 eyes and identity: what reference choice decides."""
    from exgan_cli.evaluation import metrics as M
    from exgan_cli.evaluation.baselines import model_method
    from exgan_cli.evaluation.pool import FacePool, make_batch
    from exgan_cli.evaluation.scoring import crop_descriptor
    from exgan_cli.evaluation.split import Protocol
    from exgan_cli.model.weights import load_pretrained
    from exgan_cli.stages.pose import head_pose, pose_difference
    from exgan_cli.training.dataset import load_dataset

    person = {r["photo"]: r["person"] for r in d["rows"] if r["method"] == name and r["ref"] == "right"}
    pairs = [(t, r) for t in sorted(person) for r in sorted(person) if r != t and person[r] == person[t]]
    model = load_pretrained(weights, device="cpu")
    pool = FacePool([load_dataset(cache)], model.align_cfg)
    pairs = [(t, r) for t, r in pairs if t in pool and r in pool]
    ts, rs = [t for t, _ in pairs], [r for _, r in pairs]
    protocol = Protocol(ts, rs, rs, [person[t] for t in ts], [person[t] for t in ts])
    method, res = model_method("model", model), model.align_cfg.resolution
    real = {t: crop_descriptor(pool.crop(t), pool.landmarks(t)) for t in set(ts) | set(rs)}
    out: list[dict] = []
    for start in range(0, len(pairs), batch_size):
        idx = list(range(start, min(len(pairs), start + batch_size)))
        batch = make_batch(pool, protocol, idx, model.mask_cfg)
        results = method.run(batch, "right")
        for j, i in enumerate(idx):
            t, r = pairs[i]
            lt, lr = pool.landmarks(t), pool.landmarks(r)
            desc = crop_descriptor(results[j], lt)
            out.append({
                "target": t, "reference": r,
                "l1_eyes": M.l1(results[j], batch.targets.crops[j], batch.targets.masks[j]),
                "identity": float(np.linalg.norm(desc.astype(np.float64) - real[t])),
                "pose_difference": pose_difference(head_pose(lt, (res, res)), head_pose(lr, (res, res))),
                "expression_difference": expression_difference(expression(lt), expression(lr)),
                "reference_distance": float(np.linalg.norm(real[r].astype(np.float64) - real[t])) if r in real else None,
                "reference_strength": expression_strength(expression(lr)),
            })
    return out


def _within_ols(groups: list[list[dict]], metric: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of ``metric`` on ``names`` after removing each target's mean (fixed effects)."""
    x = np.concatenate([np.array([[q[n] for n in names] for q in g]) - np.mean([[q[n] for n in names] for q in g], axis=0) for g in groups])
    y = np.concatenate([np.array([q[metric] for q in g]) - np.mean([q[metric] for q in g]) for g in groups])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    dof = max(len(y) - len(groups) - len(names), 1)
    return coef, np.sqrt(np.diag(np.linalg.inv(x.T @ x) * float(resid @ resid) / dof))


def within_fit(pairs: list[dict]) -> None:
    """Within each target (its references compared with one another, so that nothing about the
    target itself enters): metric ~ pose difference + expression difference (+ the reference's
    identity distance to the target, + its own expression strength), and the paired comparison
    of each target's nearest- and farthest-expression references."""
    by: dict[str, list[dict]] = {}
    for p in pairs:
        by.setdefault(p["target"], []).append(p)
    groups = [g for g in by.values() if len(g) >= 2 and all(q.get("reference_distance") is not None for q in g)]
    print(f"\nwithin targets: {sum(len(g) for g in groups)} (face, reference) pairs of {len(groups)} faces with 2+ references")
    models = [["pose_difference", "expression_difference"]]
    if "reference_distance" in pairs[0]:
        models += [["pose_difference", "expression_difference", "reference_distance"],
                   ["pose_difference", "expression_difference", "reference_distance", "reference_strength"]]
    for metric in ("l1_eyes", "identity"):
        for names in models:
            coef, se = _within_ols(groups, metric, names)
            terms = ", ".join(f"{n} {c:+.6f} (+- {e:.6f})" for n, c, e in zip(names, coef, se))
            print(f"{metric} per unit of: {terms}")
        if coef[0] > 0 and coef[1] > 0:
            print(f"  one spread of expression difference costs as much {metric} as {coef[1] / coef[0]:.1f} deg of pose difference")
        if len(coef) > 2 and coef[2] > 0 and coef[1] > 0:
            print(f"  ... and as {coef[1] / coef[2]:.3f} of the reference's identity distance to the face")
    near_far = [(min(g, key=lambda q: q["expression_difference"]), max(g, key=lambda q: q["expression_difference"])) for g in groups]
    near_far = [(a, b) for a, b in near_far if b["expression_difference"] - a["expression_difference"] >= 1.0]
    for metric in ("l1_eyes", "identity"):
        diff = [b[metric] - a[metric] for a, b in near_far]
        print(f"farthest minus nearest expression reference ({len(diff)} faces, 1+ spread apart): {metric} {_fmt_gain(diff)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path)
    ap.add_argument("--cache", type=Path, action="append", help=f"faces cache(s) with the landmarks (default {CACHES[0]})")
    ap.add_argument("--model", default=None, help="the exemplar model (default: the first model in the file)")
    ap.add_argument("--baseline", default=None, help="the no-exemplar model (default: the first model in mode none)")
    ap.add_argument("--max-pose", type=float, default=None, help="only faces whose reference's pose differs by less (deg)")
    ap.add_argument("--within", metavar="WEIGHTS", default=None,
                    help="also in-paint each face with every other evaluated face of its person (this model folder; "
                         "the last --cache must be the evaluation's cache of the data) and fit within faces")
    ap.add_argument("--pairs-json", type=Path, default=None, help="with --within: save (or, if it exists, reuse) the pairs' scores here")
    args = ap.parse_args()
    d = json.loads(args.json.read_text())
    lms = landmarks_by_photo(args.cache or list(CACHES))
    models = [m for m in d["methods"] if m["kind"] == "model"]
    name = args.model or models[0]["name"]
    base_name = args.baseline or next((m["name"] for m in models if m["mode"] == "none"), None)
    rows = [r for r in d["rows"] if r["ref"] == "right" and r["photo"] in lms and r["reference"] in lms]
    if args.max_pose is not None:
        rows = [r for r in rows if r.get("pose_difference") is not None and r["pose_difference"] < args.max_pose]
    by = {m: {r["photo"]: r for r in rows if r["method"] == m} for m in {r["method"] for r in rows}}
    mine, base = by[name], by.get(base_name)
    target = {p: expression(lms[p]) for p in mine}
    ref = {p: expression(lms[r["reference"]]) for p, r in mine.items()}
    strength = {p: expression_strength(e) for p, e in target.items()}
    diff = {p: expression_difference(target[p], ref[p]) for p in mine}
    pose = {p: float(r["pose_difference"]) for p, r in mine.items()}
    where = f" (pose difference < {args.max_pose:g} deg)" if args.max_pose is not None else ""
    print(f"{name}, right references, {len(mine)} faces{where}; baseline {base_name}")
    print(f"expression difference vs pose difference: r = {np.corrcoef(list(diff.values()), list(pose.values()))[0, 1]:+.2f}")
    table("(a) the target's expression strength (spreads from LFW's median face)", mine, base, strength, STRENGTH_BINS)
    table("(b) expression difference target - reference (spreads)", mine, base, diff, DIFFERENCE_BINS)
    for k, label in enumerate(EXPRESSION_NAMES):
        table(f"(c) |{label}| of the target (spreads from neutral)", mine, base, {p: abs(e[k]) for p, e in target.items()}, MEASURE_BINS)
    if base:
        fit(mine, base, pose, diff)
    if args.within:
        if args.pairs_json and args.pairs_json.exists():
            pairs = json.loads(args.pairs_json.read_text())
        else:
            pairs = within_pairs(d, name, (args.cache or list(CACHES))[-1], args.within)
            if args.pairs_json:
                args.pairs_json.write_text(json.dumps(pairs))
        within_fit(pairs)


if __name__ == "__main__":
    main()
