"""The rich summary printed after a retouch: one row per face."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_summary(console: Console, outcome, seconds: float) -> None:
    table = Table(title=f"{outcome.photo.name}: {len(outcome.faces)} face(s)", title_justify="left")
    for col in ("face", "box", "eyes (L/R)", "status", "reference", "distance", "eyes after", "identity after"):
        table.add_column(col)
    for f in outcome.faces:
        eb = f.eyes_before
        before = f"{eb['left']:.2f}/{eb['right']:.2f} {'closed' if eb['closed'] else 'open'}"
        ref = f.reference or {}
        after = ""
        if f.eyes_after:
            ea = f.eyes_after
            after = f"{ea['left']:.2f}/{ea['right']:.2f} {'closed' if ea['closed'] else 'open'}"
        table.add_row(
            str(f.index),
            ",".join(str(v) for v in f.box),
            before,
            f.status if not f.message else f"{f.status}: {f.message}",
            Path(ref["path"]).name if ref else "",
            f"{ref['distance']:.3f}" if ref else "",
            after,
            f"{f.identity_after:.3f}" if f.identity_after is not None else "",
        )
    console.print(table)
    for f in outcome.faces:
        if f.reference:
            console.print(f"face {f.index}: reference {Path(f.reference['path']).name}: {f.reference['why']}")
    for r in outcome.rejected:
        console.print(f"[dim]reference {Path(r['path']).name} face {r['face']}: not used: {r['reason']}[/]")
    if outcome.output:
        console.print(f"[green]wrote[/] {outcome.output}  ({seconds:.1f} s, weights {outcome.weights})")
    else:
        console.print(f"nothing written ({seconds:.1f} s)")
