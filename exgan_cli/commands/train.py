"""`exgan train --data DIR ...`: prepare the face cache and train an ExGAN model.

Settings come, each overriding the one before: the defaults (training.config.TrainConfig), the run's
own config.json with --resume, a JSON recipe with --config (train/*.json), the flags, and
--set KEY=VALUE for any other field (model.d_channels=16, mask.jitter_scale=0.2, ...).
"""

from __future__ import annotations

import json
import os
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from exgan_cli.commands.common import console, guarded, say, wrote


class Mode(str, Enum):
    reference = "reference"
    code = "code"
    none = "none"


def _set_value(text: str):
    """A --set value: JSON when it parses (numbers, true/false, null, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_config(
    resume: Optional[Path], recipe: Optional[Path], flags: dict, model_flags: dict, sets: list[str]
):
    """The TrainConfig these command-line settings describe (see the module doc for the order)."""
    from exgan_cli.training.config import CONFIG_FILE, TrainConfig, merge_config, read_config_file, read_run_config

    cfg = TrainConfig()
    try:
        if resume is not None:
            if not (resume / CONFIG_FILE).is_file():
                from exgan_cli.errors import WeightsError

                raise WeightsError(f"{resume}: not a run folder (no {CONFIG_FILE})")
            saved = read_run_config(resume)
            saved = {k: v for k, v in saved.items() if k not in ("resume", "out", "export")}
            cfg = merge_config(cfg, saved)
        if recipe is not None:
            cfg = merge_config(cfg, read_config_file(recipe))
        overrides = {k: v for k, v in flags.items() if v is not None}
        model = {k: v for k, v in model_flags.items() if v is not None}
        if model:
            overrides["model"] = model
        for item in sets:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--set wants KEY=VALUE, not {item!r}")
            head, dot, sub = key.strip().partition(".")
            if dot:
                overrides.setdefault(head, {})[sub] = _set_value(value)
            else:
                overrides[head] = _set_value(value)
        if resume is not None:
            overrides["resume"] = str(resume)
        return merge_config(cfg, overrides)
    except (ValueError, TypeError) as e:
        raise typer.BadParameter(str(e)) from None


# The rarer flags' help panels (commands/help.py).
_MODEL, _STEPS, _LOGS, _MACHINE = "Model", "Optimisation", "Logs and checkpoints", "Machine"


def _progress_columns():
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )


def _info_text(info: dict) -> str:
    parts = []
    for key, label in (("l1", "L1"), ("adv", "adv"), ("loss_d", "D"), ("code", "code"), ("ae", "ae")):
        if key in info:
            parts.append(f"{label} {info[key]:.3f}")
    if "images_per_s" in info:
        parts.append(f"{info['images_per_s']:.1f} img/s")
    if info.get("val_l1") is not None:
        parts.append(f"val L1 {info['val_l1']:.4f}")
    return "  ".join(parts)


@guarded
def train(
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Data folder: one sub-folder of photos per person (e.g. LFW). Required unless --cache, --resume or the --config recipe names the data."),
    cache: Optional[Path] = typer.Option(None, "--cache", metavar="FILE", help="Aligned-face cache (.npz) (default: in $EXGAN_CACHE_DIR/datasets, ~/.cache/exgan/datasets unset, named after the data folder, resolution and settings)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="Run folder (default: runs/DATE-TIME-MODE-RESOLUTION; with --resume, that folder)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", metavar="FILE", help="JSON recipe (train/*.json); flags override it."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="DIR", help="Continue the run in this folder from its checkpoint."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Only build the face cache (detect, align, eye state), then stop."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total steps (a resumed run continues to this) (default: 50000)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop (with a checkpoint) once the run has trained this many minutes in all, resumes included (default: no limit)."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Any other setting (e.g. model.d_channels=16, min_ear=0.22); repeatable."),
    export: Optional[Path] = typer.Option(None, "--export", metavar="DIR", help="When done, export the model to this weights folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print only errors and the result."),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="Exemplar: reference photo, eye code, or none (baseline) (default: reference).", rich_help_panel=_MODEL),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Aligned face size in pixels, a multiple of 32 (default: 128).", rich_help_panel=_MODEL),
    base_channels: Optional[int] = typer.Option(None, "--base-channels", help="Generator width (default: 32).", rich_help_panel=_MODEL),
    n_blocks: Optional[int] = typer.Option(None, "--n-blocks", help="Dilated residual blocks in G (default: 4).", rich_help_panel=_MODEL),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Faces per step and process (default: 16).", rich_help_panel=_STEPS),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate of G (default: 1e-4).", rich_help_panel=_STEPS),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="EMA of G's weights per step (default: 0.999).", rich_help_panel=_STEPS),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Persons held out for validation (default: 0.05).", rich_help_panel=_STEPS),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: 0).", rich_help_panel=_STEPS),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="Steps between log.jsonl lines (default: 50).", rich_help_panel=_LOGS),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Steps between validation scores (default: 1000).", rich_help_panel=_LOGS),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", help="Steps between sample grids (default: 1000).", rich_help_panel=_LOGS),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints (default: 1000).", rich_help_panel=_LOGS),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes that prepare the cache (default: all cores).", rich_help_panel=_MACHINE),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default: auto).", rich_help_panel=_MACHINE),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice).", rich_help_panel=_MACHINE),
) -> None:
    """Train an ExGAN model on a one-folder-per-person photo set (preparing its face cache first).

    Multi-GPU: torchrun --nproc_per_node N -m exgan_cli train ... (one process per GPU).
    """
    from rich.progress import Progress

    from exgan_cli.training.export import command_line
    from exgan_cli.training.loop import train as train_run

    flags = dict(
        data=str(data) if data else None, cache=str(cache) if cache else None, out=str(out) if out else None,
        workers=workers, batch_size=batch_size, steps=steps, minutes=minutes, lr=lr, ema_decay=ema_decay,
        log_every=log_every, eval_every=eval_every, sample_every=sample_every, checkpoint_every=checkpoint_every,
        val_fraction=val_fraction, device=device, seed=seed, threads=threads, export=str(export) if export else None,
    )
    model_flags = dict(mode=mode.value if mode else None, resolution=resolution, base_channels=base_channels, n_blocks=n_blocks)
    cfg = build_config(resume, config, flags, model_flags, set_)
    _require_data(cfg)  # one line, before the progress bar starts
    rank = int(os.environ.get("RANK", 0))  # under torchrun only rank 0 talks
    log = (lambda msg: None) if quiet or rank else say

    with Progress(*_progress_columns(), console=console, disable=quiet or rank != 0, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int, info: dict) -> None:
            if stage not in tasks:
                label = "preparing faces" if stage == "prepare" else "training"
                tasks[stage] = bar.add_task(label, total=total, completed=0, info="")
            bar.update(tasks[stage], completed=done, total=total, info=_info_text(info))

        if prepare_only:
            _prepare_only(cfg, progress, log, bar)
            return
        result = train_run(cfg, progress=progress, log=log, command=command_line())
    if not rank:
        _report(result)


def _require_data(cfg) -> None:
    """DataError, naming the flags, when neither the flags, the recipe nor the resumed run give data."""
    if not cfg.data and not cfg.cache:
        from exgan_cli.errors import DataError

        raise DataError("no data to train on: give a data folder (--data DIR), a prepared face cache (--cache FILE), "
                        "or a run to --resume")


def _prepare_only(cfg, progress, log, bar) -> None:
    """--prepare-only: build (or find) the face cache and print its counts."""
    from exgan_cli.training.dataset import load_dataset
    from exgan_cli.training.pairs import cache_path, data_summary, ensure_cache

    t0 = time.perf_counter()
    existed = cache_path(cfg).is_file()
    path = ensure_cache(cfg, progress, log)
    seconds = time.perf_counter() - t0
    bar.stop()
    summary = data_summary(load_dataset(path), cfg)
    size = path.stat().st_size / 1e6
    what = "cache exists" if existed else f"prepared in {seconds:.0f} s"
    say(f"{path}: {what}, {size:.1f} MB")
    say(
        f"{summary['photos']} photos, {summary['faces']} faces of {summary['persons']} persons; "
        f"{summary['closed']} closed, {summary['squinting']} squinting (min EAR {cfg.min_ear}); "
        f"{summary['usable']} usable faces of {summary['usable_persons']} persons with 2+: "
        f"{summary['train_faces']} for training ({summary['train_persons']} persons), "
        f"{summary['val_faces']} for validation ({summary['val_persons']} persons)",
    )
    wrote(path)


def _report(result) -> None:
    """The one line at the end of a run (rank 0); an interrupted run exits 130."""
    val = f", val L1 {result.val_l1:.4f}" if result.val_l1 is not None else ""
    done = f"{result.step} steps, {result.images_seen} images, {result.wall_time / 60:.1f} min{val}"
    if result.stopped == "interrupted":
        say(("interrupted", "yellow"), f" at step {result.step}: checkpoint written; continue with: exgan train --resume {result.run_dir}")
        raise typer.Exit(130)
    if result.stopped == "time limit":
        say(("time limit", "yellow"), f": {done}; checkpoint in {result.run_dir} (continue with --resume)")
    else:
        say(("trained", "green"), f" {result.run_dir}: {done}")
    if result.export_dir:
        say(("exported", "green"), f" {result.export_dir}")
    wrote(result.run_dir)
