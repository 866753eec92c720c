"""Open or closed eyes from pixels: a small CNN over the fixed eye band of the aligned face.

Why not only the eye aspect ratio (eyes.py)? EAR reads the lids from dlib's 68 landmarks, and
on small, turned or tilted faces dlib draws open lids over closed eyes (its shape model's bias):
the EAR rule catches 73% of CEW's closed faces while flagging 8.6% of LFW (docs/eye_state.md).
The classifier looks at the pixels instead, in a region that does not depend on where the
landmarks put the lids: the face is aligned with the same five-point similarity as everywhere
else (geometry.align_face, 128 px) and the fixed box geometry.eye_band (both eyes and brows,
2:1) is cut from it, turned grey, resized to 64 x 32 and standardised (mean 0, std 1 per
image). The network answers P(closed) for the face (both eyes).

Weights live in a folder like the generator's (weights/eye-state/): model.safetensors (tensors
under "net."), config.json ({"format": "exgan-eye-state-1", "model": EyeNetConfig, "align":
AlignConfig, "threshold": P(closed) cut, "ear_below": EAR cut, "training": provenance}) and README.md
(the card).

The decision: closed <=> P(closed) >= threshold, or both eyes' EAR < ear_below. The second part
is the EAR kept as a feature where it is reliable: CEW's closed faces are mostly young, often
made-up women in stock photos while LFW's are mostly older men in news photos, so a network
trained on them learns the closed eyes of the first kind best; on frontal news faces dlib's
landmarks are good, and a very low EAR is a closed eye (ear_below is chosen on reviewed LFW faces
of the training and validation persons: the largest EAR under which at least 60% of the reviewed
faces are closed and at most 10% clearly open). Adding LFW's own closed faces to the closed class
instead was tried: with only ~50 of them the network learned "older man, glasses" and flagged
8 to 25% of LFW.
Loading is strict: every problem is a WeightsError naming the file.

Training (``python -m exgan_cli.stages.eye_classifier --data-root /work/shared/data``, see
train/eye_state.md): closed faces are the CEW crops of closed_eyes/ (split by file), open
faces are LFW faces from the aligned-face cache (split by person), cleaned of LFW's own closed
and squinting eyes. Splits are fixed by a hash of the file or person name (``split_of``), so the
benchmark (benchmarks/eye_state.py) finds the same held-out test split without any list.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

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

# Held-out splits, by a hash of the name (a CEW file name, an LFW person name): bucket
# 0..99; below TEST_PERCENT: test (only the benchmark sees it), then VAL_PERCENT: validation
# (early stopping and the decision threshold), the rest: training.
TEST_PERCENT = 20
VAL_PERCENT = 10

# LFW cleaning: an LFW face is an "open" training example when its larger EAR is at least
# OPEN_MIN_MAX_EAR (below 0.19, LFW faces are mostly closed, blinking or looking down; between
# 0.19 and 0.22 a mix of narrow, squinting and open eyes: docs/eye_state.md) and both EARs are at
# least OPEN_MIN_EAR. At 0 (the default), squints and narrow eyes stay open examples: without
# them the network learns that narrow LFW eyes are closed and flags a quarter of LFW.
OPEN_MIN_MAX_EAR = 0.19
OPEN_MIN_EAR = 0.0
# Reviewed LFW faces (train/lfw_eye_review.json): every LFW face whose larger EAR is below
# REVIEWED_BELOW (239), each looked at and labelled closed / open / unsure. Reviewed open ones
# (squints, looks down) join the open class; unsure ones are left out; closed ones are closed
# examples for validation, and in training only with LFW_CLOSED_SHARE > 0 (their share of the
# closed samples; 0 by default, see the module doc); they choose ear_below (pick_ear_below).
REVIEW_FILE = Path(__file__).resolve().parent.parent / "train" / "lfw_eye_review.json"
LFW_CLOSED_SHARE = 0.0  # 0: see the module doc (ear_below instead)
REVIEWED_BELOW = 0.18  # the review covers every LFW face whose larger EAR is below this


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


def split_of(name: str) -> str:
    """"test", "val" or "train" for a CEW file name or an LFW person name (fixed by its hash)."""
    bucket = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + VAL_PERCENT:
        return "val"
    return "train"


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
    net: Any  # EyeStateNet, eval mode, CPU
    cfg: EyeNetConfig
    align: AlignConfig
    threshold: float  # closed <=> P(closed) >= threshold, or
    ear_below: float  # ... both eyes' EAR below this (0: never)
    source: str  # the folder it was loaded from
    sha256: str  # of model.safetensors
    training: dict = field(default_factory=dict)

    def decide(self, p_closed: float, max_ear: float) -> bool:
        """The verdict: closed when P(closed) >= threshold or both EARs (max_ear) < ear_below."""
        return bool(p_closed >= self.threshold or max_ear < self.ear_below)

    def probabilities(self, bands: np.ndarray, ears: np.ndarray | None = None) -> np.ndarray:
        """P(closed) (N,) for network inputs (N, H, W) (and EARs (N, 2) when the net uses them)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(bands, dtype=np.float32))[:, None]
        e = None if ears is None else torch.from_numpy(np.asarray(ears, dtype=np.float32).reshape(-1, 2))
        with torch.inference_mode():
            return torch.sigmoid(self.net(x, e)).numpy().astype(np.float64)

    def probability(self, rgb: np.ndarray, landmarks: np.ndarray, ears: tuple[float, float] | None = None) -> float:
        """P(closed) of one face of a photo (RGB uint8) from its 68 landmarks."""
        band = band_from_photo(rgb, landmarks, self.align, self.cfg)
        e = np.array([ears], dtype=np.float32) if self.cfg.use_ear and ears is not None else None
        if self.cfg.use_ear and e is None:
            from exgan_cli.stages.eye_state import eye_aspect_ratio
            from exgan_cli.stages.geometry import LEFT_EYE, RIGHT_EYE

            lm = np.asarray(landmarks, dtype=np.float64)
            e = np.array([[eye_aspect_ratio(lm[LEFT_EYE]), eye_aspect_ratio(lm[RIGHT_EYE])]], dtype=np.float32)
        return float(self.probabilities(band[None], e)[0])


