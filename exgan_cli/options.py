"""How to retouch: the one settings object of `exgan open-eyes`, `exgan batch` and the Python API.

The CLI's flags map one to one onto these fields (commands/options.py declares them once), the
Python API takes the same object (``exgan_cli.open_eyes(photo, refs, options=...)``), and every
runner passes it unchanged down to ``apps.retouch.retouch``. No torch or dlib here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exgan_cli.stages.blend import BlendConfig
from exgan_cli.stages.selfcheck import SelfCheckConfig

__all__ = ["RetouchOptions", "BlendConfig", "SelfCheckConfig"]


@dataclass
class RetouchOptions:
    # Which faces
    # "closed": faces whose eyes are closed; "narrow": those and the narrowed ones (smiles, squints:
    # left alone by default); "all": every face. Eyes that cannot be seen (sunglasses) never.
    faces: str = "closed"
    face_index: int | None = None  # only this face (index in the left-to-right order)
    only: tuple[int, ...] | None = None  # only among these faces (indices), e.g. one person's (batch)
    # Finding them
    detector: str = "auto"  # "auto" (HOG, then CNN when HOG finds none), "hog" or "cnn"
    min_face: float | None = None  # smallest face width (px) looked for; None: faces.MIN_FACE (40)
    # References
    any_identity: bool = False  # accept references of another person
    identity_threshold: float | None = None  # None: faces.SAME_PERSON_THRESHOLD
    cache: bool = True  # reuse stored analyses of reference photos (stages/reference_cache.py)
    # In-paint each face with up to this many of its best references and keep the result whose
    # identity descriptor is closest to the face's own (1: the best-ranked reference only). On
    # real closed eyes, 2 cuts the identity cost of new eyes by ~a quarter (benchmarks/best_of.py).
    best_of: int = 2
    # Largest head-pose difference (degrees, yaw and pitch together) between a face and its reference
    # that the model handles well (measured: docs/self_check.md); beyond it the face is left as it
    # was with the reason, unless ``force``.
    pose_limit: float = 30.0
    force: bool = False  # retouch past the pose limit (the report says so)
    # The model
    weights: str | None = None  # model folder or Hub id OWNER/NAME[@REVISION]; None: the bundled default
    device: str = "auto"  # where the generator runs: "auto", "cpu" or "cuda"
    # Pasting back and checking (``blend.detail``: full-resolution detail; ``self_check.enabled``)
    blend: BlendConfig = field(default_factory=BlendConfig)
    self_check: SelfCheckConfig = field(default_factory=SelfCheckConfig)  # check each result (stages/selfcheck.py)
