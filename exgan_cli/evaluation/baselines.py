"""The methods an evaluation compares, on the same faces and holes:

  telea, navier-stokes  cv2.inpaint of the aligned crop (Telea 2004; Bertalmio et al. 2001)
  poisson-copy          the reference crop's eye boxes, resized to the target's boxes, pasted with
                        Poisson blending (cv2.seamlessClone, normal clone)
  <model folder>        every --weights: stages.generate.inpaint_crops, the generator of open-eyes

Every result is composited into the holes with the hard mask: open-eyes feathers the border
(blend.feather_alpha), which would mix the true pixels back into the hole and flatter the scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from exgan_cli.errors import WeightsError
from exgan_cli.evaluation.config import BASELINES, LogFn
from exgan_cli.evaluation.pool import Batch
from exgan_cli.stages.geometry import Box, MaskConfig, boxes_to_mask

INPAINT_RADIUS = 3.0  # px at 128 px crops for cv2.inpaint (scaled with the resolution)


@dataclass
class MethodInfo:
    name: str
    kind: str  # "baseline" | "model"
    uses_reference: bool
    resolution: int
    mask: dict
    weights: Optional[str] = None  # model source
    mode: Optional[str] = None  # model mode: reference | code | none
    sha256: Optional[str] = None
    seconds: float = 0.0  # time spent in-painting (both references), without the metrics

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "uses_reference": self.uses_reference,
            "resolution": self.resolution, "mask": self.mask, "weights": self.weights, "mode": self.mode,
            "sha256": self.sha256, "seconds": round(self.seconds, 3),
        }


def model_info(name: str, model: Any) -> MethodInfo:
    """A loaded model (weights.load_pretrained) described for the results."""
    return MethodInfo(
        name=name, kind="model", uses_reference=model.model_cfg.mode != "none", resolution=model.align_cfg.resolution,
        mask=model.mask_cfg.to_dict(), weights=model.source, mode=model.model_cfg.mode, sha256=model.sha256,
    )


# ---------------------------------------------------------------------------------------
# In-painting


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def composite(result: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The crop with its holes (mask 1) taken from ``result``: uint8 (R, R, 3)."""
    m = np.asarray(mask, dtype=np.float32)[..., None]
    return _u8(m * np.asarray(result, np.float32) + (1 - m) * crop.astype(np.float32))


def _radius(resolution: int) -> float:
    return max(1.0, INPAINT_RADIUS * resolution / 128)