# ---------------------------------------------------------------------------------------
# Saving and loading


def default_folder() -> Path:
    """weights/eye-state under the bundled weights folder ($EXGAN_WEIGHTS_DIR when set)."""
    from exgan_cli.model.weights import bundled_weights_dir

    return bundled_weights_dir() / FOLDER


def save_classifier(
    folder: str | Path, net: Any, cfg: EyeNetConfig, align: AlignConfig, threshold: float, card: str,
    training: dict | None = None, ear_below: float = 0.0,
) -> Path:
    """Write model.safetensors, config.json and README.md (atomically, as weights.save_pretrained)."""
    from exgan_cli.model.weights import write_model_folder

    tensors = {f"net.{k}": v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    config = {"format": FORMAT, "model": cfg.to_dict(), "align": align.to_dict(), "threshold": float(threshold),
              "ear_below": float(ear_below), "training": training or {}}
    return write_model_folder(folder, tensors, config, card)


def load_classifier(folder: str | Path) -> EyeClassifier:
    """Load an eye-state classifier folder; WeightsError (one line, naming the file) on any problem."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from exgan_cli.model.weights import _load_strict, file_sha256, read_folder_config

    folder = Path(folder).expanduser()
    name = str(folder)
    if not folder.is_dir():
        raise WeightsError(f"eye-state weights folder not found: {folder}")
    for f in (CONFIG_FILE, MODEL_FILE):
        if not (folder / f).is_file():
            raise WeightsError(f"eye-state weights {name}: missing {folder / f}")
    path = folder / CONFIG_FILE
    config = read_folder_config(
        path, f"eye-state weights {name}", FORMAT, {"model", "align", "threshold", "ear_below", "training"}
    )
    try:
        cfg = EyeNetConfig.from_dict(config.get("model", {}))
        align = AlignConfig.from_dict(config["align"]) if "align" in config else AlignConfig()
        threshold = float(config.get("threshold", 0.5))
        ear_below = float(config.get("ear_below", 0.0))
    except (ValueError, TypeError, KeyError) as e:
        raise WeightsError(f"eye-state weights {name}: bad config in {path}: {e}") from None
    if not 0.0 < threshold < 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} threshold must be in (0, 1), not {threshold}")
    training = config.get("training") or {}
    if not isinstance(training, dict):
        raise WeightsError(f"eye-state weights {name}: {path} \"training\" must be a JSON object")
    model_path = folder / MODEL_FILE
    try:
        tensors = load_file(str(model_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"eye-state weights {name}: cannot read {model_path}: {e}") from None
    strays = sorted(k for k in tensors if not k.startswith("net."))
    if strays:
        raise WeightsError(f"eye-state weights {name}: {model_path} has unexpected tensors: {', '.join(strays[:3])}")
    net = build_net(cfg)
    _load_strict(net, tensors, "net.", f"(eye-state) {name}", model_path)
    net = net.to(torch.device("cpu")).eval().requires_grad_(False)
    if not 0.0 <= ear_below < 1.0:
        raise WeightsError(f"eye-state weights {name}: {path} ear_below must be in [0, 1), not {ear_below}")
    return EyeClassifier(net, cfg, align, threshold, ear_below, str(folder), file_sha256(model_path), training)


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
    return _cached(str(folder), mtime)


def eye_state_key() -> str:
    """What judges eye state in this process, as a short string for cache keys: the bundled
    classifier (its weights' hash and thresholds) or "ear" (the EAR rule, no weights)."""
    classifier = default_classifier()
    return "ear" if classifier is None else f"classifier:{classifier.sha256[:16]}:{classifier.threshold}:{classifier.ear_below}"


# ---------------------------------------------------------------------------------------
# Training data


def _prepare_closed_one(args: tuple[str, dict]) -> Optional[tuple]:
    from exgan_cli.stages import eye_state as eyes, faces as facelib, geometry
    from exgan_cli.training.dataset import encode_crop
    from exgan_cli.errors import ExganError
    from exgan_cli.files.images import load_image

    path, align_dict = args
    align = AlignConfig.from_dict(align_dict)
    try:
        image = load_image(Path(path))
    except ExganError:
        return None
    found = facelib.detect_faces(image.pixels, detector="auto")
    face = facelib.central_face(found, image.size)
    if face is None:
        return None
    crop, matrix = geometry.align_face(image.pixels, face.landmarks, align)
    state = eyes.eye_state(face.landmarks)
    lm = geometry.transform_points(face.landmarks, matrix).astype(np.float32)
    return path, encode_crop(crop), lm, (state.left, state.right), face.detector


def prepare_closed_cache(closed_dir: Path, out_file: Path, align: AlignConfig = AlignConfig(), workers: int = 2,
                         log: Callable[[str], None] = print) -> Path:
    """Detect (auto: HOG, then CNN), align and cache every closed-eye crop of ``closed_dir`` in the
    dataset cache format (dataset.save_dataset; each file is its own "person", closed=True)."""
    from concurrent.futures import ProcessPoolExecutor

    from exgan_cli.training.dataset import IMAGE_SUFFIXES, save_dataset

    paths = sorted(str(p) for p in Path(closed_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".bmp"})
    jobs = [(p, align.to_dict()) for p in paths]
    t0 = time.time()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_prepare_closed_one, jobs, chunksize=8))
    else:
        rows = [_prepare_closed_one(j) for j in jobs]
    kept = [r for r in rows if r is not None]
    names = [Path(r[0]).name for r in kept]
    log(f"closed crops: {len(paths)} files, {len(kept)} faces ({sum(r[4] == 'cnn' for r in kept)} by the CNN), {time.time() - t0:.0f} s")
    return save_dataset(
        out_file, jpegs=[r[1] for r in kept], landmarks=np.stack([r[2] for r in kept]),
        ear=np.array([r[3] for r in kept], dtype=np.float32), closed=np.ones(len(kept), dtype=bool),
        person=np.arange(len(kept), dtype=np.int32), persons=names, paths=names, align=align,
        meta={"data_dir": str(Path(closed_dir).resolve()), "photos_seen": len(paths), "faces_kept": len(kept),
              "detectors": [r[4] for r in kept]},
    )


