"""How result quality falls as the head poses of face and reference differ (issue #14).

Reads an `exgan evaluate --json` file (the paper's protocol: every row has the pose difference
between the target and its reference, pose.pose_difference of pose.head_pose on the
aligned landmarks) and prints, per pose-difference bin, the mean L1 eyes, colour eyes and ID
distance of each model with the right reference, and how much the first model gains over the
no-exemplar model there (paired on the same faces). The pose limit is the largest difference up
to which every bin still gains over the no-exemplar model: past it the reference's eyes, warped
from another angle, stop helping (L1 itself barely moves: a generator falls back on painting from
context).

    python benchmarks/pose_limits.py EVAL.json [--model NAME] [--baseline NAME]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BINS = (0, 10, 20, 30, 40, 90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path)
    ap.add_argument("--model", default=None, help="the exemplar model (default: the first model in the file)")
    ap.add_argument("--baseline", default=None, help="the no-exemplar model (default: the first model in mode none)")
    args = ap.parse_args()
    d = json.loads(args.json.read_text())
    models = [m for m in d["methods"] if m["kind"] == "model"]
    name = args.model or models[0]["name"]
    base = args.baseline or next((m["name"] for m in models if m["mode"] == "none"), None)
    rows = [r for r in d["rows"] if r["ref"] == "right" and r.get("pose_difference") is not None]
    by = {m: {r["photo"]: r for r in rows if r["method"] == m} for m in {r["method"] for r in rows}}
    mine = by[name]
    print(f"{name}, right references, {len(mine)} faces; baseline {base}")
    print(f"{'pose diff':>10} {'n':>4} {'L1 eyes':>8} {'colour':>7} {'ID':>6}  {'L1 gain vs baseline':>20}")
    limit, ok = BINS[0], True
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        photos = [p for p, r in mine.items() if lo <= r["pose_difference"] < hi]
        if not photos:
            continue
        l1 = float(np.mean([mine[p]["l1_eyes"] for p in photos]))
        col = float(np.nanmean([mine[p]["colour_eyes"] if mine[p]["colour_eyes"] is not None else np.nan for p in photos]))
        idd = float(np.mean([mine[p]["identity"] for p in photos]))
        gain = ""
        if base and base in by:
            g = [by[base][p]["l1_eyes"] - mine[p]["l1_eyes"] for p in photos if p in by[base]]
            gain = f"{np.mean(g):+.4f}" if g else ""
        if ok and gain and float(gain) > 0:
            limit = hi
        else:
            ok = False
        print(f"{lo:>3}-{hi:<3} deg {len(photos):4d} {l1:8.4f} {col:7.2f} {idd:6.3f}  {gain:>20}")
    print(f"the exemplar gains over {base} in every bin up to {limit} deg of pose difference")


if __name__ == "__main__":
    main()
