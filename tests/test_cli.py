"""The command line itself: every help page at 80 columns, and what goes to stdout and stderr."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from exgan_cli.cli import app

COMMANDS = ["open-eyes", "batch", "inspect", "train", "export", "evaluate"]
BOX = "│╭╮╰╯─"


def help_page(*command: str, columns: int = 80) -> str:
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.output


def words(page: str) -> str:
    """The page's text with its panels' borders and every line break and run of spaces gone."""
    return " ".join(page.translate({ord(c): " " for c in BOX}).split())


def helps(command: str, toggles: bool = True) -> list[str]:
    """Each parameter's help text as written in the source, whitespace normalised (``toggles``
    False: not those of --x/--no-x options, whose second name shares their help's second line)."""
    cmd = get_command(app).commands[command]
    return [" ".join(p.help.split()) for p in cmd.params
            if getattr(p, "help", None) and (toggles or not getattr(p, "secondary_opts", None))]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_fits_80_columns_and_nothing_is_cut(command):
    page = help_page(*filter(None, [command]))
    lines = page.splitlines()
    assert "…" not in page
    assert max(len(line) for line in lines) <= 80
    assert not [line for line in lines if line != line.rstrip()]  # no trailing spaces
    # Typer's own layout ran open-eyes to 177 lines and batch to 201 at 80 columns.
    assert len(lines) <= {"open-eyes": 80, "batch": 90}.get(command, 65), len(lines)
    for placeholder in ("<bool>", "<list[", "<path>", "<str>", "{"):
        assert placeholder not in page, placeholder


@pytest.mark.parametrize("command", COMMANDS)
def test_help_keeps_every_bracket_and_every_word(command):
    """Help text is plain text, not rich markup: '[default: 0.6]' is shown, and no word is lost."""
    text = words(help_page(command))
    for h in helps(command):
        for bracket in re.findall(r"\[[^\]]*\]", h):
            assert bracket in text, (command, bracket)
    missing = [h for h in helps(command, toggles=False) if h not in text]
    assert not missing, missing


def test_open_eyes_help_shows_the_defaults_the_source_gives():
    text = words(help_page("open-eyes"))
    assert "Usage: exgan open-eyes [OPTIONS] PHOTO" in text
    assert "Output file [default: <stem>_open<ext> beside the input]." in text
    assert "Hub id OWNER/NAME[@REVISION] [default: bundled reference model]" in text
    assert "same-person reference [default: 0.6]" in text
    assert "--ref, -r PHOTO" in text and "--overwrite Replace" in text  # ordinary metavars, none on flags
    for panel in ("Faces and references", "Model and retouch"):  # the rarer flags grouped
        assert f"╭─ {panel} " in help_page("open-eyes")


def test_usage_lines_use_plain_metavars():
    assert "Usage: exgan batch [OPTIONS] ALBUM" in help_page("batch")
    assert "Usage: exgan export [OPTIONS] RUN_DIR" in help_page("export")
    assert "Usage: exgan inspect [OPTIONS] PHOTO" in help_page("inspect")


def test_train_help_says_data_is_required_and_train_without_it_says_so_on_one_line():
    text = words(help_page("train"))
    assert "--data DIR Data folder: one sub-folder of photos per person (e.g. LFW). Required unless --cache" in text
    assert "runs/DATE-TIME-MODE-RESOLUTION" in text
    res = CliRunner().invoke(app, ["train"])
    assert res.exit_code == 9
    assert res.output.splitlines() == ["error: no data to train on: give a data folder (--data DIR), a prepared face "
                                       "cache (--cache FILE), or a run to --resume"]


def test_command_list_wraps_only_where_a_line_is_full():
    """Each command's description is one line of thought: a line of it ends only where the next
    word would not fit (the inspect entry used to break mid-sentence at its docstring's newline)."""
    page = help_page()
    panel = page[page.index("╭─ Commands"):].strip().splitlines()[1:-1]
    cells = [line[2:-2] for line in panel]
    name_width = max(len(c.split()[0]) for c in cells if not c.startswith(" "))
    help_width = 80 - 4 - name_width - 2
    helps_ = [c[name_width + 2:].rstrip() for c in cells]
    for i in range(len(cells) - 1):
        if cells[i + 1].startswith(" "):  # the next line goes on with this command's text
            assert len(helps_[i]) + 1 + len(helps_[i + 1].split()[0]) > help_width, (helps_[i], helps_[i + 1])
    assert "inspect Show the faces exgan finds in PHOTO: detector, eye state (classifier P(closed) and EARs), head pose" in words(page)


def test_narrow_terminal_puts_help_under_the_names():
    page = help_page("open-eyes", columns=40)
    assert "…" not in page and max(len(line) for line in page.splitlines()) <= 40
    assert "--identity-threshold FLOAT" in page  # whole, on a line of its own
    assert "[default: <stem>_open<ext> beside the input]" in words(page)