@dataclass
class EyeData:
    """Training/validation examples: grey aligned crops and labels, with where each came from."""

    grey: np.ndarray  # (N, R, R) uint8 grey aligned faces
    ear: np.ndarray  # (N, 2) float32 EARs (left, right)
    closed: np.ndarray  # (N,) bool label
    split: np.ndarray  # (N,) "train" | "val" | "test"
    source: list[str]  # "closed_eyes/<file>" or "lfw/<Person>/<file>"
    lfw_closed: np.ndarray = None  # type: ignore[assignment]  # (N,) bool: a reviewed closed LFW face

    def take(self, mask: np.ndarray) -> "EyeData":
        idx = np.nonzero(mask)[0]
        return EyeData(self.grey[idx], self.ear[idx], self.closed[idx], self.split[idx], [self.source[i] for i in idx],
                       self.lfw_closed[idx])


def read_review(path: Path = REVIEW_FILE) -> dict[str, str]:
    """{"<Person>/<file>.jpg": "closed" | "open" | "unsure"} from a review file (empty if none)."""
    if not Path(path).is_file():
        return {}
    return dict(json.loads(Path(path).read_text(encoding="utf-8"))["labels"])


def load_eye_data(closed_cache: Path, lfw_cache: Path, open_min_ear: float = OPEN_MIN_EAR,
                  review: Path | None = REVIEW_FILE) -> tuple[EyeData, dict]:
    """Closed: every face of the CEW cache (split by file) and the LFW faces reviewed closed. Open:
    LFW faces whose larger EAR >= OPEN_MIN_MAX_EAR and both >= open_min_ear, and the ones reviewed open
    (LFW split by person). Returns the data and counts for the card."""
    import cv2

    from exgan_cli.training.dataset import load_dataset

    cew = load_dataset(closed_cache)
    lfw = load_dataset(lfw_cache)
    if cew.align != lfw.align:
        raise ValueError(f"{closed_cache} and {lfw_cache} are aligned differently")
    labels = read_review(review) if review is not None else {}
    verdict = np.array([labels.get(p, "") for p in lfw.paths])
    ear_open = (lfw.ear.max(axis=1) >= OPEN_MIN_MAX_EAR) & (lfw.ear.min(axis=1) >= open_min_ear)
    clean = (ear_open & (verdict == "")) | (verdict == "open")
    shut = verdict == "closed"

    def grey(crops: np.ndarray) -> np.ndarray:
        return np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])

    c_split = np.array([split_of(p) for p in cew.paths])
    l_split = np.array([split_of(lfw.persons[k]) for k in lfw.person])
    keep = np.nonzero(clean | shut)[0]
    data = EyeData(
        grey=np.concatenate([grey(cew.crops), grey(lfw.crops[keep])]),
        ear=np.concatenate([cew.ear, lfw.ear[keep]]).astype(np.float32),
        closed=np.concatenate([np.ones(len(cew), bool), shut[keep]]),
        split=np.concatenate([c_split, l_split[keep]]),
        source=[f"closed_eyes/{p}" for p in cew.paths] + [f"lfw/{lfw.paths[i]}" for i in keep],
        lfw_closed=np.concatenate([np.zeros(len(cew), bool), shut[keep]]),
    )
    counts = {
        "closed_faces": len(cew),
        "closed_files": int(cew.meta.get("photos_seen", len(cew))),
        "lfw_faces": len(lfw),
        "lfw_dropped_closed_or_squinting": int((~clean & ~shut).sum()),
        "open_min_ear": open_min_ear,
        # training and validation persons' labels (the review also covers test faces, for the benchmark)
        "lfw_reviewed": {k: int(((verdict == k) & (l_split != "test")).sum()) for k in ("closed", "open", "unsure")},
    }
    for s in ("train", "val", "test"):
        counts[f"{s}_closed"] = int(((data.split == s) & data.closed).sum())
        counts[f"{s}_closed_lfw"] = int(((data.split == s) & data.lfw_closed).sum())
        counts[f"{s}_open"] = int(((data.split == s) & ~data.closed).sum())
    return data, counts


