"""The rich summary printed after a retouch: one block per face.

A table with a column per field wrapped every cell into fragments in an 80-column terminal, so
each face gets a heading line (index, box, detector, what happened) and then one indented
"key  value" line per field; long values wrap under their own column, never cut.

    hugo_chavez_closed.jpg: 1 face(s)
    face 0 (box 81,91,171,182, hog): retouched with hugo_chavez_2.jpg
      eyes before     closed: EAR L/R 0.09/0.07, P closed 0.08
      reference       hugo_chavez_2.jpg (face 0), distance 0.364
      why             best of 3 usable: identity distance 0.36, pose diff yaw 13 deg, ...
      eyes after      open: EAR L/R 0.21/0.19, P closed 0.00
      identity after  0.459
      checked         contrast 0.20 >= 0.19, detail R 2.39 >= 0.60, iris colour not tested
                      (a face under 150 px), identity 0.44 <= 0.60
    wrote out.jpg (8.9 s, weights weights/exgan-reference-128)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from exgan_cli.commands.common import plural


def eyes_line(e: dict | None) -> str:
    """ "closed: EAR L/R 0.09/0.08, P closed 0.99" (P only when the classifier ran); the state is
    open, narrow, closed or hidden."""
    if not e:
        return ""
    state = e.get("state") or ("closed" if e["closed"] else "open")
    text = f"{state}: EAR L/R {e['left']:.2f}/{e['right']:.2f}"
    if e.get("p_closed") is not None:
        text += f", P closed {e['p_closed']:.2f}"
    return text


KEY_WIDTH = len("identity after")  # the longest key: every block's values start in the same column


def _name(path: str | Path) -> str:
    return Path(path).name


class Fields:
    """Indented "key  value" lines. A long value wraps under itself, at spaces, to the console's
    width; a word wider than the whole value column (a long path) stays whole on a line of its
    own, past the width (print with ``soft_wrap=True``, so that the console does not cut it);
    nothing is cut with an ellipsis, and no line is padded with trailing spaces. Below 20 columns
    for values, each value goes on the lines under its key."""

    def __init__(self, rows: Iterable[tuple[str, str | Text]], indent: int = 2, gap: int = 2, key_width: int = 0):
        self.rows = [(k, v if isinstance(v, Text) else Text(v)) for k, v in rows]
        self.indent, self.gap, self.key_width = indent, gap, key_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.rows:
            return
        key_width = max(self.key_width, *(len(k) for k, _ in self.rows))
        value_width = options.max_width - self.indent - key_width - self.gap
        stacked = value_width < 20
        if stacked:
            value_width = max(1, options.max_width - 2 * self.indent)
        for key, value in self.rows:
            for i, line in enumerate(wrap_words(value, value_width)):
                if stacked:
                    if i == 0 and key:
                        yield Text(" " * self.indent + key, style="dim")
                    yield Text(" " * (2 * self.indent)) + line
                else:
                    yield Text.assemble(" " * self.indent, ((key if i == 0 else "").ljust(key_width), "dim"),
                                        " " * self.gap, line)


def wrap_words(text: Text, width: int) -> list[Text]:
    """``text``'s lines wrapped at spaces to ``width`` (greedily, as rich does), its styles kept;
    a word longer than ``width`` stays whole on a line of its own (rich would fold or crop it)."""
    out = []
    for line in text.split("\n", allow_blank=True):
        offsets, start = [], 0
        for word in re.finditer(r"\S+", line.plain):
            if word.end() - start > width and word.start() > start:
                offsets.append(word.start())  # the word starts the next line
                start = word.start()
        for part in line.divide(offsets):
            part.rstrip()
            out.append(part)
    return out


def _heading(f) -> Text:
    ref = f.reference or {}
    where = f"face {f.index} (box {','.join(str(v) for v in f.box)}, {f.detector}): "
    text = Text(where, style="bold")
    if f.status == "retouched":
        text.append("retouched", style="green")
        if ref:
            text.append(f" with {_name(ref['path'])}")
    elif f.status == "failed self-check":
        text.append("failed self-check, left as it was", style="yellow")
    else:
        text.append(f.status)
    return text


def face_rows(f) -> list[tuple[str, str]]:
    """The key/value lines of one face (FaceReport or its to_dict() as an object)."""
    ref = f.reference or {}
    rows: list[tuple[str, str]] = [("eyes before", eyes_line(f.eyes_before))]
    if f.message:
        rows.append(("note", f.message))
    if ref:
        rows.append(("reference", f"{_name(ref['path'])} (face {ref['face']}), distance {ref['distance']:.3f}"))
        if ref.get("why"):
            rows.append(("why", ref["why"]))
    if f.eyes_after:
        rows.append(("eyes after", eyes_line(f.eyes_after)))
    if f.identity_after is not None:
        rows.append(("identity after", f"{f.identity_after:.3f}"))
    check = getattr(f, "self_check", None) or {}
    attempts = check.get("attempts", [])
    failed = [a for a in attempts if not a["passed"]]
    if check.get("enabled") and failed and f.status == "retouched":
        kept = check.get("kept")
        which = f"{kept + 1} of {len(attempts)} tried" if isinstance(kept, int) else f"{len(failed) + 1}"
        rows.append(("self-check", f"passed with reference {which}; failed it:"))
        for a in failed:
            rows.append(("", f"{_name(a['reference']['path'])}: {', '.join(a['reasons'])}"))
    if check.get("enabled") and f.status == "retouched" and isinstance(check.get("kept"), int) and attempts:
        rows.append(("checked", checked_line(attempts[check["kept"]])))
    elif check and not check.get("enabled") and f.status == "retouched":
        rows.append(("self-check", "off: result not checked"))
    return [(k, v) for k, v in rows if v]


def checked_line(a: dict) -> str:
    """What the kept result passed, measure against limit ("contrast 0.40 >= 0.19, detail R 2.39 >=
    0.60, iris colour not tested (a face under 150 px), identity 0.44 <= 0.60"): a photographer sees
    how close each call was, and which tests did not apply to this face."""
    from exgan_cli.stages.selfcheck import COLOUR_MIN_FACE

    def has(*keys: str) -> bool:
        return all(a.get(k) is not None for k in keys)

    parts = []
    if has("eye_contrast", "eye_contrast_min"):
        parts.append(f"contrast {a['eye_contrast']:.2f} >= {a['eye_contrast_min']:.2f}")
    if has("sharpness", "sharpness_min"):
        parts.append(f"detail R {a['sharpness']:.2f} >= {a['sharpness_min']:.2f}")
    if has("colour", "redness", "blueness"):
        parts.append(f"iris colour CIE76 {a['colour']:.1f} <= {a['colour_max']:.0f}, a* {a['redness']:.1f} <= "
                     f"{a['redness_max']:.1f}, bluer by {a['blueness']:.1f} <= {a['blueness_max']:.1f}")
        if has("raw_blueness", "raw_blueness_max"):
            parts.append(f"the generator's own cast {a['raw_blueness']:.1f} <= {a['raw_blueness_max']:.1f}")
    elif a.get("colour_tested") is False:
        parts.append(f"iris colour not tested (a face under {COLOUR_MIN_FACE:.0f} px)")
    if has("identity_after", "identity_limit"):
        parts.append(f"identity {a['identity_after']:.2f} <= {a['identity_limit']:.2f}")
    return ", ".join(parts)


def print_words(console: Console, renderable: Text | Fields) -> None:
    """A heading wrapped at spaces to the console's width, or Fields; never cut inside a word."""
    for line in wrap_words(renderable, console.width) if isinstance(renderable, Text) else [renderable]:
        console.print(line, soft_wrap=True)


def print_summary(console: Console, outcome, seconds: float) -> None:
    """The summary on ``console`` (stderr): blocks wrapped at spaces, never inside a word (a
    long path stays whole on a line of its own), and the last line, "wrote PATH ...", one line."""
    def show(renderable) -> None:
        print_words(console, renderable)

    show(Text(f"{outcome.photo.name}: {plural(len(outcome.faces), 'face')}", style="bold"))
    for f in outcome.faces:
        show(_heading(f))
        show(Fields(face_rows(f), key_width=KEY_WIDTH))
    if outcome.rejected:
        show(Text("references", style="bold"))
        show(Fields((("not used", f"{_name(r['path'])} (face {r['face']}): {r['reason']}") for r in outcome.rejected),
                    key_width=KEY_WIDTH))
    if outcome.output:
        line = Text.assemble(("wrote", "green"), f" {outcome.output} ({seconds:.1f} s, weights {outcome.weights})")
    else:
        line = Text(f"nothing written ({seconds:.1f} s)")
    console.print(line, soft_wrap=True)
