"""Saving and loading trained ExGAN weights: a folder, or a Hugging Face Hub repository.

A weights folder holds three files:

    model.safetensors  the (EMA) generator's tensors under "generator.", and in code mode the
                       eye encoder's under "encoder." (safetensors: no pickle, nothing executes)
    config.json        {"format": "exgan-1", "model": ModelConfig, "align": AlignConfig,
                        "mask": MaskConfig, "training": free-form provenance}
    README.md          the model card (YAML front matter, then text), as the Hub shows it

The eye-state classifier (stages/eye_classifier.py) keeps the same three files with its own
config format; both are written by write_model_folder, checked by check_model_folder,
read_folder_config and read_model_tensors, and carded by card().

The alignment and mask configs travel with the weights because a generator only works on
faces aligned and masked the way it was trained. The same folder uploaded to the Hub loads
as "owner/name" or "owner/name@revision", through huggingface_hub's cache (HF_HOME,
HF_HUB_CACHE and HF_HUB_OFFLINE are honoured). Every failure is a WeightsError whose one-line
message names the weights and the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from exgan_cli.model.bundled import DEFAULT_MODEL  # the folder under weights/ that open-eyes uses by default
from exgan_cli.errors import ExganError, WeightsError
from exgan_cli.stages.geometry import AlignConfig, MaskConfig
from exgan_cli.model.config import ModelConfig

if TYPE_CHECKING:  # torch is imported only when weights are actually saved or loaded
    import torch

    from exgan_cli.model.encoder import EyeEncoder
    from exgan_cli.model.generator import Generator
    from exgan_cli.model.numpy_nets import NumpyEncoder, NumpyGenerator

FORMAT = "exgan-1"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"

# "owner/name" or "owner/name@revision", as the Hub spells repository ids
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass
class Pretrained:
    model_cfg: ModelConfig
    align_cfg: AlignConfig
    mask_cfg: MaskConfig
    generator: "Generator | NumpyGenerator"  # torch engine: eval mode, gradients off (requires_grad_() to
    # fine-tune), on the device; numpy engine: the same network in numpy (model/numpy_nets.py), CPU, inference only
    encoder: "EyeEncoder | NumpyEncoder | None"  # code mode only
    source: str  # for people: the local path, or "hub:owner/name@commit"
    folder: Path  # where the files are (a snapshot folder in the Hub cache for Hub weights)
    sha256: str  # of model.safetensors
    training: dict = field(default_factory=dict)  # provenance written by the trainer
    device: str = "cpu"  # where the networks run: "cpu", "cuda", "cuda:N"


def bundled_weights_dir() -> Path:
    """The folder of the bundled models: $EXGAN_WEIGHTS_DIR when set, else the copy packaged in
    an installed wheel, else a source checkout's top-level weights/ (bundled.locate_weights)."""
    from exgan_cli.model.bundled import locate_weights

    return locate_weights().path


