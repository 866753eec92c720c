"""Help pages a person can read at 80 columns: every command's ``--help``, and ``exgan --help``.

Typer's own rich help lays an option out in six columns (required mark, name, short name,
negative name, type, help), which at 80 columns leaves the help ~16 characters, cuts option
names with "…", shows ``<bool>`` on flags and ``{photo}`` in the usage line, and reads the help
as rich markup, so that text in square brackets (``[default: ...]``) disappears. Here each panel
(``rich_help_panel``; the rarer flags have their own) is two columns: the option's names with an
ordinary metavar (``--ref, -r PATH``; none on flags; a negative flag on a line of its own), and
its help, wrapped, never cut, taken as plain text. The commands list gives each command's first
paragraph on one line of thought (a docstring's line breaks are not sentence breaks).

Only click's public parameter attributes are read, and typer's type description where the
installed typer has one (``type_descriptor``), else click's ``param.type``.
"""

from __future__ import annotations

import inspect
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import typer.core
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

NAME_STYLE, METAVAR_STYLE, DIM = "bold cyan", "yellow", "dim"
DEFAULT_PANEL, ARGUMENTS_PANEL, COMMANDS_PANEL = "Options", "Arguments", "Commands"
MIN_HELP_WIDTH = 30  # columns: below this a panel puts each help under its option's names
_BY_TYPE = {Path: "PATH", int: "N", float: "FLOAT", str: "TEXT"}
_BY_CLICK_NAME = {"path": "PATH", "integer": "N", "float": "FLOAT", "text": "TEXT", "file": "FILE"}


def metavar(param: Any) -> str:
    """The placeholder for the option's value: its own metavar, the choices ("auto|hog|cnn"),
    PATH, N, FLOAT or TEXT; "" for a flag."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    if param.metavar:
        return param.metavar
    desc = getattr(param, "type_descriptor", None)  # typer's own description of the type
    if desc is not None:
        if desc.is_choice:
            return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
        kind = desc.annotation
        while typing.get_args(kind):  # list[Path], Optional[int]: the element type
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        return _BY_TYPE.get(kind, getattr(kind, "__name__", "VALUE").upper())
    kind = getattr(param, "type", None)  # click's types
    if getattr(kind, "choices", None):
        return "|".join(str(getattr(c, "value", c)) for c in kind.choices)
    name = str(getattr(kind, "name", "value"))
    return _BY_CLICK_NAME.get(name.split()[0], name.upper())


def argument_name(param: Any) -> str:
    """An argument as the usage line shows it: PHOTO, [PHOTO], PHOTO..."""
    name = param.metavar or param.name.upper()
    name = name if param.required else f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


def _default(param: Any) -> str:
    """The default worth showing: a choice, a number, the on/off form of a toggle; "" for none."""
    value = param.default
    if param.required or value is None or value is False or value in ([], ()) or callable(value):
        return ""
    if getattr(param, "is_flag", False):
        secondary = getattr(param, "secondary_opts", [])
        return (param.opts[0] if value else secondary[0]) if secondary else ""
    return str(value.value if isinstance(value, Enum) else value)


def _names(param: Any) -> Text:
    """'--ref, -r PATH'; a toggle's negative form on a line of its own."""
    if param.param_type_name == "argument":
        return Text(argument_name(param), style=METAVAR_STYLE)
    opts = sorted(param.opts, key=lambda o: not o.startswith("--"))
    text = Text(", ".join(opts), style=NAME_STYLE)
    if mv := metavar(param):
        text.append(" " + mv, style=METAVAR_STYLE)
    for negative in getattr(param, "secondary_opts", []):
        text.append("\n" + negative, style=NAME_STYLE)
    return text


def _help(param: Any) -> Text:
    text = Text(" ".join(inspect.cleandoc(getattr(param, "help", None) or "").split()))
    extra = [f"default: {d}"] if (d := _default(param)) else []
    extra += ["required"] if param.required else []
    if extra:
        text.append(("  " if text else "") + f"[{'; '.join(extra)}]", style=DIM)
    return text