def _augment_batch(grey: np.ndarray, base: np.ndarray, cfg: EyeNetConfig, rng: np.random.Generator) -> np.ndarray:
    """Network inputs (B, H, W) from grey aligned crops (B, R, R), each with random alignment
    jitter (shift, scale, rotation), a horizontal flip, gamma, a lower resolution (small or blurred
    faces), and sensor noise: what differs between a 60 px CEW crop and a 250 px LFW photo."""
    import cv2

    out = np.empty((len(grey), cfg.height, cfg.width), np.float32)
    cx, cy = cfg.width / 2, cfg.height / 2
    for k, g in enumerate(grey):
        angle = np.deg2rad(rng.normal(0, 5))
        scale = float(np.exp(rng.normal(0, 0.07)))
        shift = rng.normal(0, [0.035 * cfg.width, 0.05 * cfg.height])
        flip = -1.0 if rng.random() < 0.5 else 1.0
        ca, sa = scale * np.cos(angle), scale * np.sin(angle)
        jitter = np.array([[flip * ca, -sa, 0.0], [flip * sa, ca, 0.0]])
        jitter[:, 2] = np.array([cx, cy]) + shift - jitter[:, :2] @ np.array([cx, cy])
        m = jitter @ np.vstack([base, [0, 0, 1]])
        img = g
        if rng.random() < 0.5:  # gamma: lighting that a linear standardisation cannot undo
            lut = (255.0 * (np.arange(256) / 255.0) ** float(np.exp(rng.normal(0, 0.25)))).astype(np.uint8)
            img = cv2.LUT(img, lut)
        band = cv2.warpAffine(img, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.3:  # a photo edge inside the band (CEW's tight crops, replicated): in both classes
            side = int(rng.integers(4))
            n = int(rng.integers(1, max(2, (cfg.width if side < 2 else cfg.height) // 6)))
            if side == 0:
                band[:, :n] = band[:, n : n + 1]
            elif side == 1:
                band[:, -n:] = band[:, -n - 1 : -n]
            elif side == 2:
                band[:n] = band[n : n + 1]
            else:
                band[-n:] = band[-n - 1 : -n]
        if rng.random() < 0.5:  # fewer pixels: faces of 40 to 100 px
            f = rng.uniform(0.3, 0.9)
            small = cv2.resize(band, (max(4, round(cfg.width * f)), max(2, round(cfg.height * f))), interpolation=cv2.INTER_AREA)
            band = cv2.resize(small, (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)
        b = band.astype(np.float32)
        if rng.random() < 0.3:
            b = b + rng.normal(0, rng.uniform(1, 6), size=b.shape).astype(np.float32)
        out[k] = standardise(b)
    return out


def _inputs(data: EyeData, align: AlignConfig, cfg: EyeNetConfig) -> np.ndarray:
    """Network inputs without augmentation (validation, as at inference)."""
    rgb = np.repeat(data.grey[..., None], 3, axis=3)
    return np.stack([band_from_crop(c, align, cfg) for c in rgb]) if len(rgb) else np.zeros((0, cfg.height, cfg.width), np.float32)


def pick_ear_below(lfw_cache: Path, review: Path | None, min_closed: float = 0.6, max_open: float = 0.1) -> tuple[float, dict]:
    """The largest EAR cut (step 0.01, 0.10 to REVIEWED_BELOW) under which, among the reviewed LFW faces of
    training and validation persons (never test), at least min_closed are closed and at most
    max_open clearly open. 0.0 without a review."""
    from exgan_cli.training.dataset import load_dataset

    labels = read_review(review) if review is not None else {}
    if not labels:
        return 0.0, {}
    lfw = load_dataset(lfw_cache)
    mx = {p: float(e) for p, e in zip(lfw.paths, lfw.ear.max(axis=1))}
    rows = [(mx[p], lab) for p, lab in labels.items() if p in mx and split_of(p.split("/")[0]) != "test"]
    best, table = 0.0, {}
    for x in np.round(np.arange(0.10, REVIEWED_BELOW + 0.001, 0.01), 2):  # where every face is reviewed
        below = [lab for e, lab in rows if e < x]
        if not below:
            continue
        c, o = below.count("closed") / len(below), below.count("open") / len(below)
        table[f"{x:.2f}"] = {"faces": len(below), "closed": round(c, 3), "open": round(o, 3)}
        if c >= min_closed and o <= max_open:
            best = float(x)
    return best, table


def rates(p_closed: np.ndarray, closed: np.ndarray, threshold: float) -> tuple[float, float]:
    """(closed recall, open flagged) at a threshold on P(closed)."""
    flag = p_closed >= threshold
    recall = float(flag[closed].mean()) if closed.any() else float("nan")
    flagged = float(flag[~closed].mean()) if (~closed).any() else float("nan")
    return recall, flagged


def pick_threshold(p_closed: np.ndarray, closed: np.ndarray, max_open_flagged: float) -> float:
    """The threshold with the best closed recall while flagging at most max_open_flagged of the open
    faces (ties: the one in the middle of the best range, away from both sides)."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    scored = [(t, *rates(p_closed, closed, t)) for t in grid]
    ok = [s for s in scored if s[2] <= max_open_flagged] or [max(scored, key=lambda s: s[0])]
    best = max(s[1] for s in ok)
    tied = [s[0] for s in ok if s[1] == best]
    return float(tied[len(tied) // 2])


@dataclass
class EyeTrainConfig:
    closed_cache: Path  # dataset cache of the CEW closed crops (prepare_closed_cache)
    lfw_cache: Path  # dataset cache of LFW (dataset.prepare_dataset), 128 px
    out: Path  # weights folder to write
    net: EyeNetConfig = field(default_factory=EyeNetConfig)
    steps: int = 3000  # optimiser steps
    batch_size: int = 64  # half closed, half open (the classes are 1:12)
    lr: float = 3e-3  # AdamW, cosine decay to 0
    weight_decay: float = 1e-3
    eval_every: int = 250  # steps between validation checks (the best one is kept)
    max_open_flagged: float = 0.01  # threshold choice on the validation split
    open_min_ear: float = OPEN_MIN_EAR  # LFW cleaning
    review: Optional[Path] = REVIEW_FILE  # reviewed LFW faces (closed ones join the closed class)
    lfw_closed_share: float = LFW_CLOSED_SHARE  # of the closed samples, from reviewed LFW faces
    seed: int = 0
    threads: int = 1  # torch CPU threads (the machine is shared)


def train_classifier(cfg: EyeTrainConfig, log: Callable[[str], None] = print, command: str = "") -> dict:
    """Train, choose the threshold on the validation split, and save the weights with a card."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    data, counts = load_eye_data(cfg.closed_cache, cfg.lfw_cache, cfg.open_min_ear, cfg.review)
    from exgan_cli.training.dataset import load_dataset

    align = load_dataset(cfg.closed_cache).align
    train = data.take(data.split == "train")
    val = data.take(data.split == "val")
    log(f"data: {counts} ({time.time() - t0:.0f} s)")
    base = band_matrix(align, cfg.net)
    val_x = torch.from_numpy(_inputs(val, align, cfg.net))[:, None]
    val_e = torch.from_numpy(val.ear)
    ci = np.nonzero(train.closed & ~train.lfw_closed)[0]
    li, oi = np.nonzero(train.lfw_closed)[0], np.nonzero(~train.closed)[0]

    net = build_net(cfg.net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    half = cfg.batch_size // 2
    best: tuple[float, int, dict] | None = None
    history = []
    for step in range(1, cfg.steps + 1):
        n_lfw = int(rng.binomial(half, cfg.lfw_closed_share)) if len(li) else 0
        idx = np.concatenate([rng.choice(ci, half - n_lfw), rng.choice(li, n_lfw) if n_lfw else np.zeros(0, int),
                              rng.choice(oi, cfg.batch_size - half)])
        x = torch.from_numpy(_augment_batch(train.grey[idx], base, cfg.net, rng))[:, None]
        e = torch.from_numpy(train.ear[idx] + rng.normal(0, 0.02, size=(len(idx), 2)).astype(np.float32))
        y = torch.from_numpy(train.closed[idx].astype(np.float32))
        net.train()
        loss = F.binary_cross_entropy_with_logits(net(x, e), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            net.eval()
            with torch.inference_mode():
                p = torch.sigmoid(net(val_x, val_e)).numpy()
            t = pick_threshold(p, val.closed, cfg.max_open_flagged)
            recall, flagged = rates(p, val.closed, t)
            # the criterion: recall at the flagged cap, then a lower mean P(closed) on open faces
            key = recall - 5.0 * max(0.0, flagged - cfg.max_open_flagged) - 0.1 * float(p[~val.closed].mean())
            history.append({"step": step, "loss": round(float(loss.detach()), 4), "threshold": t, "val_recall": round(recall, 4), "val_flagged": round(flagged, 4)})
            log(f"step {step}: loss {float(loss.detach()):.3f}, val closed recall {recall:.1%}, open flagged {flagged:.1%} at {t:.2f} ({time.time() - t0:.0f} s)")
            if best is None or key > best[0]:
                best = (key, step, {k: v.detach().clone() for k, v in net.state_dict().items()})
    assert best is not None
    net.load_state_dict(best[2])
    net.eval()
    with torch.inference_mode():
        p = torch.sigmoid(net(val_x, val_e)).numpy()
    threshold = pick_threshold(p, val.closed, cfg.max_open_flagged)
    recall, flagged = rates(p, val.closed, threshold)
    ear_below, ear_table = pick_ear_below(cfg.lfw_cache, cfg.review)
    both = (p >= threshold) | (val.ear.max(axis=1) < ear_below)
    recall2, flagged2 = float(both[val.closed].mean()), float(both[~val.closed].mean())
    seconds = time.time() - t0
    n_params = sum(v.numel() for v in net.parameters())
    training = {
        "command": command,
        "data": counts,
        "steps": cfg.steps,
        "best_step": best[1],
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "seed": cfg.seed,
        "threads": cfg.threads,
        "seconds": round(seconds, 1),
        "parameters": n_params,
        "val": {"closed_recall": round(recall, 4), "open_flagged": round(flagged, 4), "threshold": threshold,
                "max_open_flagged": cfg.max_open_flagged,
                "with_ear_below": {"closed_recall": round(recall2, 4), "open_flagged": round(flagged2, 4)}},
        "ear_below": ear_below,
        "ear_below_review": ear_table,
        "history": history,
        "splits": f"sha256(name) % 100: < {TEST_PERCENT} test, < {TEST_PERCENT + VAL_PERCENT} val, else train; "
                  "CEW by file name, LFW by person name",
    }
    card = eye_card(cfg.net, counts, training, threshold)
    save_classifier(cfg.out, net, cfg.net, align, threshold, card, training, ear_below=ear_below)
    log(f"saved {cfg.out}: val closed recall {recall:.1%}, open flagged {flagged:.1%} at P(closed) >= {threshold:.2f}"
        f" ({recall2:.1%}, {flagged2:.1%} with EAR < {ear_below:.2f}); {seconds:.0f} s")
    return training


def eye_card(cfg: EyeNetConfig, counts: dict, training: dict, threshold: float) -> str:
    """The README.md of an eye-state weights folder (front matter + text)."""
    v = training["val"]
    eb = training.get("ear_below", 0.0)
    rev = counts.get("lfw_reviewed", {})
    front = "\n".join(["---", "library_name: exgan", "license: mit", "pipeline_tag: image-classification",
                       "tags:", "- exgan", "- eye-state", "- blink-detection", "---", ""])
    text = f"""
# exgan eye-state classifier

Are a face's eyes closed? A small CNN ({training['parameters']:,} parameters) over the fixed eye band of
the face aligned by exgan's five-point similarity (`geometry.align_face`, 128 px; `geometry.eye_band`
scaled by {list(cfg.band_scale)}), grey, {cfg.width} x {cfg.height} px, standardised per image{', plus the two eye aspect ratios' if cfg.use_ear else ''}.
Output: P(closed). **Decision: closed when P(closed) >= {threshold:.2f}, or when both eyes' aspect ratio
(EAR, from dlib's landmarks) is below {eb:.2f}.** Loaded by `exgan_cli.stages.eye_classifier`; `eyes.assess` uses it
whenever this folder is present and reports both scores; without it exgan falls back to the EAR rule.

Architecture: {len(cfg.channels)} stages of 3x3 conv (no bias) + BatchNorm + ReLU, widths {', '.join(map(str, cfg.channels))},
2x2 max-pooling between stages, global average pooling, dropout 0.2, one linear layer to the logit.

## Data

- Closed: CEW "ClosedFace" crops (`closed_eyes/`, {counts['closed_files']} files, {counts['closed_faces']} faces found with
  `detect_faces(detector="auto")`: HOG, then dlib's CNN for the faces HOG misses).
- Open: LFW faces of the aligned-face cache (`exgan train --prepare-only`), cleaned of LFW's own closed eyes: faces
  whose larger EAR is below {OPEN_MIN_MAX_EAR} are left out ({counts['lfw_dropped_closed_or_squinting']} of {counts['lfw_faces']}), except
  those a person reviewed as open. Squints stay in (as open).
- Review (`train/lfw_eye_review.json`, train/eye_state.md): LFW faces looked at on contact sheets, every one
  whose larger EAR is below {REVIEWED_BELOW} and, for the benchmark, more held-out test faces; of training and validation
  persons: {rev.get('closed', 0)} closed, {rev.get('open', 0)} open, {rev.get('unsure', 0)} unsure. It sets the EAR cut ({eb:.2f}: the largest under which at least 60% of
  the reviewed training/validation faces are closed and at most 10% open).
- Splits fixed by sha256 of the name (CEW: file, LFW: person) modulo 100: < {TEST_PERCENT} test (never seen in
  training; `benchmarks/eye_state.py`), < {TEST_PERCENT + VAL_PERCENT} validation (best step, threshold), else training.
  Train: {counts['train_closed'] - counts.get('train_closed_lfw', 0)} CEW closed / {counts['train_open']} LFW open; validation: {counts['val_closed']} closed / {counts['val_open']} open.
- Augmentation: alignment jitter (shift, scale, rotation), horizontal flip, gamma, lower resolution, noise, photo
  edges inside the band; balanced batches of {training['batch_size']}.

## Training

{training['steps']} AdamW steps (one-cycle lr {training['lr']}, weight decay {training['weight_decay']}), seed {training['seed']},
{training['threads']} CPU thread(s), {training['seconds'] / 60:.1f} min on a shared 2-core CPU; best validation step {training['best_step']}.
Command (train/eye_state.md): `{training['command']}`

Validation (cached aligned faces): closed recall {v['closed_recall']:.1%}, open faces flagged {v['open_flagged']:.1%} at
P(closed) >= {threshold:.2f} (the best recall flagging at most {v['max_open_flagged']:.0%} of validation open faces); with the
EAR cut too: {v['with_ear_below']['closed_recall']:.1%} and {v['with_ear_below']['open_flagged']:.1%}.
Held-out test figures, through the whole photo -> detection -> classifier path, against the EAR rule:
docs/eye_state.md (`python benchmarks/eye_state.py`).

## Limits

Trained on near-frontal news and web photos (LFW, CEW). Sunglasses hide the eyes. A wink (one eye closed) is in
neither class. The closed training faces are mostly young women; closed eyes of other faces rely more on the EAR
cut. LFW and CEW are research data sets.
"""
    return front + text.strip() + "\n"


def rewrite_card(folder: Path) -> Path:
    """Write README.md again from the folder's config.json (the card text as training writes it)."""
    config = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    tr = config["training"]
    text = eye_card(EyeNetConfig.from_dict(config["model"]), tr["data"], tr, float(config["threshold"]))
    (Path(folder) / CARD_FILE).write_text(text, encoding="utf-8")
    return Path(folder) / CARD_FILE


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m exgan_cli.stages.eye_classifier", description="Train the eye-state classifier (weights/eye-state).")
    ap.add_argument("--data-root", type=Path, default=Path("/work/shared/data"), help="folder with closed_eyes/ and lfw/")
    ap.add_argument("--lfw-cache", type=Path, default=Path(".cache/lfw-128.npz"), help="LFW aligned-face cache (exgan train --prepare-only); made when missing")
    ap.add_argument("--closed-cache", type=Path, default=Path(".cache/cew-closed-128.npz"), help="CEW cache; made when missing")
    ap.add_argument("--out", type=Path, default=None, help="weights folder [default: weights/eye-state]")
    ap.add_argument("--steps", type=int, default=EyeTrainConfig.steps)
    ap.add_argument("--use-ear", action="store_true", help="also feed the two EARs to the network")
    ap.add_argument("--band-scale", type=float, nargs=2, default=(1.0, 1.0), metavar=("W", "H"),
                    help="size of the region cut, relative to geometry.eye_band")
    ap.add_argument("--no-review", action="store_true", help="ignore train/lfw_eye_review.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--open-min-ear", type=float, default=OPEN_MIN_EAR, help="LFW open examples: both EARs at least this")
    ap.add_argument("--lfw-closed-share", type=float, default=LFW_CLOSED_SHARE, help="share of closed samples from reviewed LFW faces")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="processes preparing the caches")
    args = ap.parse_args(argv)
    from exgan_cli.training.dataset import prepare_dataset

    if not args.closed_cache.is_file():
        prepare_closed_cache(args.data_root / "closed_eyes", args.closed_cache, workers=args.workers)
    if not args.lfw_cache.is_file():
        prepare_dataset(args.data_root / "lfw", args.lfw_cache, workers=args.workers)
    cfg = EyeTrainConfig(
        closed_cache=args.closed_cache, lfw_cache=args.lfw_cache, out=args.out or default_folder(),
        net=EyeNetConfig(use_ear=args.use_ear, band_scale=tuple(args.band_scale)), steps=args.steps, seed=args.seed,
        threads=args.threads, review=None if args.no_review else REVIEW_FILE, open_min_ear=args.open_min_ear,
        lfw_closed_share=args.lfw_closed_share,
    )
    command = "python -m exgan_cli.stages.eye_classifier " + " ".join(sys.argv[1:] if argv is None else argv)
    train_classifier(cfg, command=command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