def resolve_default() -> Path:
    """The folder of the default model, or a WeightsError naming where it should be."""
    folder = bundled_weights_dir() / DEFAULT_MODEL
    if not (folder / CONFIG_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        raise WeightsError(f"default weights not found: {folder} (set EXGAN_WEIGHTS_DIR or pass --weights)")
    return folder


def wants_cpu(name: str = "auto") -> bool:
    """True when device ``name`` means the CPU, known without importing torch: "cpu", or "auto"
    where CUDA cannot be used: no NVIDIA driver (Linux's /proc/driver/nvidia, WSL's /dev/dxg) or
    CUDA_VISIBLE_DEVICES empty. Then the numpy engine runs the model; otherwise torch decides."""
    if name != "auto":
        return name == "cpu"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    driver = Path("/proc/driver/nvidia/version").exists() or Path("/dev/dxg").exists()
    return hidden or not driver


def resolve_device(name: str = "auto") -> "torch.device":
    """"auto" (CUDA when there is a GPU, else CPU), "cpu", "cuda" or "cuda:N"."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or re.fullmatch(r"cuda:\d+", name):
        if not torch.cuda.is_available():
            raise ExganError(f"device {name} requested but no CUDA GPU is available (use --device cpu or auto)")
        return torch.device(name)
    raise ExganError(f"unknown device {name!r} (use auto, cpu or cuda)")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# An absolute path in a card is the training machine's (a data folder, a cache, --out): of no use
# to a reader, and a leak. Only a path that starts a word, after "=", a quote, "(" or "`", counts.
_ABSOLUTE_PATH = re.compile(r"(?<![^\s='\"(`])/[^\s'\"`),;]+")


def portable_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last component (its file or folder name)."""
    return _ABSOLUTE_PATH.sub(lambda m: Path(m.group()).name or m.group(), text)


def card(text: str, pipeline_tag: str, tags: list[str], license: str = "mit") -> str:
    """The README.md of every model folder (the generator's, the eye-state classifier's): the
    YAML front matter the Hub reads, then ``text``, with absolute paths cut to their names."""
    front = ["---", "library_name: exgan", f"license: {license}", f"pipeline_tag: {pipeline_tag}", "tags:"]
    front += [f"- {t}" for t in tags] + ["---", ""]
    return "\n".join(front) + portable_paths(text.strip()) + "\n"


def model_card(model_cfg: ModelConfig, text: str, license: str = "mit", tags: list[str] | None = None) -> str:
    """A generator's README.md for save_pretrained (card() with the generator's tags)."""
    return card(text, "image-to-image", ["exgan", "eye-inpainting", "gan", f"exgan-{model_cfg.mode}", *(tags or [])], license)


def save_pretrained(
    folder: str | Path,
    generator: "Generator",
    encoder: "EyeEncoder | None",
    model_cfg: ModelConfig,
    align_cfg: AlignConfig,
    mask_cfg: MaskConfig,
    card: str,
    training: dict | None = None,
) -> Path:
    """Write model.safetensors, config.json and README.md into `folder` (atomically, see
    write_model_folder); returns the folder."""
    if model_cfg.mode == "code" and encoder is None:
        raise ValueError("a code-mode model needs its eye encoder saved with it")
    if model_cfg.resolution != align_cfg.resolution:
        raise ValueError(f"model resolution {model_cfg.resolution} != alignment resolution {align_cfg.resolution}")
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    if encoder is not None:
        tensors.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
    # safetensors wants plain contiguous CPU tensors, each with its own storage
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    config = {
        "format": FORMAT,
        "model": model_cfg.to_dict(),
        "align": align_cfg.to_dict(),
        "mask": mask_cfg.to_dict(),
        "training": training or {},
    }

    return write_model_folder(folder, tensors, config, card)


def write_model_folder(folder: str | Path, tensors: dict, config: dict, card: str) -> Path:
    """Write model.safetensors, config.json and README.md into ``folder`` atomically.

    The files are written to a temporary folder beside it first. A new folder is then renamed
    into place in one step; in an existing folder each file is replaced by os.replace, so a
    reader never sees a half-written file. Shared by every model folder the project writes.
    """
    from safetensors.torch import save

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would otherwise become the folder's mode
    try:
        (tmp / MODEL_FILE).write_bytes(save(tensors, metadata={"format": "pt"}))  # umask permissions
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD_FILE).write_text(card if card.endswith("\n") else card + "\n", encoding="utf-8")
        if not folder.exists():
            os.rename(tmp, folder)
        else:
            for name in (MODEL_FILE, CONFIG_FILE, CARD_FILE):
                os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_folder_config(path: Path, label: str, fmt: str, keys: set[str]) -> dict:
    """A model folder's config.json, checked: readable JSON, format ``fmt``, only ``keys``
    (plus "format"). ``label`` starts every error line ("weights NAME")."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{label}: cannot read {path}: {e}") from None
    if not isinstance(config, dict) or config.get("format") != fmt:
        got = config.get("format") if isinstance(config, dict) else None
        raise WeightsError(f"{label}: {path} is not an {fmt} config (format: {got!r})")
    unknown = sorted(set(config) - keys - {"format"})
    if unknown:
        raise WeightsError(f"{label}: {path} has unknown keys: {', '.join(unknown)}")
    return config


def read_config(path: Path, name: str) -> tuple[ModelConfig, AlignConfig, MaskConfig, dict]:
    config = read_folder_config(path, f"weights {name}", FORMAT, {"model", "align", "mask", "training"})
    try:
        model_cfg = ModelConfig.from_dict(config.get("model", {}))
        align_cfg = AlignConfig.from_dict(config["align"]) if "align" in config else AlignConfig()
        mask_cfg = MaskConfig.from_dict(config["mask"]) if "mask" in config else MaskConfig()
    except (ValueError, TypeError, KeyError) as e:
        raise WeightsError(f"weights {name}: bad config in {path}: {e}") from None
    if model_cfg.resolution != align_cfg.resolution:
        raise WeightsError(
            f"weights {name}: {path} model resolution {model_cfg.resolution} != align resolution {align_cfg.resolution}"
        )
    training = config.get("training") or {}
    if not isinstance(training, dict):
        raise WeightsError(f"weights {name}: {path} \"training\" must be a JSON object")
    return model_cfg, align_cfg, mask_cfg, training


def check_model_folder(folder: Path, kind: str, name: str) -> None:
    """A local model folder with its config.json and model.safetensors, or a WeightsError
    ("<kind> folder not found", "<kind> <name>: missing <file>")."""
    if not folder.is_dir():
        raise WeightsError(f"{kind} folder not found: {folder}")
    for f in (CONFIG_FILE, MODEL_FILE):
        if not (folder / f).is_file():
            raise WeightsError(f"{kind} {name}: missing {folder / f}")


def read_model_tensors(model_path: Path, label: str, prefixes: tuple[str, ...], framework: str = "pt") -> dict:
    """model.safetensors on the CPU as torch tensors (framework "pt") or numpy arrays ("np"),
    every tensor under one of ``prefixes`` (the modules the folder's format holds); ``label``
    ("weights NAME") starts every error line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(model_path), framework=framework) as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{label}: cannot read {model_path}: {e}") from None
    strays = sorted(k for k in tensors if not k.startswith(prefixes))
    if strays:
        raise WeightsError(f"{label}: {model_path} has unexpected tensors: {', '.join(strays[:3])}")
    return tensors


