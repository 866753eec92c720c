"""Open or closed eyes from pixels: a small CNN over the fixed eye band of the aligned face.

Why not only the eye aspect ratio (eye_state.py)? EAR reads the lids from dlib's 68 landmarks, and
on small, turned or tilted faces dlib draws open lids over closed eyes (its shape model's bias):
the EAR rule catches 73% of CEW's closed faces while flagging 8.6% of LFW (docs/eye_state.md).
The classifier looks at the pixels instead, in a region that does not depend on where the
landmarks put the lids: the face is aligned with the same five-point similarity as everywhere
else (geometry.align_face, 128 px) and the fixed box geometry.eye_band (both eyes and brows,
2:1) is cut from it, turned grey, resized to 64 x 32 and standardised (mean 0, std 1 per
image). The network answers P(closed) for the face (both eyes).

Weights live in a model folder like the generator's (weights/eye-state/, model/weights.py):
model.safetensors (tensors under "net."), config.json ({"format": "exgan-eye-state-1", "model":
EyeNetConfig, "align": AlignConfig, "threshold": P(closed) cut, "ear_below": EAR cut, "lean_ear_below"
and "lean_threshold": the EAR-rule band, "decision": how the cuts were chosen, "training": provenance})
and README.md (the card).

The decision (``EyeClassifier.decide``): closed <=> P(closed) >= threshold, or both eyes' EAR <
ear_below, or both eyes' EAR < lean_ear_below and P(closed) >= lean_threshold. The second and third
parts are the EAR kept as a feature where it is reliable: CEW's closed faces are mostly young, often
made-up women in stock photos while LFW's are mostly older men in news photos, so a network
trained on them learns the closed eyes of the first kind best; on frontal news faces dlib's
landmarks are good, and a very low EAR is a closed eye. News photos' half-closed blinks sit
between (both EARs 0.16 to 0.21, P(closed) often near 0): there the EAR rule's own verdict (both EARs
< 0.21) counts when the network leans closed at all (lean_threshold). The cuts are calibrated on
persons the benchmark never scores (benchmarks/eye_blinks.py; docs/eye_state.md, issue #14). Loading is strict: every problem is a WeightsError naming the file.

This module is inference only; training is exgan_cli/training/eye_classifier.py.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exgan_cli.errors import WeightsError
from exgan_cli.stages.geometry import AlignConfig

if TYPE_CHECKING:  # torch only when the classifier is used
    import torch

FORMAT = "exgan-eye-state-1"
FOLDER = "eye-state"  # under weights/ (weights.bundled_weights_dir())
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# Not closed, and the larger EAR below this: narrowed eyes (a smile, a squint), unless the config's
# narrow_ear_below says otherwise; eye_state's EAR rule uses it too. Of the tuning persons' LFW faces a
# person labelled narrow, 93% have their larger EAR below 0.23; of those labelled open or not labelled,
# 0.8% (benchmarks/eye_blinks.py, train/eye_state_labels.json).
NARROW_EAR_BELOW = 0.23
CONFIG_KEYS = {"model", "align", "threshold", "ear_below", "open_below", "narrow_ear_below", "lean_ear_below", "lean_threshold",
               "decision", "training"}


@dataclass(frozen=True)
class EyeNetConfig:
    width: int = 64  # network input width (px): the eye band resized to width x height
    height: int = 32  # network input height (px); the band is 2:1
    channels: tuple[int, ...] = (16, 32, 64, 64)  # conv widths; 2x2 max-pool between stages
    band_scale: tuple[float, float] = (1.0, 1.0)  # (w, h) of the region cut, relative to geometry.eye_band
    use_ear: bool = False  # also feed the two EARs (left, right) to the last layer

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["band_scale"] = list(self.band_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EyeNetConfig":
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object, not {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        kw = dict(d)
        if "channels" in kw:
            kw["channels"] = tuple(int(c) for c in kw["channels"])
        if "band_scale" in kw:
            kw["band_scale"] = tuple(float(v) for v in kw["band_scale"])
            if len(kw["band_scale"]) != 2 or min(kw["band_scale"]) <= 0:
                raise ValueError(f"band_scale must be two positive numbers, not {d['band_scale']}")
        for k in ("width", "height"):
            if k in kw:
                kw[k] = int(kw[k])
        if "use_ear" in kw and not isinstance(kw["use_ear"], bool):
            raise ValueError("use_ear must be true or false")
        cfg = cls(**kw)
        if cfg.width < 8 or cfg.height < 8 or not cfg.channels or min(cfg.channels) < 1:
            raise ValueError(f"bad sizes: {cfg}")
        return cfg



# ---------------------------------------------------------------------------------------
# Input: the eye band of the aligned face


def band_matrix(align: AlignConfig, cfg: EyeNetConfig) -> np.ndarray:
    """2x3 matrix from aligned-crop coordinates to network-input coordinates: the eye band
    geometry.eye_band, scaled about its centre by cfg.band_scale, stretched to cfg.width x
    cfg.height."""
    from exgan_cli.stages.geometry import eye_band

    x0, y0, x1, y1 = eye_band(align.resolution, align.template)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) / 2 * cfg.band_scale[0], (y1 - y0) / 2 * cfg.band_scale[1]
    x0, y0, x1, y1 = cx - hw, cy - hh, cx + hw, cy + hh
    sx, sy = cfg.width / (x1 - x0), cfg.height / (y1 - y0)
    return np.array([[sx, 0.0, -sx * x0], [0.0, sy, -sy * y0]], dtype=np.float64)


def standardise(grey: np.ndarray) -> np.ndarray:
    """float32 (H, W) with mean 0 and std 1 (std floored: a flat patch stays flat, not noise)."""
    g = grey.astype(np.float32)
    return (g - g.mean()) / max(float(g.std()), 4.0)


def band_from_crop(crop: np.ndarray, align: AlignConfig, cfg: EyeNetConfig, matrix: np.ndarray | None = None) -> np.ndarray:
    """Network input (cfg.height, cfg.width) float32 from an aligned face crop (R, R, 3) uint8.

    ``matrix``: crop -> input (default: band_matrix); training passes a jittered one.
    """
    import cv2

    m = band_matrix(align, cfg) if matrix is None else matrix
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    # the band is ~82 x 41 px of a 128 px crop: a mild reduction, INTER_AREA would need a resize
    # first; linear interpolation with a slight pre-blur keeps it alias-free
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.9:
        sigma = 0.5 * (1.0 / scale - 1.0) + 1e-3
        grey = cv2.GaussianBlur(grey, (0, 0), sigma)
    band = cv2.warpAffine(grey, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return standardise(band)


def band_from_photo(rgb: np.ndarray, landmarks: np.ndarray, align: AlignConfig, cfg: EyeNetConfig) -> np.ndarray:
    """Network input for one face of a photo (RGB uint8) from its 68 landmarks."""
    from exgan_cli.stages.geometry import align_face

    crop, _ = align_face(rgb, landmarks, align)
    return band_from_crop(crop, align, cfg)


# ---------------------------------------------------------------------------------------
# The network


def build_net(cfg: EyeNetConfig) -> "torch.nn.Module":
    import torch
    import torch.nn as nn

    class EyeStateNet(nn.Module):
        """Conv-BN-ReLU stages with 2x2 max-pooling between them, global average pooling,
        one linear layer to the logit of P(closed) (~60k parameters at the defaults)."""

        def __init__(self, cfg: EyeNetConfig):
            super().__init__()
            self.cfg = cfg
            layers: list[nn.Module] = []
            c_in = 1
            for i, c in enumerate(cfg.channels):
                if i:
                    layers.append(nn.MaxPool2d(2))
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
            self.features = nn.Sequential(*layers)
            self.dropout = nn.Dropout(0.2)
            self.head = nn.Linear(c_in + (2 if cfg.use_ear else 0), 1)

        def forward(self, x: torch.Tensor, ear: torch.Tensor | None = None) -> torch.Tensor:
            h = self.features(x).mean(dim=(2, 3))
            if self.cfg.use_ear:
                if ear is None:
                    raise ValueError("this eye-state network needs the two EARs")
                h = torch.cat([h, (ear - 0.25) / 0.1], dim=1)  # EARs: ~0.3 open, ~0.1 closed
            return self.head(self.dropout(h)).squeeze(1)

    return EyeStateNet(cfg)


@dataclass
class EyeClassifier:
    net: Any  # the EyeStateNet in eval mode, run by numpy (model/numpy_nets.NumpyEyeNet: no torch import)
    cfg: EyeNetConfig
    align: AlignConfig
    threshold: float  # closed <=> P(closed) >= threshold, or
    ear_below: float  # ... both eyes' EAR below this (0: never), or
    source: str  # the folder it was loaded from
    sha256: str  # of model.safetensors
    training: dict = field(default_factory=dict)
    lean_ear_below: float = 0.0  # ... both eyes' EAR below this (0: never)
    lean_threshold: float = 1.0  # ... and P(closed) at least this (the decision of issue #14; 1: never)
    # Issue #24: the EAR cut counts only where the network is not sure the eyes are open: below
    # open_below it is sure, and nothing overrides it (0: the EAR cut counts whatever P(closed) says,
    # as before issue #24).
    open_below: float = 0.0
    narrow_ear_below: float = 0.0  # not closed, larger EAR below this: narrow (0: NARROW_EAR_BELOW)

    def judge(self, p_closed: float, max_ear: float) -> tuple[str, str]:
        """("closed" | "narrow" | "open", why): closed when P(closed) >= threshold; or, unless the
        network is sure the eyes are open (P(closed) < open_below), when both EARs (max_ear) are below
        ear_below; or both below lean_ear_below with P(closed) >= lean_threshold. Else narrow when the
        larger EAR is below narrow_ear_below, or open. Hidden eyes are eye_state.assess's (pixels)."""
        if p_closed >= self.threshold:
            return "closed", f"P(closed) {p_closed:.2f} >= {self.threshold:.2f}"
        if max_ear < self.ear_below and p_closed >= self.open_below:
            unsure = f" and P(closed) {p_closed:.3f} >= {self.open_below:.3f} (not sure they are open)" if self.open_below > 0 else ""
            return "closed", f"both EARs < {self.ear_below:.2f}{unsure}"
        if max_ear < self.lean_ear_below and p_closed >= self.lean_threshold:
            return "closed", f"both EARs < {self.lean_ear_below:.2f} and P(closed) >= {self.lean_threshold:.2f}"
        narrow = self.narrow_ear_below or NARROW_EAR_BELOW
        if max_ear < narrow:
            return "narrow", f"larger EAR {max_ear:.2f} < {narrow:.2f}, P(closed) {p_closed:.3f}"
        return "open", f"P(closed) {p_closed:.3f}, larger EAR {max_ear:.2f}"

    def decide(self, p_closed: float, max_ear: float) -> bool:
        """Closed or not: judge(...) says "closed"."""
        return self.judge(p_closed, max_ear)[0] == "closed"

    def rule(self) -> str:
        """The decision in one line, for reports and benchmarks."""
        text = f"P >= {self.threshold:.2f} or EAR < {self.ear_below:.2f}"
        if self.open_below > 0.0:
            text = f"P >= {self.threshold:.2f} or (EAR < {self.ear_below:.2f} and P >= {self.open_below:.3g})"
        if self.lean_ear_below > 0.0:
            text += f" or (EAR < {self.lean_ear_below:.2f} and P >= {self.lean_threshold:.2f})"
        return text

    def probabilities(self, bands: np.ndarray, ears: np.ndarray | None = None) -> np.ndarray:
        """P(closed) (N,) for network inputs (N, H, W) (and EARs (N, 2) when the net uses them)."""
        x = np.asarray(bands, dtype=np.float32)[:, None]
        e = None if ears is None else np.asarray(ears, dtype=np.float32).reshape(-1, 2)
        return 1.0 / (1.0 + np.exp(-self.net(x, e).astype(np.float64)))

    def probability(self, rgb: np.ndarray, landmarks: np.ndarray, ears: tuple[float, float] | None = None) -> float:
        """P(closed) of one face of a photo (RGB uint8) from its 68 landmarks; ``ears`` (left,
        right) are required by a network that uses them (eye_state.assess passes the ones it
        computed: working them out here would import eye_state, which imports this module)."""
        band = band_from_photo(rgb, landmarks, self.align, self.cfg)
        if self.cfg.use_ear and ears is None:
            raise ValueError("this eye-state network needs the two EARs (left, right)")
        e = np.array([ears], dtype=np.float32) if self.cfg.use_ear else None
        return float(self.probabilities(band[None], e)[0])


