"""`exgan evaluate --data DIR` / `exgan evaluate --closed DIR`: measure eye in-painting.

--data: the paper's protocol on open-eyed faces (mask both eyes, in-paint with a reference of the
same person, compare with the real photo), plus the same faces with a reference of another
person (does the model use its exemplar?), for every --weights and the baselines.
--closed: the full open-eyes pipeline on real closed-eyed photos: are the eyes open afterwards,
is it still the same person? See exgan_cli/evaluation/protocol.py for the details.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from exgan_cli.commands.common import console, guarded

if TYPE_CHECKING:  # the library is imported when the command runs (it needs numpy, cv2, torch)
    from exgan_cli.evaluation.closed import ClosedResult
    from exgan_cli.evaluation.protocol import EvalResult


# The rarer flags' help panels (commands/help.py).
_FACES, _METHODS = "Faces", "Methods and machine"


def _check_output(path: Optional[Path], overwrite: bool, image: bool = False) -> None:
    """Refuse a bad --json/--grid before any work ('-': stdout, nothing to check)."""
    from exgan_cli.files.images import check_output

    if path is not None and str(path) != "-":
        check_output(path, overwrite=overwrite, image=image)


def _fmt(v: Optional[float], digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


DIGITS = {"l1_face": 4, "l1_eyes": 4, "psnr_eyes": 2, "colour_eyes": 2, "ssim_eyes": 4, "ms_ssim_eyes": 4, "identity": 4, "frechet_descriptor": 4}


def _cell(stat: dict, key: str) -> str:
    d = DIGITS.get(key, 4)
    lo, hi = stat["ci95"]
    if lo is None or hi is None:
        return _fmt(stat["mean"], d)
    return f"{_fmt(stat['mean'], d)} [dim]±{_fmt((hi - lo) / 2, d)}[/]"


def _gain_cell(stat: dict, key: str, lower_is_better: bool = False) -> str:
    """A difference with its interval; green when the interval is on the good side of 0, red
    when on the bad side (``lower_is_better``: negative differences are good)."""
    d = DIGITS.get(key, 4)
    lo, hi = stat["ci95"]
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:+.{d}f}"
    if lo is None or hi is None:
        return text
    from rich.markup import escape

    body = escape(f"{text} [{lo:+.{d}f}, {hi:+.{d}f}]")
    good, bad = (hi < 0, lo > 0) if lower_is_better else (lo > 0, hi < 0)
    colour = "green" if good else "red" if bad else ""
    return f"[{colour}]{body}[/]" if colour else body


def _print_wide(table) -> None:
    """Tables need up to ~190 columns: a terminal keeps its width, a file or pipe gets enough."""
    if console.is_terminal:
        console.print(table)
    else:
        from rich.console import Console

        Console(stderr=True, highlight=False, width=max(console.width, 200)).print(table)


def print_report(result: "EvalResult") -> None:
    """The method x metric table and the identity-test table (stderr, like every summary)."""
    from rich.table import Table

    from exgan_cli.evaluation.scoring import METRICS, SET_METRIC

    keys = [*METRICS, SET_METRIC]
    n, persons = len(result.protocol), len(set(result.protocol.persons))
    table = Table(title=f"Eye in-painting: {n} faces of {persons} persons, mean ±95% CI")
    table.add_column("method", no_wrap=True)
    table.add_column("ref", no_wrap=True)
    for _, label, hib in keys:
        table.add_column(f"{label} {'↑' if hib else '↓'}", justify="right", no_wrap=True)
    for m in result.methods:
        entry = result.summary[m.name]
        for which in ("right", "wrong"):
            name = (m.name + ("" if m.uses_reference else " *")) if which == "right" else ""
            ref = "same" if which == "right" else "other"
            table.add_row(name, ref, *[_cell(entry[which][k], k) for k, _, _ in keys], end_section=which == "wrong")
    _print_wide(table)

    gain = Table(title="Identity test: exemplar gain (other-person reference minus same-person one; > 0: the right reference helps) [95% CI]")
    gain.add_column("method", no_wrap=True)
    shown = [k for k in keys if k[0] in ("l1_eyes", "psnr_eyes", "ms_ssim_eyes", "colour_eyes", "identity", "frechet_descriptor")]
    for _, label, _ in shown:
        gain.add_column(label, justify="right", no_wrap=True)
    gain.add_column("uses exemplar", no_wrap=True)
    for m in result.methods:
        g = result.summary[m.name]["exemplar_gain"]
        if not m.uses_reference:
            verdict = "no (blind) *"
        else:
            sig = sum(1 for k, _, _ in shown if g[k]["ci95"][0] is not None and g[k]["ci95"][0] > 0)
            verdict = f"[green]yes[/] ({sig}/{len(shown)} metrics)" if sig else "[yellow]not measurably[/]"
        gain.add_row(m.name, *[_gain_cell(g[k], k) for k, _, _ in shown], verdict)
    _print_wide(gain)
    others = [m for m in result.methods if "vs_primary" in result.summary[m.name]]
    if others:
        primary = result.summary[others[0].name]["vs_primary"]["primary"]
        paired = Table(title=f"Paired on the same faces (right references): how much better {primary} is (> 0: better) [95% CI]")
        paired.add_column("than", no_wrap=True)
        cols = [k for k in METRICS if k[0] in ("l1_eyes", "psnr_eyes", "ms_ssim_eyes", "seam_eyes", "colour_eyes", "identity")]
        for _, label, _ in cols:
            paired.add_column(label, justify="right", no_wrap=True)
        for m in others:
            v = result.summary[m.name]["vs_primary"]
            paired.add_row(m.name, *[_gain_cell(v[k], k) for k, _, _ in cols])
        _print_wide(paired)
    colour = getattr(result, "colour", None)
    if colour:
        light = Table(title=f"Eye colour on the {colour['faces']} light-eyed faces (irises least red relative to the skin): colour eyes ↓ [95% CI]")
        for col in ("method", "same ref", "other ref", "exemplar gain", "paired vs first model"):
            light.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
        for m in result.methods:
            e = colour["methods"][m.name]
            light.add_row(
                m.name, _cell(e["right"], "colour_eyes"), _cell(e["wrong"], "colour_eyes") if m.uses_reference else "same",
                _gain_cell(e["exemplar_gain"], "colour_eyes") if m.uses_reference else "-",
                _gain_cell(e["vs_primary"], "colour_eyes") if "vs_primary" in e else "",
            )
        nat = colour["natural"]
        light.add_row("natural (the reference's own irises)", _cell(nat["light"], "colour_eyes"), "", "", "", end_section=True)
        _print_wide(light)
        console.print(f"natural colour eyes on all faces: {_cell(nat['all'], 'colour_eyes')}", soft_wrap=True)
    scales = ", ".join(f"{s} at {r} px" for r, s in result.ms_ssim_scales.items())
    console.print(
        f"* ignores the reference (its two rows are the same in-painting). MS-SSIM scales: {scales}. "
        "ID dist: dlib descriptor distance to the real face (< 0.6: same person). FD desc: Fréchet distance between the "
        "dlib descriptors of real and in-painted faces; not FID, and no Inception score: no Inception weights offline.",
        soft_wrap=True,
    )


def print_closed_report(result: "ClosedResult") -> None:
    from rich.table import Table

    check = "with its self-check" if getattr(result, "self_check", True) else "without self-check"
    table = Table(title=f"Real closed eyes: the open-eyes pipeline, {check} (mean ± 95% CI)")
    for col, just in (("model", "left"), ("faces", "right"), ("retouched", "right"), ("failed check", "right"), ("eyes open after", "right"),
                      ("ID dist before", "right"), ("ID dist after", "right"), ("change", "right"),
                      ("to chosen ref: before", "right"), ("after", "right")):
        table.add_column(col, justify=just)
    for m in result.methods:
        s = result.summary[m.name]
        o = s["opened"]
        share = "-" if o["mean"] is None else f"{100 * o['mean']:.0f}% [{100 * (o['ci95'][0] or 0):.0f}, {100 * (o['ci95'][1] or 0):.0f}]"
        table.add_row(
            m.name, str(s["faces"]), str(s["retouched"]), str(s.get("failed_self_check", 0)), share,
            _cell(s["identity_before"], "identity"), _cell(s["identity_after"], "identity"),
            _gain_cell(s["identity_change"], "identity", lower_is_better=True),
            _cell(s["identity_before_chosen"], "identity"), _cell(s["identity_after_chosen"], "identity"),
        )
    _print_wide(table)
    console.print("ID dist: mean dlib descriptor distance to the person's other photos (< 0.6: same person); change: after - before.", soft_wrap=True)


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False, disable=quiet,
    )


def _with_progress(run, cfg, quiet: bool, log):
    """run(cfg, progress, log) under a progress bar with one line per stage."""
    with _progress(quiet) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return run(cfg, progress, log)


def _write_outputs(result: "EvalResult | ClosedResult", json_out: Optional[Path], grid: Optional[Path], overwrite: bool, log) -> None:
    """The JSON (a file or stdout) and the grid image."""
    from exgan_cli.errors import DataError
    from exgan_cli.files.images import atomic_write_bytes, save_image

    if json_out is not None:
        text = json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n"
        if str(json_out) == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            atomic_write_bytes(json_out, text.encode("utf-8"), overwrite=overwrite)
            log(f"wrote {json_out}")
    if grid is not None:
        if result.grid is None:
            raise DataError("no face to show in the grid")
        save_image(result.grid, grid, overwrite=overwrite)
        log(f"wrote {grid}")


@guarded
def evaluate(
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Open-eyed faces, one sub-folder per person (e.g. LFW): the paper's protocol."),
    closed: Optional[Path] = typer.Option(None, "--closed", metavar="DIR", help="Per-person folders with real closed-eyed photos and open-eyed references: run open-eyes on them."),
    weights: list[str] = typer.Option([], "--weights", metavar="MODEL", help="Model folder or Hub id (repeatable) (default: the bundled model, if any)."),
    cache: Optional[Path] = typer.Option(None, "--cache", metavar="FILE", help="Aligned-face cache (.npz) at the first model's resolution (default: under $EXGAN_CACHE_DIR/datasets)."),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Write means, 95% CIs and per-image rows as JSON ('-': stdout)."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Write an image: masked | reference | each method | truth, a few faces."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most this many faces (a seeded subset of persons).", rich_help_panel=_FACES),
    seed: int = typer.Option(0, "--seed", help="Seed of the subset, the person order (wrong references) and the bootstrap.", rich_help_panel=_FACES),
    per_person: int = typer.Option(10, "--per-person", help="Photos per person considered, first by name (0: all).", rich_help_panel=_FACES),
    min_ear: float = typer.Option(0.2, "--min-ear", help="Open-eyed faces: both eye aspect ratios at least this.", rich_help_panel=_FACES),
    baselines: str = typer.Option("telea,navier-stokes,poisson-copy", "--baselines", metavar="NAMES", help="Comma-separated baselines, or 'none'.", rich_help_panel=_METHODS),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help="Where the generators run: auto, cpu, cuda or cuda:N.", rich_help_panel=_METHODS),
    detector: str = typer.Option("hog", "--detector", metavar="hog|cnn|auto", help="--closed: face detector, hog, cnn or auto (HOG, then CNN when HOG finds none).", rich_help_panel=_FACES),
    self_check: bool = typer.Option(True, "--self-check/--no-self-check", help="--closed: run the pipeline's self-check as open-eyes does (faces that fail it are left as they were and counted); --no-self-check measures the raw pipeline.", rich_help_panel=_FACES),
    batch_size: int = typer.Option(16, "--batch-size", help="Faces per generator call.", rich_help_panel=_METHODS),
    workers: int = typer.Option(0, "--workers", help="Processes preparing the face cache (0: all cores).", rich_help_panel=_METHODS),
    grid_rows: int = typer.Option(6, "--grid-rows", help="Faces in the grid.", rich_help_panel=_METHODS),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json/--grid files."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or tables; only errors (and --json -)."),
) -> None:
    """Measure how well models in-paint eyes, against OpenCV and copy-paste baselines, on the same faces."""
    from exgan_cli.evaluation.baselines import default_weights
    from exgan_cli.evaluation.config import BASELINES, ClosedConfig, EvalConfig

    if (data is None and cache is None) == (closed is None) or (closed is not None and (data is not None or cache is not None)):
        raise typer.BadParameter("give either --data DIR (or --cache FILE) or --closed DIR")
    _check_output(json_out, overwrite)
    _check_output(grid, overwrite, image=True)
    chosen = [] if baselines.strip().lower() == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    bad = [b for b in chosen if b not in BASELINES]
    if bad:
        raise typer.BadParameter(f"unknown baseline {bad[0]!r} (use {', '.join(BASELINES)} or none)")
    if detector not in ("hog", "cnn", "auto"):
        raise typer.BadParameter(f"--detector must be hog, cnn or auto, not {detector!r}")
    specs = list(weights) or default_weights()
    log = (lambda msg: None) if quiet else (lambda msg: console.print(msg, soft_wrap=True))
    if not weights and not quiet:
        log(f"weights: {specs[0]} (default)" if specs else "no --weights and no bundled default model: baselines only")

    t0 = time.perf_counter()
    if closed is not None:
        from exgan_cli.evaluation.closed import evaluate_closed

        if not specs:
            from exgan_cli.errors import WeightsError

            raise WeightsError("evaluate --closed needs a model: pass --weights (no bundled default weights found)")

        cfg = ClosedConfig(data=closed, weights=specs, limit=limit, seed=seed, per_person=per_person, device=device,
                           detector=detector, grid_rows=grid_rows, self_check=self_check)
        result = _with_progress(evaluate_closed, cfg, quiet, log)
    else:
        from exgan_cli.evaluation.protocol import evaluate as evaluate_data

        cfg = EvalConfig(data=data, weights=specs, cache=cache, limit=limit, seed=seed, per_person=per_person, min_ear=min_ear,
                         baselines=tuple(chosen), device=device, batch_size=batch_size, workers=workers, grid_rows=grid_rows)
        result = _with_progress(evaluate_data, cfg, quiet, log)
    seconds = time.perf_counter() - t0
    if not quiet:
        (print_closed_report if closed is not None else print_report)(result)
    _write_outputs(result, json_out, grid, overwrite, log)
    log(f"done in {seconds:.1f} s")
