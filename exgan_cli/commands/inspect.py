"""`exgan inspect PHOTO [--ref REF ...] [--json] [--draw out.jpg]`: what the tool sees, changing nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from exgan_cli.commands import options as opt
from exgan_cli.commands.common import guarded, plural, say, stdout
from exgan_cli.commands.options import Detector


@guarded
def inspect(
    photo: Path = typer.Argument(..., metavar="PHOTO", help="Photo to inspect (JPEG, PNG or WebP); it is never modified."),
    ref: list[Path] = opt.ref("Reference photo (repeatable): identity distance and usability per face."),
    ref_dir: Optional[Path] = opt.ref_dir(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of tables."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write a copy of the photo with boxes, eye masks and states."),
    overwrite: bool = opt.overwrite("Replace an existing --draw file."),
    detector: Detector = opt.detector("Face detector: auto (HOG, then dlib's CNN when HOG finds no face), HOG or CNN."),
    identity_threshold: Optional[float] = opt.identity_threshold("Max descriptor distance for the same person [default: 0.6].", min=0.01),
    weights: Optional[str] = opt.weights("Model folder whose eye masks to show [default: bundled model]."),
    cache: bool = opt.cache("Reuse the stored analysis of reference photos seen before (~/.cache/exgan or $EXGAN_CACHE_DIR)."),
) -> None:
    """Show the faces exgan finds in PHOTO: detector, eye state (classifier P(closed) and EARs),
    head pose, eye masks, and with references the identity distances and which references are usable.
    """
    from exgan_cli.files.images import check_output, check_photo, load_image, save_image
    from exgan_cli.apps.inspect import draw_inspection, inspect_photo

    check_photo(photo)
    if draw is not None:
        check_output(draw, overwrite=overwrite, inputs=[photo], image=True)
    info = inspect_photo(photo, ref, ref_dir, detector=detector.value, identity_threshold=identity_threshold, weights=weights, cache=cache)
    if draw is not None:
        image = load_image(photo)
        save_image(draw_inspection(image.pixels, info), draw, like=image, overwrite=overwrite, keep_kind=False)
        info["drawn"] = str(draw)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    print_inspection(info)


def _eyes(e: dict) -> str:
    text = f"EAR L/R {e['left']:.2f}/{e['right']:.2f}"
    text += f", P closed {e['p_closed']:.2f}" if e.get("p_closed") is not None else ""
    return text + (f" ({e['rule']})" if e.get("rule") and e.get("state") in ("closed", "hidden") else "")


STATE_STYLES = {"closed": "red", "narrow": "yellow", "hidden": "dim", "open": "green"}


def _reference(r: dict):
    """One reference of a face: 'name (face 0): chosen, distance 0.364, score 0.522', then why."""
    from rich.text import Text

    head = Text(Path(r["path"]).name + ("" if r["face"] is None else f" (face {r['face']})") + ": ")
    if r["chosen"]:
        head.append("chosen", style="bold green")
    elif r["usable"]:
        head.append("usable")
    else:
        head.append("not usable", style="red")
    if r["distance"] is not None:
        head.append(f", distance {r['distance']:.3f}")
    if r["score"] is not None:
        head.append(f", score {r['score']:.3f}")
    if r.get("pose_difference") is not None:
        head.append(f", pose differs by {r['pose_difference']:.0f}°")
        if not r["within_pose_limit"]:
            head.append(" (beyond the pose limit)", style="yellow")
    if r.get("expression_difference") is not None:
        head.append(f", expression by {r['expression_difference']:.1f}")
    return head + Text("\n" + r["why"], style="dim") if r["why"] else head


def _expression(e: dict) -> str:
    """The face's expression in LFW spreads (0: a typical news-photo face; stages/pose.expression)."""
    measures = ", ".join(f"{k.replace('_', ' ')} {v:+.1f}" for k, v in e.items() if k != "strength")
    return f"{measures} (strength {e['strength']:.1f}; spreads from a typical face)"


def _plan(c: dict) -> str:
    """What the self-check would demand of this face's new eyes with the chosen reference."""
    parts = ["eyes open"]
    if c["eye_contrast_min"] is not None:
        parts.append(f"eye contrast >= {c['eye_contrast_min']:.2f}")
    parts.append(f"sharpness R >= {c['sharpness_min']:.2f}")
    if c["reference_iris_lab"] is not None and c.get("colour_tested", True):
        _, a, b = c["reference_iris_lab"]
        text = f"iris a* {a:+.1f} ± {c['redness_max_difference']:.0f} (the reference's)"
        if "blueness_max_drop" in c:
            text += (f", b* not below {b - c['blueness_max_drop']:+.1f} (the generator's own before the colour "
                     f"match: {b - c['raw_blueness_max_drop']:+.1f})")
        parts.append(text)
    elif c.get("colour_tested") is False:
        parts.append(f"iris colour not tested (a face under {c.get('colour_min_face', 150):.0f} px)")
    parts.append(f"identity distance <= {c['identity_max']:.2f}")
    return "; ".join(parts)


def print_inspection(info: dict) -> None:
    """One block per face (a heading, then indented key/value lines), readable at any width."""
    from rich.text import Text

    from exgan_cli.commands.summary import Fields, print_words

    es = info["eye_state"]
    how = (f"classifier ({es['classifier'].get('rule') or 'P(closed) >= %.2f' % es['classifier']['threshold']})" if es["classifier"]
           else f"EAR rule (< {es['ear_threshold']:.2f})")
    print_words(stdout, Text(f"{Path(info['photo']).name}: {info['size'][0]} x {info['size'][1]}, {plural(len(info['faces']), 'face')}; "
                             f"eye state by {how}", style="bold"))
    if not info["faces"]:
        stdout.print("no face found")
    for f in info["faces"]:
        heading = Text(f"face {f['index']} (box {','.join(map(str, f['box']))}, {f['detector']} {f['detector_score']:.2f}): ",
                       style="bold")
        heading.append(f"eyes {f['eye_state']}", style=STATE_STYLES.get(f["eye_state"], "green"))
        p = f["pose"]
        rows = [
            ("eyes", _eyes(f["eyes"])),
            ("pose", f"yaw {p['yaw']:.0f}, pitch {p['pitch']:.0f}, roll {p['roll']:.0f} deg"),
            ("width", f"{f['width']:.0f} px"),
            ("sharpness", f"{f['sharpness']:.0f}"),
        ]
        if f.get("expression"):
            rows.insert(2, ("expression", _expression(f["expression"])))
        rows += [("reference", _reference(r)) for r in f.get("references", [])]
        if f.get("self_check"):
            rows.append(("self-check", _plan(f["self_check"])))
        print_words(stdout, heading)
        print_words(stdout, Fields(rows))  # a long name stays whole (Fields)
    if info.get("drawn"):
        say(("drew", "green"), f" {info['drawn']}")