# ---------------------------------------------------------------------------------------
# Saving and loading


def default_folder() -> Path:
    """weights/eye-state under the bundled weights folder ($EXGAN_WEIGHTS_DIR when set)."""
    from exgan_cli.model.weights import bundled_weights_dir

    return bundled_weights_dir() / FOLDER


def load_classifier(folder: str | Path) -> EyeClassifier:
    """Load an eye-state classifier folder; WeightsError (one line, naming the file) on any problem."""
    from exgan_cli.model.numpy_nets import NumpyEyeNet, eye_net_shapes
    from exgan_cli.model.weights import check_model_folder, check_tensors, file_sha256, read_folder_config, read_model_tensors

    folder = Path(folder).expanduser()
    name = str(folder)
    check_model_folder(folder, "eye-state weights", name)
    path = folder / CONFIG_FILE
    config = read_folder_config(path, f"eye-state weights {name}", FORMAT, CONFIG_KEYS)
    try:
        cfg = EyeNetConfig.from_dict(config.get("model", {}))
        align = AlignConfig.from_dict(config["align"]) if "align" in config else AlignConfig()
        threshold = float(config.get("threshold", 0.5))
        ear_below = float(config.get("ear_below", 0.0))
        lean_ear_below = float(config.get("lean_ear_below", 0.0))
        lean_threshold = float(config.get("lean_threshold", 1.0))
        open_below = float(config.get("open_below", 0.0))
        narrow_ear_below = float(config.get("narrow_ear_below", 0.0))
    except (ValueError, TypeError, KeyError) as e:
        raise WeightsError(f"eye-state weights {name}: bad config in {path}: {e}") from None
    if not 0.0 < threshold < 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} threshold must be in (0, 1), not {threshold}")
    training = config.get("training") or {}
    if not isinstance(training, dict):
        raise WeightsError(f"eye-state weights {name}: {path} \"training\" must be a JSON object")
    model_path = folder / MODEL_FILE
    tensors = read_model_tensors(model_path, f"eye-state weights {name}", ("net.",), framework="np")
    net = NumpyEyeNet(cfg, check_tensors(eye_net_shapes(cfg), tensors, "net.", f"(eye-state) {name}", model_path))
    if not 0.0 <= ear_below < 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} ear_below must be in [0, 1), not {ear_below}")
    if not 0.0 <= lean_ear_below < 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} lean_ear_below must be in [0, 1), not {lean_ear_below}")
    if not 0.0 <= lean_threshold <= 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} lean_threshold must be in [0, 1], not {lean_threshold}")
    if not 0.0 <= open_below < threshold:
        raise WeightsError(f"eye-state weights {name}: {path} open_below must be in [0, threshold), not {open_below}")
    if not 0.0 <= narrow_ear_below < 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} narrow_ear_below must be in [0, 1), not {narrow_ear_below}")
    return EyeClassifier(net, cfg, align, threshold, ear_below, str(folder), file_sha256(model_path), training,
                         lean_ear_below=lean_ear_below, lean_threshold=lean_threshold, open_below=open_below,
                         narrow_ear_below=narrow_ear_below)


