"""`exgan export RUN_DIR --out DIR`: a training run's EMA model as a weights folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from exgan_cli.commands.common import guarded, say, wrote


@guarded
def export(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Run folder written by `exgan train` (holds checkpoint.safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Weights folder to write: model.safetensors, config.json, README.md."),
    card_extra: Optional[Path] = typer.Option(None, "--card-extra", help="Markdown file appended to the model card."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of an existing, non-empty folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Nothing on stderr but errors (stdout still gets the folder's path)."),
) -> None:
    """Export the EMA generator (and eye encoder, in code mode) of a run, with a model card."""
    from exgan_cli.errors import BadInputError
    from exgan_cli.training.export import command_line, export_run

    extra = ""
    if card_extra is not None:
        try:
            extra = card_extra.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInputError(f"{card_extra}: cannot read the card text: {e}") from None
    folder = export_run(run_dir, out, card_extra=extra, command=command_line(), overwrite=overwrite)
    if not quiet:
        say(("exported", "green"), f" {run_dir} -> {folder}")
    wrote(folder)
