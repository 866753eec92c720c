"""The Python API: a handful of verbs over photos and numpy arrays, the same chain as the CLI.

    import exgan_cli
    result = exgan_cli.open_eyes("closed.jpg", refs=["ref1.jpg", "ref2.jpg"])
    for face in result.faces:
        print(face.index, face.status, face.message)
    exgan_cli.save_photo(result, "open.jpg", like="closed.jpg")

Every verb takes the one settings object, ``exgan_cli.RetouchOptions`` (the CLI's flags), and
raises an ``exgan_cli.ExganError`` subclass with a one-line message for a bad input.
Images are RGB uint8 (H, W, 3); points are (x, y); boxes are (x0, y0, x1, y1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from exgan_cli.apps.inputs import find_faces, load_model, load_references
from exgan_cli.options import RetouchOptions

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["open_eyes", "inspect", "load_model", "find_faces", "save_photo"]


def _pixels(photo: PathLike | np.ndarray) -> np.ndarray:
    from exgan_cli.files.images import load_image

    if isinstance(photo, np.ndarray):
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) array, got {photo.dtype} {photo.shape}")
        return photo
    return load_image(photo).pixels


def open_eyes(
    photo: PathLike | np.ndarray,
    refs: Sequence[PathLike] = (),
    *,
    ref_dir: PathLike | None = None,
    options: RetouchOptions | None = None,
    model: Any = None,
):
    """Open the closed eyes in ``photo`` (a file, or an RGB uint8 array) with reference photos of the same people.

    Returns an ``apps.retouch.RetouchResult``: ``.pixels`` (the retouched photo, RGB uint8; the input
    itself when nothing changed) and ``.faces`` (one FaceReport per face: status, message, the
    reference used, the self-check's verdicts). ``model``: from ``load_model``, to reuse it across
    photos (default: ``options.weights``, else the bundled reference model). Nothing is written.
    """
    from exgan_cli.apps.inputs import require_usable
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.errors import NoFaceError, NoReferenceError

    options = options or RetouchOptions()
    pixels = _pixels(photo)
    name = photo if not isinstance(photo, np.ndarray) else "photo"
    faces, states = find_faces(pixels, options)
    if not faces:
        raise NoFaceError(f"{name}: no face found")
    candidates, rejected = load_references([Path(r) for r in refs], None if ref_dir is None else Path(ref_dir), options)
    require_usable(name, candidates, rejected)  # as open-eyes says it: which reference, and why
    model = model if model is not None else load_model(options.weights, options.device)
    try:
        return retouch(pixels, candidates, model, options, faces=faces, states=states)
    except NoReferenceError as e:  # every face's references rejected (another person, eyes closed)
        raise NoReferenceError(f"{name}: {e}") from None


def inspect(photo: PathLike, refs: Sequence[PathLike] = (), *, ref_dir: PathLike | None = None,
            options: RetouchOptions | None = None) -> dict[str, Any]:
    """What exgan sees in ``photo``, changing nothing: per face the box, eye state, pose, eye masks,
    and with references each one's identity distance, whether it is usable and why, and what the
    self-check would demand. JSON-ready (the same data as ``exgan inspect --json``)."""
    from exgan_cli.apps.inspect import inspect_photo

    options = options or RetouchOptions()
    return inspect_photo(Path(photo), [Path(r) for r in refs], None if ref_dir is None else Path(ref_dir),
                         detector=options.detector, identity_threshold=options.identity_threshold,
                         weights=options.weights, cache=options.cache)


def save_photo(result: Any, path: PathLike, like: PathLike | None = None, *, overwrite: bool = False) -> Path:
    """Write ``result`` (a RetouchResult or an RGB uint8 array) to ``path``, atomically.

    With ``like`` (the original photo) its EXIF, ICC profile and, for a JPEG written as JPEG, its
    compression are kept: only the 8x8 blocks that changed are re-encoded. Returns the path.
    """
    from exgan_cli.files.images import load_image, save_image_info

    pixels = result.pixels if hasattr(result, "pixels") else np.asarray(result)
    source = load_image(like) if like is not None else None
    save_image_info(pixels, path, like=source, overwrite=overwrite)
    return Path(path)