_LOAD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _cached(folder: str, mtime: float) -> EyeClassifier:
    return load_classifier(folder)


def default_classifier() -> EyeClassifier | None:
    """The bundled classifier (loaded once per process), or None when weights/eye-state has no
    weights (then eye state falls back to the EAR rule). A folder that exists but is broken is a
    WeightsError, never a silent fallback."""
    folder = default_folder()
    if not folder.exists():
        return None
    model = folder / MODEL_FILE
    mtime = model.stat().st_mtime if model.exists() else 0.0
    with _LOAD_LOCK:  # the photo's and the references' threads both ask for it: one load
        return _cached(str(folder), mtime)


def eye_state_key() -> str:
    """What judges eye state in this process, as a short string for cache keys: the bundled
    classifier (the hashes of its weights and of its config, which holds the thresholds) or
    "ear" (the EAR rule, no weights). Reads the two files only: no torch, so a cache can be
    opened while torch is still importing on another thread. A broken folder is reported when
    the classifier is loaded."""
    from exgan_cli.model.weights import file_sha256

    folder = default_folder()
    if not folder.exists():
        return "ear"
    parts = [file_sha256(p)[:16] if p.is_file() else "missing" for p in (folder / MODEL_FILE, folder / CONFIG_FILE)]
    return "classifier:" + ":".join(parts)