def load_strict(module: "torch.nn.Module", tensors: dict, prefix: str, name: str, path: Path) -> None:
    """load_state_dict(strict=True), with mismatches reported on one line rather than a dump."""
    got = check_tensors({k: tuple(v.shape) for k, v in module.state_dict().items()}, tensors, prefix, name, path)
    module.load_state_dict(got, strict=True)


def check_tensors(expected: dict[str, tuple[int, ...]], tensors: dict, prefix: str, name: str, path: Path) -> dict:
    """The tensors under ``prefix`` (prefix removed), or a one-line WeightsError when their names
    or shapes are not exactly ``expected`` (a module's state_dict shapes)."""
    got = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{prefix}{k} {tuple(got[k].shape)} vs {tuple(v)}"
        for k, v in expected.items()
        if k in got and tuple(got[k].shape) != tuple(v)
    ]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    where = f"weights {name}: {path}"
    if missing:
        raise WeightsError(f"{where} lacks {len(missing)} tensors: {some([prefix + k for k in missing])}")
    if unexpected:
        raise WeightsError(f"{where} has {len(unexpected)} unexpected tensors: {some([prefix + k for k in unexpected])}")
    if shapes:
        raise WeightsError(f"{where} has tensors of the wrong shape (file vs model): {some(shapes)}")
    return got


