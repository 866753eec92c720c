"""The model's hyper-parameters, saved in config.json next to the weights.

No torch here, so the CLI can read a config without paying for the torch import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The paper's three variants: an aligned reference photo of the same person ("reference"),
# a code computed from that photo's eyes ("code"), or no exemplar at all ("none", the
# baseline in-painter: the same network without the exemplar inputs).
MODES = ("reference", "code", "none")
REF_INPUTS = ("face", "eyes")
ADVERSARIAL = ("hinge", "nsgan")


@dataclass(frozen=True)
class ModelConfig:
    mode: str = "reference"  # "reference" | "code" | "none": which exemplar G and D receive
    resolution: int = 128  # side of the aligned face crop; must equal AlignConfig.resolution
    base_channels: int = 32  # G's (and C's) width at full resolution; x2 at 1/2, x4 at 1/4. With
    # n_blocks=6, G has 2.0M parameters and a G+D step at batch 16 runs ~14 (NCHW) to ~19
    # (channels_last) img/s on 2 idle CPU cores: the CPU budget asks for ~8 (benchmarks/train_speed.py)
    n_blocks: int = 6  # dilated residual blocks at 1/4 resolution; dilations cycle 1, 2, 4, 8
    code_dim: int = 256  # length of the eye code (code mode): the EyeEncoder's output
    code_at_input: bool = True  # code mode: also condition G's first layer, not only the bottleneck
    ref_input: str = "face"  # reference mode, what G reads: "face" (the aligned reference photo and
    # its eye mask; the first bundled models) or "eyes" (each reference eye relit to the target's skin
    # and warped onto the target's eye by its corners, with a validity mask: exemplar.py)
    relight: bool = False  # scale the reference per channel to the target's cheek colour before G, D
    # or C sees it (exemplar.relight): colour is then carried relative to the skin
    skips: bool = False  # G adds its full- and half-resolution input features back on the way up
    # (zero-initialised 1x1 convolutions), so what it copies from the input keeps its fine detail
    warp: bool = False  # reference mode, ref_input "eyes": G also outputs a displacement field and a blend
    # weight per pixel, and its output is weight x (the warped reference moved by the displacement) +
    # (1 - weight) x its own pixels, so it can bend the person's real eye into place instead of
    # repainting it; open-eyes applies the same field to the reference photo at full resolution
    warp_max: float = 6.0  # largest displacement, in crop pixels (tanh-bounded): about a third of an eye width
    warp_bias: float = -4.0  # the blend weight's initial logit (sigmoid(-4) = 0.018): a new warp head
    # starts as the plain in-painter it is added to and learns where taking the reference pays
    warp_smooth: float = 0.02  # weight of the displacement's smoothness loss (mean |gradient|, crop pixels)
    warp_align: float = 1.0  # weight of the masked L1 between the moved reference itself and the real eyes: it
    # teaches the displacement to bend the reference's eye onto where the real one is (lid line, opening,
    # position), whatever the blend weight; through the blend alone a reference G does not take yet gets no say
    warp_decisive: float = 0.0  # weight of mean w(1 - w) over the holes: the field takes the reference or
    # leaves it, not half of each (a half-transparent pupil over G's iris shows as a ghost at full resolution)
    warp_fullres: bool = True  # run time only: also apply the field to the reference photo at its own resolution
    # (stages/warp.py). False: the 128 px output (which the field made) is pasted back with the detail stage,
    # as any model's is; on the hard cases that gave fewer ghosts (docs/exemplar.md, issue #23)
    d_channels: int = 32  # D width of its first layer (both branches), doubling per downsampling
    adversarial: str = "hinge"  # GAN loss: "hinge" or "nsgan" (non-saturating logistic)
    l1_weight: float = 1.0  # masked L1 between G's output and the real eyes (0 disables)
    adversarial_weight: float = 0.05  # G's adversarial loss; small, since L1 carries identity (0 disables)
    iris_weight: float = 0.0  # extra L1 on the true irises (exemplar.iris_weight): a few pixels of the hole
    # that carry most of a person's eye colour, and that plain masked L1 weighs like any skin pixel
    code_weight: float = 0.5  # code mode: ||C(G(z, c)) - c|| keeps the eyes' identity (0 disables)

    def __post_init__(self) -> None:
        # Checked here so that a bad config fails when it is made, not deep inside a forward pass.
        if self.mode not in MODES:
            raise ValueError(f"model mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.adversarial not in ADVERSARIAL:
            raise ValueError(f"adversarial loss must be one of {', '.join(ADVERSARIAL)}, not {self.adversarial!r}")
        if self.ref_input not in REF_INPUTS:
            raise ValueError(f"ref_input must be one of {', '.join(REF_INPUTS)}, not {self.ref_input!r}")
        if self.warp and (self.mode != "reference" or self.ref_input != "eyes"):
            raise ValueError('warp needs a reference-mode model with ref_input "eyes" (the warped reference it bends)')
        if self.warp_max <= 0:
            raise ValueError(f"warp_max must be positive, not {self.warp_max}")
        if self.resolution < 32 or self.resolution % 32:
            # G downsamples by 4 and the eye encoder's band (R/4 x R/2) by 8
            raise ValueError(f"resolution must be a positive multiple of 32, not {self.resolution}")
        for name in ("base_channels", "code_dim", "d_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, not {self.n_blocks}")
        for name in ("l1_weight", "adversarial_weight", "code_weight", "iris_weight", "warp_smooth", "warp_align", "warp_decisive"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a dict; unknown keys are an error (a typo must not be silently ignored),
        missing keys take their defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object, not {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        kwargs = {}
        for k, v in d.items():
            kind = known[k].type  # a string under `from __future__ import annotations`
            if kind == "bool" and not isinstance(v, bool):
                raise ValueError(f"model config key {k} must be true or false, not {v!r}")
            if kind in ("int", "float"):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"model config key {k} must be a number, not {v!r}")
                if kind == "int" and v != int(v):
                    raise ValueError(f"model config key {k} must be an integer, not {v!r}")
                v = int(v) if kind == "int" else float(v)
            if kind == "str" and not isinstance(v, str):
                raise ValueError(f"model config key {k} must be a string, not {v!r}")
            kwargs[k] = v
        return cls(**kwargs)


def band_size(resolution: int) -> tuple[int, int]:
    """(height, width) the eye band is resized to for the eye code (EyeEncoder): 2:1 like the
    band itself, a quarter of the crop high (32x64 at 128), so the band's own ~41x82 pixels lose
    little."""
    return resolution // 4, resolution // 2


def band_grid(resolution: int) -> tuple[int, int]:
    """The eye band after the encoder's three stride-2 convolutions (4x8 at 128)."""
    h, w = band_size(resolution)
    return h // 8, w // 8
