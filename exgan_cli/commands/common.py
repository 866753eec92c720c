"""What the commands share: error reporting with documented exit codes, consoles."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])

# stdout holds what a command produced, for scripts and pipes: the path of each file written
# (open-eyes, batch, export, train), inspect's report or JSON, evaluate's JSON with --json -.
# stderr holds everything said to a person: progress, summaries, notes, errors (README: "Output").
console = Console(stderr=True, highlight=False)  # progress, summaries and errors go to stderr
stdout = Console(highlight=False)  # inspect's report goes to stdout


def say(*parts: "str | tuple[str, str] | Text") -> None:
    """One line on stderr, never cut into lines by rich (a terminal wraps it, so a path stays one
    copyable string, and a pipe gets it whole, without trailing spaces), and read as plain text
    (a file named 'a[1].jpg' prints as it is). ``parts``: text, or (text, style)."""
    console.print(Text.assemble(*parts), soft_wrap=True)


def plural(n: int, word: str, words: str | None = None) -> str:
    """ "1 face", "2 faces", "0 errors"."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def wrote(path: Any) -> None:
    """A file or folder the command wrote: its path alone on a line of stdout."""
    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()


def guarded(fn: F) -> F:
    """Turn ExganError into one line on stderr and its exit code; let bugs raise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from exgan_cli.errors import ExganError

        try:
            return fn(*args, **kwargs)
        except ExganError as e:
            say(("error:", "bold red"), f" {e}")
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            say(("interrupted", "bold red"))
            raise typer.Exit(130)

    return wrapper  # type: ignore[return-value]
