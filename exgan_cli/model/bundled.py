"""Where the default models come from.

The top-level weights/ folder of the repository is the one source of the bundled models. A
wheel (``pip install .``, ``pipx install .``, ``pip wheel .``) carries a copy of it as the data
package ``exgan_cli/_weights`` (pyproject.toml maps the package ``exgan_cli._weights`` to the
folder weights/ and ships each model's config.json, model.safetensors and README.md). A source
checkout, and an editable install (``pip install -e .``) of one, reads weights/ itself.

The first of these that exists wins:

    $EXGAN_WEIGHTS_DIR      "env"       set by the user
    exgan_cli/_weights/     "packaged"  an installed wheel
    <checkout>/weights/     "checkout"  a source checkout or an editable install

This module imports nothing heavy: ``exgan --version`` reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

ENV_VAR = "EXGAN_WEIGHTS_DIR"
DEFAULT_MODEL = "exgan-reference-128"  # the folder under weights/ that open-eyes uses by default (weights.py)
PACKAGED_NAME = "_weights"  # exgan_cli/_weights in a wheel
CHECKOUT_NAME = "weights"  # <checkout>/weights beside exgan_cli/
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # exgan_cli/

_SOURCES = {
    "env": f"${ENV_VAR}",
    "packaged": "packaged with exgan",
    "checkout": "the source checkout's weights/",
    "missing": "not found",
}


@dataclass(frozen=True)
class WeightsLocation:
    path: Path  # the folder holding one sub-folder per model (exgan-reference-128, eye-state, ...)
    source: str  # "env", "packaged", "checkout", or "missing" (then path is where a wheel keeps them)

    def describe(self) -> str:
        """'/path/to/weights (packaged with exgan)', and what is missing when the default model is."""
        text = f"{self.path} ({_SOURCES[self.source]})"
        default = self.path / DEFAULT_MODEL
        if not ((default / "config.json").is_file() and (default / "model.safetensors").is_file()):
            text += f"; {DEFAULT_MODEL} is not there"
        return text


def _has_models(folder: Path) -> bool:
    try:
        return any(p.is_file() for p in folder.glob("*/config.json"))
    except OSError:
        return False


def locate_weights(env: Optional[Mapping[str, str]] = None, package_dir: Optional[Path] = None) -> WeightsLocation:
    """The folder of the bundled models and where it comes from (see the module doc).

    ``env`` (default os.environ) and ``package_dir`` (default: this package's folder) are
    parameters so that the order can be tested on a made-up layout.
    """
    env = os.environ if env is None else env
    value = env.get(ENV_VAR)
    if value:
        return WeightsLocation(Path(value).expanduser(), "env")
    package_dir = PACKAGE_DIR if package_dir is None else Path(package_dir)
    packaged = package_dir / PACKAGED_NAME
    if _has_models(packaged):
        return WeightsLocation(packaged, "packaged")
    checkout = package_dir.parent / CHECKOUT_NAME
    if checkout.is_dir():
        return WeightsLocation(checkout, "checkout")
    return WeightsLocation(packaged, "missing")
