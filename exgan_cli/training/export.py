"""Export: a run's EMA generator (and EMA eye encoder in code mode) as a weights folder."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from exgan_cli.errors import OutputError, WeightsError
from exgan_cli.training.card import model_card
from exgan_cli.training.checkpoint import load_module, read_checkpoint
from exgan_cli.training.config import CONFIG_FILE, TrainConfig, dist_env, read_run_config


def export_run(
    run_dir: Path, out: Path, card_extra: str = "", command: str | None = None, overwrite: bool = True
) -> Path:
    """Write the run's EMA generator (and EMA eye encoder in code mode) as a weights folder
    (weights.save_pretrained): model.safetensors, config.json and a README.md model card."""
    from exgan_cli.model.encoder import EyeEncoder
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.weights import save_pretrained

    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / CONFIG_FILE).is_file():
        raise WeightsError(f"{run_dir}: not a training run folder (no {CONFIG_FILE})")
    if not overwrite and out.exists() and any(out.iterdir()):
        raise OutputError(f"{out}: exists and is not empty (use --overwrite)")
    try:
        cfg = TrainConfig.from_dict(read_run_config(run_dir))
    except ValueError as e:
        raise WeightsError(f"{run_dir / CONFIG_FILE}: {e}") from None
    meta, tensors = read_checkpoint(run_dir)
    g = Generator(cfg.model)
    load_module(g, tensors, "ema_g")
    enc = None
    if cfg.model.mode == "code":
        enc = EyeEncoder(cfg.model)
        load_module(enc, tensors, "ema_enc")
    commands = list(meta.get("commands", []))
    if command:
        commands.append(command)
    commands = [portable(c) for c in commands]
    training = {
        "run": run_dir.name,
        "commands": commands,
        "data": cfg.data,
        "data_summary": meta.get("data", {}),
        "steps": meta.get("step"),
        "images_seen": meta.get("images_seen"),
        "wall_time_s": round(float(meta.get("wall_time", 0.0)), 1),
        "hardware": meta.get("hardware", []),
        "val_l1": meta.get("val_l1"),
        "batch_size": cfg.batch_size,
        "world_size": meta.get("world_size", 1),
        "config": cfg.to_dict(),
    }
    training = portable(training)
    card = model_card(cfg, meta, commands, card_extra)
    return save_pretrained(out, g, enc, cfg.model, cfg.align, cfg.mask, card, training)


COMMANDS = ("exgan", "python", "python3", "torchrun")  # how the command lines of a run's provenance begin


def portable(value, base: Path | None = None):
    """``value`` (a string, list or dict, recursively) with the absolute paths in it written
    relative to ``base`` (default: the working directory, usually the repository): a shipped
    config names ../shared/data/lfw, not where it lay on the training machine. A path is a string
    without spaces, or a word (or the value of a ``--flag=``) of a command line that starts with
    one of COMMANDS; other text (a hardware description, a note) is left as it is."""
    base = Path.cwd() if base is None else Path(base)

    def rel(word: str) -> str:
        if word.startswith("--") and "=" in word:
            flag, _, path = word.partition("=")
            return f"{flag}={rel(path)}"
        return os.path.relpath(word, base) if os.path.isabs(word) else word

    if isinstance(value, dict):
        return {k: portable(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v, base) for v in value)
    if not isinstance(value, str) or "/" not in value:
        return value
    if not any(c.isspace() for c in value):
        return rel(value)
    try:
        words = shlex.split(value)
    except ValueError:  # not a command line (an unmatched quote)
        return value
    if not words or Path(words[0]).name not in COMMANDS:
        return value
    moved = [words[0], *(rel(w) for w in words[1:])]  # the program itself stays as it was run
    return shlex.join(moved) if moved != words else value


def command_line() -> str:
    """This process's command line as a user would type it (exgan ..., or torchrun ...)."""
    _, world, _ = dist_env()
    torchrun = world > 1 and "TORCHELASTIC_RUN_ID" in os.environ
    name = Path(sys.argv[0]).name
    if name == "__main__.py":  # python -m exgan_cli
        prog = ["-m", "exgan_cli"] if torchrun else ["python", "-m", "exgan_cli"]
    else:
        prog = ["exgan"] if name == "exgan" or not torchrun else [sys.argv[0]]
    head = ["torchrun", "--nproc_per_node", str(world)] if torchrun else []
    return shlex.join([*head, *prog, *sys.argv[1:]])