def _panel(title: str, rows: list[tuple[Text, Text]], width: int) -> Panel:
    """Names and help side by side; in a terminal too narrow for that (help under 30 columns),
    each help under its names, indented."""
    names_width = max((cell_width(names) for names, _ in rows), default=0)
    table = Table.grid(padding=(0, 2))
    if width - 4 - names_width - 2 >= MIN_HELP_WIDTH:
        table.add_column(no_wrap=True, overflow="fold")  # never cut with an ellipsis
        table.add_column(overflow="fold")
        for row in rows:
            table.add_row(*row)
    else:
        table.add_column(overflow="fold")
        for names, help in rows:
            table.add_row(names)
            table.add_row(Padding(help, (0, 0, 0, 4)))
    return Panel(table, title=title, title_align="left", border_style=DIM, box=box.ROUNDED)


def cell_width(text: Text) -> int:
    return max((len(line) for line in text.plain.splitlines()), default=0)


def _paragraphs(doc: str | None) -> list[str]:
    """A docstring's paragraphs, each on one line (click's "\\b" paragraphs keep their breaks)."""
    out = []
    for para in inspect.cleandoc(doc or "").partition("\f")[0].split("\n\n"):
        para = para.strip("\n")
        if para:
            out.append(para.lstrip("\b\n") if para.startswith("\b") else " ".join(para.split()))
    return out


def _description(command: Any) -> list[tuple[str, str]]:
    """(paragraph, style): the first paragraph plain, the rest dim."""
    return [(para, "" if i == 0 else DIM) for i, para in enumerate(_paragraphs(command.help))]


def _param_panels(command: Any, ctx: Any) -> list[tuple[str, list[tuple[Text, Text]]]]:
    """(title, rows): one panel per ``rich_help_panel`` in the order first met: Arguments, Options, then the rest."""
    panels: dict[str, list[tuple[Text, Text]]] = {ARGUMENTS_PANEL: [], DEFAULT_PANEL: []}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        default = ARGUMENTS_PANEL if param.param_type_name == "argument" else DEFAULT_PANEL
        panels.setdefault(getattr(param, "rich_help_panel", None) or default, []).append((_names(param), _help(param)))
    return [(title, rows) for title, rows in panels.items() if rows]


def short_help(command: Any) -> str:
    """A command's first paragraph, its line breaks joined: what `exgan --help` lists."""
    if command.short_help:
        return command.short_help
    paragraphs = _paragraphs(command.help)
    return paragraphs[0] if paragraphs else ""


def _print(ctx: Any, command: Any, panels: list[tuple[str, list[tuple[Text, Text]]]]) -> None:
    """The usage line, the description (indented one column, no line padded with spaces), the panels."""
    console = Console(highlight=False)  # this moment's stdout, width from the terminal or $COLUMNS
    usage = Text("Usage: ", style="yellow") + Text(command.get_usage(ctx).removeprefix("Usage: "), style="bold")
    console.print()
    for para, style in [(usage, ""), *_description(command)]:
        for line in Text(para, style=style).wrap(console, max(20, console.width - 2)) if isinstance(para, str) else [para]:
            line.rstrip()
            console.print(Text(" ") + line, soft_wrap=True)
        console.print()
    for title, rows in panels:
        console.print(_panel(title, rows, console.width))


class Command(typer.core.TyperCommand):
    """A command whose --help is laid out by this module."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        args = [argument_name(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return [self.options_metavar or "[OPTIONS]", *args]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _print(ctx, self, _param_panels(self, ctx))


class Group(typer.core.TyperGroup):
    """`exgan` itself: its options and the commands, one line of thought each."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        commands = [(name, cmd) for name in self.list_commands(ctx) if (cmd := self.get_command(ctx, name)) and not cmd.hidden]
        rows = [(Text(name, style=NAME_STYLE), Text(short_help(cmd))) for name, cmd in commands]
        _print(ctx, self, [*_param_panels(self, ctx), (COMMANDS_PANEL, rows)])
