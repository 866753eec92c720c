"""ExGAN networks: Generator, Discriminator, EyeEncoder/EyeDecoder, losses and their config.

`ModelConfig` is imported eagerly (it needs no torch); the networks are imported on first
use, so `from exgan_cli.model import ModelConfig` stays fast for the CLI.
"""

from __future__ import annotations

from exgan_cli.model.config import ADVERSARIAL, MODES, ModelConfig

_LAZY = {
    "Generator": "generator",
    "composite": "generator",
    "Discriminator": "discriminator",
    "EyeEncoder": "encoder",
    "EyeDecoder": "encoder",
    "crop_eye_band": "encoder",
    "band_size": "config",
    "losses": None,
}

__all__ = ["ADVERSARIAL", "MODES", "ModelConfig", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    return module if _LAZY[name] is None else getattr(module, name)
