"""The rich summary printed after a retouch: one row per face."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def eyes_text(e: dict | None) -> str:
    """ "0.09/0.08 closed (P 0.99)": the EARs, the verdict, and the classifier's P(closed) when it ran."""
    if not e:
        return ""
    text = f"{e['left']:.2f}/{e['right']:.2f} {'closed' if e['closed'] else 'open'}"
    if e.get("p_closed") is not None:
        text += f" (P {e['p_closed']:.2f})"
    return text


def print_summary(console: Console, outcome, seconds: float) -> None:
    table = Table(title=f"{outcome.photo.name}: {len(outcome.faces)} face(s)", title_justify="left")
    for col in ("face", "box", "detector", "eyes EAR L/R (P closed)", "status", "reference", "distance", "eyes after", "identity after"):
        table.add_column(col)
    for f in outcome.faces:
        ref = f.reference or {}
        table.add_row(
            str(f.index),
            ",".join(str(v) for v in f.box),
            f.detector,
            eyes_text(f.eyes_before),
            f.status if not f.message else f"{f.status}: {f.message}",
            Path(ref["path"]).name if ref else "",
            f"{ref['distance']:.3f}" if ref else "",
            eyes_text(f.eyes_after),
            f"{f.identity_after:.3f}" if f.identity_after is not None else "",
        )
    console.print(table)
    for f in outcome.faces:
        if f.reference:
            console.print(f"face {f.index}: reference {Path(f.reference['path']).name}: {f.reference['why']}")
        check = getattr(f, "self_check", None) or {}
        failed = [a for a in check.get("attempts", []) if not a["passed"]]
        if check.get("enabled") and failed and f.status == "retouched":
            console.print(f"face {f.index}: self-check passed with reference {len(failed) + 1}; before it: "
                          + "; ".join(f"{Path(a['reference']['path']).name}: {', '.join(a['reasons'])}" for a in failed), soft_wrap=True)
        if f.status == "failed self-check":
            console.print(f"[yellow]face {f.index}: failed self-check, left as it was[/]", soft_wrap=True)
    for r in outcome.rejected:
        console.print(f"[dim]reference {Path(r['path']).name} face {r['face']}: not used: {r['reason']}[/]")
    if outcome.output:
        console.print(f"[green]wrote[/] {outcome.output}  ({seconds:.1f} s, weights {outcome.weights})")
    else:
        console.print(f"nothing written ({seconds:.1f} s)")