def telea_inpaint(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Telea (fast marching) in-painting of the holes; uint8 (R, R, 3)."""
    import cv2

    m = (np.asarray(mask) > 0.5).astype(np.uint8)
    return cv2.inpaint(np.ascontiguousarray(crop), m, _radius(crop.shape[0]), cv2.INPAINT_TELEA)


def navier_stokes_inpaint(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Navier-Stokes in-painting of the holes; uint8 (R, R, 3)."""
    import cv2

    m = (np.asarray(mask) > 0.5).astype(np.uint8)
    return cv2.inpaint(np.ascontiguousarray(crop), m, _radius(crop.shape[0]), cv2.INPAINT_NS)


def _int_box(b: Box, size: int) -> tuple[int, int, int, int]:
    """A box rounded like geometry.boxes_to_mask, kept one pixel inside the image (seamlessClone)."""
    x0, y0 = max(1, int(round(b[0]))), max(1, int(round(b[1])))
    x1, y1 = min(size - 1, int(round(b[2]))), min(size - 1, int(round(b[3])))
    return x0, y0, x1, y1


def poisson_copy_paste(crop: np.ndarray, boxes: Sequence[Box], ref_crop: np.ndarray, ref_boxes: Sequence[Box]) -> np.ndarray:
    """The reference's eye boxes resized onto the target's and Poisson-blended into the crop.

    The target's own pixels inside its boxes are never used: they are first filled by Telea, so
    the boundary values of the Poisson equation come from outside the hole only.
    """
    import cv2

    size = crop.shape[0]
    mask = boxes_to_mask(boxes, size)
    base = telea_inpaint(crop, mask)
    src = base.copy()
    clone = np.zeros((size, size), np.uint8)
    for tb, rb in zip(boxes, ref_boxes):
        x0, y0, x1, y1 = _int_box(tb, size)
        r0, s0, r1, s1 = _int_box(rb, size)
        if x1 - x0 < 2 or y1 - y0 < 2 or r1 - r0 < 2 or s1 - s0 < 2:
            continue
        patch = cv2.resize(ref_crop[s0:s1, r0:r1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        src[y0:y1, x0:x1] = patch
        clone[y0:y1, x0:x1] = 255
    ys, xs = np.nonzero(clone)
    if len(xs) == 0:
        return base
    bx, by = xs.min(), ys.min()
    bw, bh = xs.max() - bx + 1, ys.max() - by + 1
    centre = (int(bx + bw // 2), int(by + bh // 2))  # seamlessClone puts the mask's bounding box here
    out = cv2.seamlessClone(np.ascontiguousarray(src), np.ascontiguousarray(base), clone, centre, cv2.NORMAL_CLONE)
    return composite(out, crop, mask)


def model_inpaint(model: Any, batch: Batch, which: str) -> np.ndarray:
    """The open-eyes generator (stages.generate.inpaint_crops), hard-composited: the model's own output.

    open-eyes then shifts the colours to the photo's skin on a rim just inside the eye boxes
    (blend.match_colour). Here the boxes hold the real eyes the method must not see, so that
    step is left out: it would read the answer.
    """
    from exgan_cli.stages.generate import AlignedFace, exemplar_batch, inpaint_crops

    t, r = batch.targets, batch.refs[which]
    none = np.eye(2, 3, dtype=np.float32)  # crops are already aligned; the matrix is not read here
    targets = [AlignedFace(c, none, lm, b, m) for c, lm, m, b in zip(t.crops, t.landmarks, t.masks, t.boxes)]
    refs = [AlignedFace(c, none, lm, b, m) for c, lm, m, b in zip(r.crops, r.landmarks, r.masks, r.boxes)]
    raw = inpaint_crops(model, t.crops, t.masks, exemplar_batch(model, targets, refs))
    return np.stack([composite(g.astype(np.float32), c, m) for g, c, m in zip(raw, t.crops, t.masks)])


# ---------------------------------------------------------------------------------------
# Methods


class Method:
    """A named in-painting of a Batch with one of its references, timed into ``info.seconds``."""

    def __init__(self, info: MethodInfo, run: Callable[[Batch, str], np.ndarray]):
        self.info = info
        self._run = run

    def run(self, batch: Batch, which: str) -> np.ndarray:
        t = time.perf_counter()
        out = self._run(batch, which)
        self.info.seconds += time.perf_counter() - t
        return out


def baseline(name: str, resolution: int, mask_cfg: MaskConfig, label: Optional[str] = None) -> Method:
    """One of BASELINES, shown as ``label``."""
    info = MethodInfo(
        name=label or name, kind="baseline", uses_reference=name == "poisson-copy", resolution=resolution, mask=mask_cfg.to_dict()
    )
    if name == "telea":
        return Method(info, lambda b, w: np.stack([telea_inpaint(c, m) for c, m in zip(b.targets.crops, b.targets.masks)]))
    if name == "navier-stokes":
        return Method(info, lambda b, w: np.stack([navier_stokes_inpaint(c, m) for c, m in zip(b.targets.crops, b.targets.masks)]))
    if name == "poisson-copy":
        def run(b: Batch, which: str) -> np.ndarray:
            t, r = b.targets, b.refs[which]
            return np.stack([poisson_copy_paste(c, bx, rc, rbx) for c, bx, rc, rbx in zip(t.crops, t.boxes, r.crops, r.boxes)])

        return Method(info, run)
    raise ValueError(f"unknown baseline {name!r} (one of {', '.join(BASELINES)})")


def model_method(name: str, model: Any) -> Method:
    """A loaded generator as a method."""
    return Method(model_info(name, model), lambda b, which: model_inpaint(model, b, which))


def method_groups(resolutions: Sequence[int], models: Sequence[tuple[str, Any]], baselines: Sequence[str]) -> dict[tuple[int, MaskConfig], list[Method]]:
    """(resolution, mask config) -> its methods. The baselines join the first model of each
    resolution (MaskConfig() without models), suffixed "@R" when there are several resolutions."""
    groups: dict[tuple[int, MaskConfig], list[Method]] = {}
    for res in resolutions:
        mask_cfg = next((m.mask_cfg for _, m in models if m.align_cfg.resolution == res), MaskConfig())
        suffix = f"@{res}" if len(resolutions) > 1 else ""
        groups.setdefault((res, mask_cfg), []).extend(baseline(b, res, mask_cfg, b + suffix) for b in baselines)
    for name, m in models:
        groups.setdefault((m.align_cfg.resolution, m.mask_cfg), []).append(model_method(name, m))
    return groups


# ---------------------------------------------------------------------------------------
# Models


def load_models(specs: Sequence[str], device: str, log: Optional[LogFn]) -> list[tuple[str, Any]]:
    """(unique name, model) for every spec: the folder's name, "-2", "-3"... when taken."""
    from exgan_cli.model.weights import load_pretrained, resolve_device

    dev = resolve_device(device)
    models, names = [], set()
    for spec in specs:
        model = load_pretrained(spec, device=dev)
        name = Path(str(spec).rstrip("/")).name or str(spec)
        base, k = name, 2
        while name in names or name in BASELINES:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        if log:
            log(f"model {name}: {model.model_cfg.mode} mode, {model.align_cfg.resolution} px, {model.source} on {dev}")
        models.append((name, model))
    return models


def default_weights() -> list[str]:
    """The bundled default model's folder when it is there, else nothing (baselines only)."""
    from exgan_cli.model.weights import resolve_default

    try:
        return [str(resolve_default())]
    except WeightsError:
        return []
