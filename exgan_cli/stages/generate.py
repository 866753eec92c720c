"""The generator stage: aligned faces in, in-painted crops out, for every model mode.

``align_for_model`` puts a face into the model's canonical crop with its eye holes,
``exemplar_batch`` builds what a reference-mode or code-mode generator reads from each target's
reference (stages/exemplar.py), and ``inpaint_crops`` runs the generator once over many faces.
open-eyes, evaluate and the tests all call the generator through these, so the modes cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from exgan_cli.stages import geometry
from exgan_cli.stages.geometry import Box


@dataclass
class AlignedFace:
    """One face in the model's canonical crop."""

    crop: np.ndarray  # (res, res, 3) uint8
    matrix: np.ndarray  # (2, 3) photo -> crop
    landmarks: np.ndarray  # (68, 2) in the crop
    boxes: list[Box]  # the two eye holes in the crop
    mask: np.ndarray  # (res, res) float32, 1 in the holes


def align_for_model(rgb: np.ndarray, landmarks: np.ndarray, model) -> AlignedFace:
    """Aligned crop, photo->crop matrix, eye boxes and mask for one face (the model's geometry)."""
    crop, matrix = geometry.align_face(rgb, landmarks, model.align_cfg)
    lm = geometry.transform_points(landmarks, matrix)
    boxes = geometry.eye_boxes(lm, model.mask_cfg)
    mask = geometry.boxes_to_mask(boxes, model.align_cfg.resolution)
    return AlignedFace(crop=crop, matrix=matrix, landmarks=lm, boxes=boxes, mask=mask)


def exemplar_batch(model, targets: Sequence[AlignedFace], refs: Sequence[AlignedFace]) -> dict[str, np.ndarray]:
    """exemplar.pair_inputs for each (target, reference), stacked (a reference's boxes are not read)."""
    from exgan_cli.stages.exemplar import pair_inputs

    rows = [
        pair_inputs(model.model_cfg, t.crop, t.landmarks, t.mask, t.boxes, r.crop, r.landmarks, r.mask)
        for t, r in zip(targets, refs)
    ]
    return {k: np.stack([row[k] for row in rows]) for k in rows[0]}


@dataclass
class Generated:
    """The generator's output for N crops: raw pixels, and a warp model's field."""

    raw: np.ndarray  # (N, res, res, 3) float 0..255
    flow: np.ndarray | None = None  # (N, res, res, 2) float32, crop pixels (dx, dy): warp models only
    weight: np.ndarray | None = None  # (N, res, res) float32 in [0, 1]: warp models only

    def item(self, i: int) -> "Generated":
        """Face ``i`` alone: raw (res, res, 3), flow (res, res, 2), weight (res, res)."""
        return Generated(self.raw[i], None if self.flow is None else self.flow[i], None if self.weight is None else self.weight[i])


def inpaint_crops(model, crops: np.ndarray, masks: np.ndarray, exemplars: dict[str, np.ndarray] | None) -> np.ndarray:
    """Run the generator on N aligned crops at once; raw output (N, res, res, 3) float in 0..255.

    crops are uint8 (N, res, res, 3); masks float (N, res, res), 1 = hole; exemplars the stacked
    exemplar.pair_inputs of each crop's reference (exemplar_batch; unused in mode "none").
    """
    return generate_crops(model, crops, masks, exemplars).raw


def generate_crops(model, crops: np.ndarray, masks: np.ndarray, exemplars: dict[str, np.ndarray] | None) -> Generated:
    """inpaint_crops with everything G outputs: a warp model's displacement and blend weight too
    (stages/warp.py applies them at full resolution). The same steps for both engines: torch
    tensors on the model's device, or numpy arrays (model/numpy_nets.py); only the conversions differ.
    """
    from exgan_cli.model.numpy_nets import NumpyGenerator

    if isinstance(model.generator, NumpyGenerator):
        def image(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a, dtype=np.float32).transpose(0, 3, 1, 2) / np.float32(127.5) - 1

        def mask(m: np.ndarray) -> np.ndarray:
            return np.asarray(m, dtype=np.float32)[:, None]

        out = _run(model, image, mask, crops, masks, exemplars)
        return _generated({k: np.asarray(v, dtype=np.float32) for k, v in out.items()})
    import torch

    device = next(model.generator.parameters()).device

    def image_t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def mask_t(m: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(m)).to(device).float()[:, None]

    with torch.inference_mode():
        out = _run(model, image_t, mask_t, crops, masks, exemplars)
        return _generated({k: v.float().cpu().numpy() for k, v in out.items()})


def _generated(out: dict[str, np.ndarray]) -> Generated:
    """NCHW arrays in [-1, 1] (and a warp model's fields) -> Generated."""
    raw = ((np.clip(out["raw"], -1, 1) + 1) * 127.5).transpose(0, 2, 3, 1)
    if "flow" not in out:
        return Generated(raw)
    return Generated(raw, np.ascontiguousarray(out["flow"].transpose(0, 2, 3, 1)), np.ascontiguousarray(out["weight"][:, 0]))


def _run(model, image: Any, mask: Any, crops: np.ndarray, masks: np.ndarray, exemplars: dict[str, np.ndarray] | None) -> dict:
    """Everything the generator outputs (Generator.outputs: "raw" in [-1, 1], a warp model's
    "flow" and "weight"), its inputs made by ``image`` and ``mask``."""
    from exgan_cli.stages.exemplar import generator_exemplar

    x, m = image(crops), mask(masks)
    kwargs: dict[str, Any] = {}
    mode = model.model_cfg.mode
    if mode != "none":
        ex = {k: image(exemplars[k]) for k in ("ref", "eyes")} | {k: mask(exemplars[k]) for k in ("ref_mask", "eyes_valid")}
        if mode == "reference":
            kwargs = generator_exemplar(model.model_cfg, ex)
        else:
            kwargs = {"code": model.encoder(ex["ref"])}  # the encoder crops the eye band itself
    return model.generator.outputs(x * (1 - m), m, **kwargs)
