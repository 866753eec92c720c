"""The `exgan` command: a Typer app with one module per command in exgan_cli/commands/.

Command modules import only typer/rich at module level; torch, dlib and OpenCV are
imported inside the command bodies, so `exgan --help` starts instantly.
"""

from __future__ import annotations

import typer

from exgan_cli.commands import batch, evaluate, export, inspect, open_eyes, train
from exgan_cli.commands.help import Command, Group

app = typer.Typer(
    name="exgan",
    cls=Group,
    help="Open closed eyes in photos of people with Exemplar GANs (reference photos of the same person).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if not value:
        return
    import platform

    from exgan_cli import __version__
    from exgan_cli.model.bundled import locate_weights

    typer.echo(f"exgan {__version__} (Python {platform.python_version()})")
    typer.echo(f"default weights: {locate_weights().describe()}")
    raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True,
        help="Print the version and where the default weights come from, and exit.",
    ),
) -> None:
    pass


for _name, _function in (("open-eyes", open_eyes.open_eyes), ("batch", batch.batch), ("train", train.train),
                         ("export", export.export), ("evaluate", evaluate.evaluate), ("inspect", inspect.inspect)):
    app.command(_name, cls=Command)(_function)


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (kill, a scheduler, systemd) is handled like Ctrl-C: "interrupted", exit 130


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminated)
    app()


if __name__ == "__main__":
    main()