def load_pretrained(
    spec: str | Path, device: "str | torch.device" = "cpu", revision: str | None = None, sha256: str | None = None,
    engine: str = "torch",
) -> Pretrained:
    """Load weights from a local folder or a Hub repo ("owner/name", "owner/name@revision").

    A string is a local folder when that folder exists or it looks like a path (starts with
    '.', '/' or '~'); otherwise a Hub repository id. `sha256`, when given, must match the hash
    of model.safetensors (pin the exact weights, wherever they come from). ``engine`` "numpy"
    gives the same networks run by numpy on the CPU (model/numpy_nets.py): no torch import.
    """
    name = str(spec)
    local = isinstance(spec, Path) or Path(name).expanduser().exists() or name.startswith((".", "/", "~"))
    if not local and not _HUB_ID.match(name):
        raise WeightsError(f"weights {name}: no such folder, and not a Hub repo id (owner/name[@revision])")
    if local:
        if revision:
            raise WeightsError(f"weights {name}: a revision only applies to Hub repos, not local folders")
        folder = Path(name).expanduser()
        check_model_folder(folder, "weights", name)
        source = str(folder)
    else:
        from exgan_cli.model.hub import fetch_from_hub

        folder, source = fetch_from_hub(name, revision, (CONFIG_FILE, MODEL_FILE))

    model_cfg, align_cfg, mask_cfg, training = read_config(folder / CONFIG_FILE, name)
    model_path = folder / MODEL_FILE
    digest = file_sha256(model_path)
    if sha256 is not None and digest != sha256.strip().lower():
        raise WeightsError(f"weights {name}: {model_path} has sha256 {digest}, expected {sha256}")
    tensors = read_model_tensors(model_path, f"weights {name}", ("generator.", "encoder."), "np" if engine == "numpy" else "pt")
    if model_cfg.mode != "code" and any(k.startswith("encoder.") for k in tensors):
        raise WeightsError(f"weights {name}: {model_path} has encoder tensors but the model mode is {model_cfg.mode}")
    if engine not in ("numpy", "torch"):
        raise ValueError(f"engine must be numpy or torch, not {engine!r}")
    build = _numpy_networks if engine == "numpy" else _torch_networks
    generator, encoder, dev = build(model_cfg, tensors, name, model_path, device)
    return Pretrained(model_cfg, align_cfg, mask_cfg, generator, encoder, source, folder, digest, training, dev)


def _numpy_networks(cfg: ModelConfig, tensors: dict, name: str, path: Path, device) -> tuple:
    from exgan_cli.model import numpy_nets as npn

    if str(device) != "cpu":
        raise WeightsError(f"weights {name}: the numpy engine runs on the CPU only, not {device}")
    generator = npn.NumpyGenerator(cfg, check_tensors(npn.generator_shapes(cfg), tensors, "generator.", name, path))
    encoder = None
    if cfg.mode == "code":
        encoder = npn.NumpyEncoder(cfg, check_tensors(npn.encoder_shapes(cfg), tensors, "encoder.", name, path))
    return generator, encoder, "cpu"


def _torch_networks(cfg: ModelConfig, tensors: dict, name: str, path: Path, device) -> tuple:
    import torch

    from exgan_cli.model.encoder import EyeEncoder
    from exgan_cli.model.generator import Generator

    generator = Generator(cfg)
    load_strict(generator, tensors, "generator.", name, path)
    encoder = None
    if cfg.mode == "code":
        encoder = EyeEncoder(cfg)
        load_strict(encoder, tensors, "encoder.", name, path)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    # channels_last weights make every convolution run NHWC (the input is converted once):
    # ~1.35x faster on CPU with oneDNN, and the tensor-core layout on CUDA. Results are the same.
    generator = generator.to(dev, memory_format=torch.channels_last).eval().requires_grad_(False)
    if encoder is not None:
        encoder = encoder.to(dev, memory_format=torch.channels_last).eval().requires_grad_(False)
    return generator, encoder, str(dev)
