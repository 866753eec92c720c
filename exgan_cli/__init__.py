"""exgan: open closed eyes in photos with Exemplar GANs (Dolhansky & Canton Ferrer, CVPR 2018).

The Python API (exgan_cli/api.py): ``open_eyes``, ``inspect``, ``load_model``, ``find_faces``,
``save_photo``, with ``RetouchOptions`` (every setting) and ``ExganError`` (every user error).
They are imported on first use, so ``import exgan_cli`` (and the CLI's start) stays light.
"""

__version__ = "0.1.0"

__all__ = ["open_eyes", "inspect", "load_model", "find_faces", "save_photo", "RetouchOptions", "ExganError"]

_WHERE = {
    "open_eyes": "exgan_cli.api", "inspect": "exgan_cli.api", "load_model": "exgan_cli.api",
    "find_faces": "exgan_cli.api", "save_photo": "exgan_cli.api",
    "RetouchOptions": "exgan_cli.options", "ExganError": "exgan_cli.errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'exgan_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
