"""Markdown tables for a model card from `exgan evaluate --json` files.

Prints the evaluation table (every method, same- and other-person reference, mean ± half the
95% CI), the identity-test line of one model, the paired table against the first model and the
closed-eyes rows, in the layout of train/cards/*.md, so a card can be brought up to date after
re-running the commands it lists:

    python benchmarks/card_tables.py --eval eval.json --this exgan-reference-128 \\
        --closed "40 random LFW persons with 3-60 photos=closed.json" --closed "the 61 validation persons=closed_val.json"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LABELS = {"telea": "OpenCV Telea", "navier-stokes": "OpenCV Navier-Stokes", "poisson-copy": "copy-paste + Poisson"}
# (key, header, decimals) in table order
COLUMNS = (
    ("l1_eyes", "L1 eyes ↓", 4),
    ("psnr_eyes", "PSNR eyes ↑", 2),
    ("ssim_eyes", "SSIM eyes ↑", 3),
    ("ms_ssim_eyes", "MS-SSIM eyes ↑", 3),
    ("detail_eyes", "detail eyes", 2),
    ("seam_eyes", "seam eyes ↓", 4),
    ("colour_eyes", "colour eyes ↓", 2),
    ("identity", "ID dist ↓", 3),
    ("frechet_descriptor", "FD desc ↓", 4),
)
PAIRED = (("l1_eyes", "L1 eyes", 4), ("psnr_eyes", "PSNR eyes", 2), ("ms_ssim_eyes", "MS-SSIM eyes", 4),
          ("seam_eyes", "seam eyes", 4), ("colour_eyes", "colour eyes", 2), ("identity", "ID dist", 4))


def mean_pm(v: dict, d: int) -> str:
    lo, hi = v["ci95"]
    return f"{v['mean']:.{d}f} ±{(hi - lo) / 2:.{d}f}"


def signed(v: dict, d: int) -> str:
    lo, hi = v["ci95"]
    return f"{v['mean']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def main_table(result: dict, this: str) -> str:
    head = "| method | reference | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for m in result["methods"]:
        name = m["name"]
        label = LABELS.get(name, name)
        entry = result["summary"][name]
        rows = [("right", "same person"), ("wrong", "other person")] if m["uses_reference"] else [("right", "(blind)")]
        for which, ref in rows:
            shown = label
            if name == this:
                shown = "**this model**" if which == "right" else "this model"
            cells = [mean_pm(entry[which][k], d) for k, _, d in COLUMNS]
            lines.append(f"| {shown} | {ref} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def identity_line(result: dict, this: str) -> str:
    gain = result["summary"][this]["exemplar_gain"]
    parts = [f"{h.rstrip(' ↓↑')} {signed(gain[k], d)}" for k, h, d in COLUMNS if k in ("l1_eyes", "seam_eyes", "colour_eyes", "identity", "frechet_descriptor")]
    return "Identity test (other-person minus same-person reference, paired 95% CI): " + ", ".join(parts) + "."


def paired_table(result: dict) -> str:
    methods = [m["name"] for m in result["methods"] if "vs_primary" in result["summary"][m["name"]]]
    primary = result["summary"][methods[0]]["vs_primary"]["primary"]
    lines = [f"Paired on the same faces (right references), how much better {primary} is than each method (> 0: better, 95% CI):", "",
             "| than | " + " | ".join(h for _, h, _ in PAIRED) + " |", "|" + "---|" * (len(PAIRED) + 1)]
    for name in methods:
        vs = result["summary"][name]["vs_primary"]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(signed(vs[k], d) for k, _, d in PAIRED) + " |")
    return "\n".join(lines)


def colour_table(result: dict, this: str) -> str:
    """Colour eyes on the light-eyed third (irises least red relative to the skin), and the natural figure."""
    c = result["colour"]
    lines = [f"Eye colour on the {c['faces']} light-eyed faces (the third whose true irises are least red relative to the skin; "
             "colour eyes, CIE76, lower is better, 95% CI):", "",
             "| method | same person | other person | exemplar gain | paired: how much better " + this + " is |", "|---|---|---|---|---|"]
    for m in result["methods"]:
        e = c["methods"][m["name"]]
        lines.append(f"| {LABELS.get(m['name'], m['name'])} | {mean_pm(e['right'], 2)} | "
                     + (f"{mean_pm(e['wrong'], 2)} | {signed(e['exemplar_gain'], 2)}" if m["uses_reference"] else "(blind) | -")
                     + f" | {signed(e['vs_primary'], 2) if 'vs_primary' in e else ''} |")
    n = c["natural"]
    lines.append(f"| natural: the reference's own irises | {mean_pm(n['light'], 2)} | | | |")
    lines += ["", f"Natural figure on all faces (the right reference's irises against the truth's): {mean_pm(n['all'], 2)}."]
    return "\n".join(lines)


def closed_rows(label: str, result: dict, this: str) -> str:
    lines = []
    for name, s in result["summary"].items():
        shown = "**this model**" if name == this else name
        op = s["opened"]
        lines.append(
            f"| {label} | {shown} | {s['faces']} | {s['retouched']} | {op['mean']:.2f} [{op['ci95'][0]:.2f}, {op['ci95'][1]:.2f}] | "
            f"{s['identity_before']['mean']:.3f} → {s['identity_after']['mean']:.3f} | {signed(s['identity_change'], 3)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", type=Path, required=True, help="exgan evaluate --data ... --json file")
    ap.add_argument("--this", required=True, help="the card's model (a method name in the JSON)")
    ap.add_argument("--closed", action="append", default=[], help="LABEL=FILE: an exgan evaluate --closed --json file")
    args = ap.parse_args()
    result = json.loads(args.eval.read_text())
    print(main_table(result, args.this), end="\n\n")
    this = next(m for m in result["methods"] if m["name"] == args.this)
    if this["uses_reference"]:
        print(identity_line(result, args.this), end="\n\n")
    print(paired_table(result), end="\n\n")
    if result.get("colour"):
        print(colour_table(result, args.this), end="\n\n")
    for item in args.closed:
        label, _, path = item.partition("=")
        print(closed_rows(label, json.loads(Path(path).read_text()), args.this))


if __name__ == "__main__":
    main()
