"""Make a folder of links to the validation persons of a training run (for `exgan evaluate`).

The persons a run held out (dataset.split_persons through training.split_faces, with the
run's seed, val_fraction and min_ear) become OUT/<Person> -> DATA/<Person> symlinks, so the
evaluation sees exactly the persons the model never trained on.

    python benchmarks/val_persons.py runs/ref-cpu --data ../shared/data/lfw --out /tmp/lfw-val
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from exgan_cli.dataset import load_dataset
from exgan_cli.training import split_faces


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = json.loads((args.run / "config.json").read_text())
    ds = load_dataset(Path(cfg["cache"]))
    _, val = split_faces(ds, cfg["min_ear"], cfg["val_fraction"], cfg["seed"])
    persons = sorted({ds.persons[p] for p in np.unique(ds.person[val])})
    args.out.mkdir(parents=True, exist_ok=True)
    for name in persons:
        link = args.out / name
        if not link.exists():
            os.symlink((args.data / name).resolve(), link)
    print(f"{len(persons)} validation persons ({len(val)} usable faces) linked under {args.out}")


if __name__ == "__main__":
    main()
