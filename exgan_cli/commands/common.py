"""What the commands share: error reporting with documented exit codes, consoles."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True, highlight=False)  # progress, summaries and errors go to stderr
stdout = Console(highlight=False)  # machine-readable output (JSON) goes to stdout


def guarded(fn: F) -> F:
    """Turn ExganError into one line on stderr and its exit code; let bugs raise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from exgan_cli.errors import ExganError

        try:
            return fn(*args, **kwargs)
        except ExganError as e:
            console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]")
            raise typer.Exit(130)

    return wrapper  # type: ignore[return-value]
