"""Make a folder of links to the validation persons of a training run (for `exgan evaluate`).

The persons a run held out (dataset.split_persons through training.split_faces, with the
run's seed, val_fraction and min_ear) become OUT/<Person> -> DATA/<Person> symlinks, so the
evaluation sees exactly the persons the model never trained on. The bundled models' persons
are also listed in train/val_persons_lfw.txt (one name a line), so that their evaluation does
not need the run folder or its cache:

    python benchmarks/val_persons.py runs/ref-cpu --data ../shared/data/lfw --out /tmp/lfw-val
    python benchmarks/val_persons.py --list train/val_persons_lfw.txt --data ../shared/data/lfw --out /tmp/lfw-val
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from exgan_cli.training.dataset import load_dataset
from exgan_cli.training.config import read_run_config
from exgan_cli.training.pairs import split_faces


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path, nargs="?", help="run folder (its config.json names the cache)")
    ap.add_argument("--list", type=Path, help="a file of person names instead of a run")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if (args.run is None) == (args.list is None):
        ap.error("give a run folder or --list FILE")
    if args.list is not None:
        persons = sorted(line.strip() for line in args.list.read_text().splitlines() if line.strip())
        val = None
    else:
        cfg = read_run_config(args.run)
        ds = load_dataset(Path(cfg["cache"]))
        _, val = split_faces(ds, cfg["min_ear"], cfg["val_fraction"], cfg["seed"], cfg["split"])
        persons = sorted({ds.persons[p] for p in np.unique(ds.person[val])})
    missing = [name for name in persons if not (args.data / name).is_dir()]
    if missing:
        raise SystemExit(f"{args.data}: no folder for {len(missing)} person(s), e.g. {missing[0]}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in persons:
        link = args.out / name
        if not link.exists():
            os.symlink((args.data / name).resolve(), link)
    faces = f" ({len(val)} usable faces)" if val is not None else ""
    print(f"{len(persons)} validation persons{faces} linked under {args.out}")


if __name__ == "__main__":
    main()
