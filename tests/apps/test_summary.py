"""The summary after open-eyes is readable in an 80-column terminal and a wide one: no line
longer than the console, nothing cut with an ellipsis, every value there in full."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from exgan_cli.commands.summary import Fields, checked_line, eyes_line, print_summary

REFS = "/home/someone/Pictures/Family/2023 summer holiday in Brittany/references for grandma"
WHY2 = ("best of 5 usable: identity distance 0.36, pose diff yaw 13 deg, pitch 10 deg, eyes open "
        "(EAR 0.31/0.23), face 412 px, sharpness 75")


@dataclass
class Face:  # the fields of pipeline.FaceReport that the summary reads
    index: int
    box: tuple
    detector: str
    eyes_before: dict
    status: str
    message: str = ""
    eyes_after: dict | None = None
    reference: dict | None = None
    identity_after: float | None = None
    self_check: dict | None = None


@dataclass
class Outcome:  # retouch_file.Outcome
    photo: Path
    output: Path | None
    faces: list
    weights: str = ""
    rejected: list = field(default_factory=list)


def eyes(left: float, right: float, closed: bool, p: float | None) -> dict[str, Any]:
    return {"left": left, "right": right, "closed": closed, "method": "classifier" if p is not None else "ear",
            "p_closed": p, "ear_closed": closed}


def ref(name: str, distance: float, why: str = WHY2, face: int = 0) -> dict[str, Any]:
    return {"path": f"{REFS}/{name}", "face": face, "distance": distance, "score": 0.52, "why": why}


def attempt(r: dict, passed: bool, reasons: list[str]) -> dict[str, Any]:
    return {"reference": r, "passed": passed, "reasons": reasons}


FAILED_EYES = "eyes not open after in-painting (EAR 0.14/0.12, P(closed) 0.91)"
FAILED_ID = "identity moved away from the reference (distance 0.71 > 0.60)"


# the kept attempt's measures (selfcheck.CheckResult.to_dict) on a 420 px face: colour judged
PASSED = {"eye_contrast": 0.4012, "eye_contrast_min": 0.1925, "sharpness": 2.3886, "sharpness_min": 1.2,
          "colour_tested": True, "colour": 6.31, "colour_max": 25.0, "redness": 1.22, "redness_max": 4.0,
          "blueness": 0.35, "blueness_max": 4.0, "raw_blueness": 2.1, "raw_blueness_max": 7.0,
          "identity_after": 0.4592, "identity_limit": 0.6}
CHECKED = ("contrast 0.40 >= 0.19, detail R 2.39 >= 1.20, iris colour CIE76 6.3 <= 25, a* 1.2 <= 4.0, bluer by 0.3 <= 4.0, "
           "the generator's own cast 2.1 <= 7.0, identity 0.46 <= 0.60")


def outcome(written: bool = True) -> Outcome:
    r1, r2, r3 = ref("IMG_20230714_183012_grandma_garden.jpg", 0.3638), ref("IMG_20230716_101500.jpg", 0.4051), ref("DSC_0042.JPG", 0.4497)
    faces = [
        Face(0, (1204, 918, 1651, 1365), "hog", eyes(0.09, 0.07, True, 0.97), "retouched",
             eyes_after=eyes(0.21, 0.19, False, 0.0), reference=r2, identity_after=0.4592,
             self_check={"enabled": True, "passed": True, "kept": 1,
                         "attempts": [attempt(r1, False, [FAILED_EYES, FAILED_ID]), {**attempt(r2, True, []), **PASSED}]}),
        Face(1, (2210, 1002, 2598, 1390), "cnn", eyes(0.11, 0.10, True, 0.88), "failed self-check",
             message=f"no reference gave eyes that pass the self-check: {Path(r1['path']).name} (face 1): {FAILED_EYES}; "
                     f"{Path(r3['path']).name} (face 1): {FAILED_ID}",
             self_check={"enabled": True, "passed": False, "kept": None,
                         "attempts": [attempt(r1, False, [FAILED_EYES]), attempt(r3, False, [FAILED_ID])]}),
        Face(2, (310, 1100, 640, 1430), "hog", eyes(0.12, 0.13, True, None), "no reference",
             message="no usable reference for face 2: every reference looks like another person (closest distance 0.68 > 0.60)"),
        Face(3, (3010, 990, 3320, 1300), "hog", eyes(0.31, 0.29, False, 0.02), "eyes open"),
    ]
    rejected = [{"path": f"{REFS}/IMG_20230720_094455_blurry.jpg", "face": 0,
                 "reason": "eyes closed (EAR 0.12/0.10, P(closed) 0.97)"},
                {"path": f"{REFS}/group photo with sunglasses.png", "face": 2,
                 "reason": "eyes hidden (dark glasses? eye/cheek luminance 0.41 < 0.55)"}]
    output = Path("/home/someone/Pictures/Family/2023 summer holiday in Brittany/IMG_20230714_grandma_open.jpg")
    return Outcome(Path("/home/someone/Pictures/Family/2023 summer holiday in Brittany/IMG_20230714_grandma.jpg"),
                   output if written else None, faces, "/opt/exgan/weights/exgan-reference-128", rejected)


def render(o: Outcome, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_summary(console, o, 12.34)
    return console.export_text()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("width", [80, 200])
def test_summary_fits_and_is_whole(width):
    o = outcome()
    text = render(o, width)
    lines = text.splitlines()
    # Every line fits but the last: "wrote PATH (...)" is one line, the path whole (the terminal wraps it).
    assert max(len(line) for line in lines[:-1]) <= width
    assert lines[-1] == f"wrote {o.output} (12.3 s, weights /opt/exgan/weights/exgan-reference-128)"
    assert not [line for line in lines if line != line.rstrip()]
    assert "…" not in text and "..." not in text
    words = set(re.findall(r"\S+", text))
    # file names and numbers are never split across lines
    for name in ("IMG_20230714_grandma.jpg:", "IMG_20230716_101500.jpg", "IMG_20230714_183012_grandma_garden.jpg:",
                 "DSC_0042.JPG", "IMG_20230720_094455_blurry.jpg", "0.405", "0.459"):
        assert name in words, name
    f = flat(text)
    for part in (
        "IMG_20230714_grandma.jpg: 4 faces",
        "face 0 (box 1204,918,1651,1365, hog): retouched with IMG_20230716_101500.jpg",
        "eyes before closed: EAR L/R 0.09/0.07, P closed 0.97",
        "reference IMG_20230716_101500.jpg (face 0), distance 0.405",
        f"why {WHY2}",
        "eyes after open: EAR L/R 0.21/0.19, P closed 0.00",
        "identity after 0.459",
        f"self-check passed with reference 2 of 2 tried; failed it: IMG_20230714_183012_grandma_garden.jpg: {FAILED_EYES}, {FAILED_ID}",
        f"checked {CHECKED}",
        "face 1 (box 2210,1002,2598,1390, cnn): failed self-check, left as it was",
        f"note {o.faces[1].message}",
        "face 2 (box 310,1100,640,1430, hog): no reference",
        "eyes before closed: EAR L/R 0.12/0.13 note",  # the EAR rule: no P
        f"note {o.faces[2].message}",
        "face 3 (box 3010,990,3320,1300, hog): eyes open",
        "not used IMG_20230720_094455_blurry.jpg (face 0): eyes closed (EAR 0.12/0.10, P(closed) 0.97)",
        "not used group photo with sunglasses.png (face 2): eyes hidden (dark glasses? eye/cheek luminance 0.41 < 0.55)",
        f"wrote {o.output} (12.3 s, weights /opt/exgan/weights/exgan-reference-128)",
    ):
        assert part in f, part
    if width == 200:  # wide: one line per field
        assert f"  why             {WHY2}" in lines


def test_summary_at_80_columns_layout():
    lines = render(outcome(), 80).splitlines()
    assert lines[1] == "face 0 (box 1204,918,1651,1365, hog): retouched with IMG_20230716_101500.jpg"
    assert lines[2] == "  eyes before     closed: EAR L/R 0.09/0.07, P closed 0.97"
    why = lines.index("  why             best of 5 usable: identity distance 0.36, pose diff yaw 13")
    assert lines[why + 1].startswith(" " * 18) and lines[why + 1][18] != " "  # continued under the value
    assert all(line == line.rstrip() for line in lines if line.startswith("  "))  # no padding


def test_summary_nothing_written_and_markup_safe():
    o = outcome(written=False)
    o.faces = o.faces[2:3]
    o.faces[0].message = "reference [bold]x[/bold].jpg: no face"
    o.rejected = []
    text = render(o, 80)
    assert "nothing written (12.3 s)" in text
    assert "[bold]x[/bold].jpg" in text  # printed as it is, not read as markup
    assert "references" not in text


def test_fields_keep_a_long_word_whole():
    """A path wider than the value column is not folded: it stays one string on a line of its own."""
    path = "/home/someone/Pictures/Family/2023-summer-holiday-in-Brittany/references-for-grandma/IMG_20230716_101500.jpg"
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.print(Fields([("reference", f"{path} (face 0), distance 0.405")]), soft_wrap=True)
    assert console.export_text().splitlines() == [f"  reference  {path}", "             (face 0), distance 0.405"]


def test_fields_narrow_console_stacks_values():
    console = Console(width=30, record=True, file=io.StringIO(), color_system=None)
    console.print(Fields([("identity after", "0.459"), ("why", WHY2)]))
    lines = console.export_text().splitlines()
    assert lines[:3] == ["  identity after", "    0.459", "  why"]
    assert max(map(len, lines)) <= 30 and "…" not in "".join(lines)


def test_checked_line_says_what_was_not_judged():
    assert checked_line(PASSED) == CHECKED
    small = {k: v for k, v in PASSED.items() if not k.startswith(("colour", "redness", "blueness", "raw_"))}
    small["colour_tested"] = False  # a face under selfcheck.COLOUR_MIN_FACE
    assert checked_line(small) == ("contrast 0.40 >= 0.19, detail R 2.39 >= 1.20, iris colour not tested (a face under 150 px), "
                                   "identity 0.46 <= 0.60")
    assert checked_line({}) == ""  # an old report without measures: no line


def test_eyes_line():
    assert eyes_line(eyes(0.087, 0.0749, True, 0.0793)) == "closed: EAR L/R 0.09/0.07, P closed 0.08"
    assert eyes_line(eyes(0.3, 0.25, False, None)) == "open: EAR L/R 0.30/0.25"
    assert eyes_line(None) == ""


def inspection() -> dict[str, Any]:
    """What inspection.inspect_photo returns (the fields print_inspection reads)."""
    refs = [
        {"path": f"{REFS}/IMG_20230716_101500.jpg", "face": 0, "distance": 0.3638, "usable": True, "chosen": True,
         "score": 0.5219, "why": WHY2},
        {"path": f"{REFS}/IMG_20230714_183012_grandma_garden.jpg", "face": 1, "distance": 0.7123, "usable": False,
         "chosen": False, "score": None, "why": "another person (distance 0.71 > 0.60), eyes closed (EAR 0.12/0.10, P(closed) 0.97)"},
        {"path": f"{REFS}/wall.png", "face": None, "distance": None, "usable": False, "chosen": False, "score": None,
         "why": "no face found"},
    ]
    face = {"index": 0, "box": [1204, 918, 1651, 1365], "detector": "hog", "detector_score": 1.34, "eye_state": "closed",
            "eyes": eyes(0.09, 0.07, True, 0.97), "pose": {"yaw": -12.4, "pitch": -10.2, "roll": 3.1}, "width": 447.0,
            "sharpness": 31.2, "references": refs,
            "expression": {"mouth_open": 2.31, "smile_width": 1.84, "cheek": 1.2, "brow": -0.4, "strength": 3.2}}
    other = {**face, "index": 1, "box": [2210, 1002, 2598, 1390], "detector": "cnn", "eye_state": "open",
             "eyes": eyes(0.31, 0.30, False, None)}
    del other["references"], other["expression"]  # an older report: no expression
    return {"photo": "/home/someone/Pictures/IMG_20230714_grandma.jpg", "size": [4032, 3024], "faces": [face, other],
            "eye_state": {"classifier": {"threshold": 0.81}, "ear_threshold": 0.2}}


@pytest.mark.parametrize("width", [80, 200])
def test_inspect_fits_and_is_whole(width, monkeypatch):
    from exgan_cli.commands import inspect as command

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(command, "stdout", console)
    command.print_inspection(inspection())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    words = set(re.findall(r"\S+", text))
    for word in ("IMG_20230716_101500.jpg", "IMG_20230714_183012_grandma_garden.jpg", "wall.png:", "0.364,", "0.522", "0.712"):
        assert word in words, word
    f = flat(text)
    for part in (
        "IMG_20230714_grandma.jpg: 4032 x 3024, 2 faces; eye state by classifier (P(closed) >= 0.81)",
        "face 0 (box 1204,918,1651,1365, hog 1.34): eyes closed",
        "eyes EAR L/R 0.09/0.07, P closed 0.97", "pose yaw -12, pitch -10, roll 3 deg",
        "expression mouth open +2.3, smile width +1.8, cheek +1.2, brow -0.4 (strength 3.2; spreads from a typical face)",
        "width 447 px", "sharpness 31",
        f"reference IMG_20230716_101500.jpg (face 0): chosen, distance 0.364, score 0.522 {WHY2}",
        "reference IMG_20230714_183012_grandma_garden.jpg (face 1): not usable, distance 0.712 another person",
        "reference wall.png: not usable no face found",
        "face 1 (box 2210,1002,2598,1390, cnn 1.34): eyes open eyes EAR L/R 0.31/0.30 pose",
    ):
        assert part in f, part
