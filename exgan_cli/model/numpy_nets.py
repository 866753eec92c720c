"""The bundled networks' forward passes in numpy, for inference on the CPU without torch.

Why: importing torch costs ~2.4 s of CPU, the largest single item of a cold `exgan open-eyes`
(benchmarks/cold_start.py), while running these small networks once takes a few milliseconds.
So a CPU retouch reads the same safetensors with safetensors.numpy and runs the layers here;
torch stays for training, evaluation and the GPU. The layers mirror model/generator.py,
model/encoder.py and eye_classifier.build_net one for one; tests/model/test_numpy_nets.py checks
every bundled model gives what torch gives (to float32 rounding) and that the expected tensor
shapes below are the torch modules' own.

Arrays are NCHW float32, as in torch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# ---------------------------------------------------------------------------------------
# Layers


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1,
           padding: int = 0, dilation: int = 1) -> np.ndarray:
    """torch.nn.functional.conv2d (zero padding): x (N, C, H, W), w (O, C, kh, kw)."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[2:]
    windows = sliding_window_view(x, ((kh - 1) * dilation + 1, (kw - 1) * dilation + 1), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride, ::dilation, ::dilation]  # (N, C, H', W', kh, kw)
    out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, H', W', O): one BLAS product
    if b is not None:
        out += b
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def leaky_relu(x: np.ndarray, slope: float = 0.2) -> np.ndarray:
    return np.where(x >= 0, x, x * np.float32(slope))


def upsample2(x: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 (F.interpolate(scale_factor=2, mode="nearest"))."""
    return x.repeat(2, axis=2).repeat(2, axis=3)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x @ w.T + b


def max_pool2(x: np.ndarray) -> np.ndarray:
    """nn.MaxPool2d(2): 2x2 windows, an odd last row or column dropped."""
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def shift_sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """generator.shift_sample: bilinear sample of ``image`` (N, C, H, W) at each pixel (x, y)
    moved by ``flow`` (N, 2, H, W), zero outside. (OpenCV's remap rounds the sampling position
    to 1/32 pixel; this is exact, as torch's grid_sample is.)"""
    n, c, h, w = image.shape
    x = np.arange(w, dtype=np.float32)[None, None, :] + flow[:, 0]
    y = np.arange(h, dtype=np.float32)[None, :, None] + flow[:, 1]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    out = np.zeros_like(image)
    batch = np.arange(n)[:, None, None]
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            tap = image[batch, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, H, W, C)
            out += (wy * wx) * (tap.transpose(0, 3, 1, 2) * inside[:, None])
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def blend_warped(pixels: np.ndarray, ref: np.ndarray, ref_valid: np.ndarray, fields: np.ndarray,
                 warp_max: float) -> dict[str, np.ndarray]:
    """generator.blend_warped: the warp head's displacement and weight applied."""
    flow = np.float32(warp_max) * np.tanh(fields[:, :2])
    moved = shift_sample(np.concatenate([ref * ref_valid, ref_valid], axis=1).astype(np.float32), flow)
    valid = np.clip(moved[:, 3:4], 0, 1)
    moved_ref = moved[:, :3] / np.maximum(valid, np.float32(1e-3))
    weight = sigmoid(fields[:, 2:3]) * valid
    return {"raw": weight * moved_ref + (1 - weight) * pixels, "flow": flow, "weight": weight, "pixels": pixels,
            "moved": moved_ref, "moved_valid": valid}


# ---------------------------------------------------------------------------------------
# Generator (model/generator.py)


def generator_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """The tensors a Generator of ModelConfig ``cfg`` holds, with their shapes (its state_dict)."""
    c = cfg.base_channels
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, c_in: int, c_out: int, k: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c_out, c_in, k, k), (c_out,)

    conv("inp", 4 + (4 if cfg.mode == "reference" else 0), c, 5)
    conv("down1", c, 2 * c, 4)
    conv("down2", 2 * c, 4 * c, 4)
    if cfg.mode == "code":
        if cfg.code_at_input:
            shapes["code_in.weight"], shapes["code_in.bias"] = (c, cfg.code_dim), (c,)
        shapes["code_film.weight"], shapes["code_film.bias"] = (8 * c, cfg.code_dim), (8 * c,)
    for i in range(cfg.n_blocks):
        conv(f"blocks.{i}.conv1", 4 * c, 4 * c, 3)
        conv(f"blocks.{i}.conv2", 4 * c, 4 * c, 3)
        shapes[f"blocks.{i}.gain"] = (1,)
    conv("up1.conv", 4 * c, 2 * c, 3)
    conv("up2.conv", 2 * c, c, 3)
    if cfg.skips:
        conv("skip1", 2 * c, 2 * c, 1)
        conv("skip0", c, c, 1)
    conv("out", c, 3, 3)
    if cfg.warp:
        conv("warp_head", c, 3, 3)
    return shapes


class NumpyGenerator:
    """Generator.forward in numpy: called with the same arguments, as NCHW float32 arrays."""

    def __init__(self, cfg, tensors: dict[str, np.ndarray]):
        self.cfg = cfg
        self.t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}

    def _conv(self, name: str, x: np.ndarray, **kw) -> np.ndarray:
        return conv2d(x, self.t[f"{name}.weight"], self.t[f"{name}.bias"], **kw)

    def __call__(self, image_masked: np.ndarray, mask: np.ndarray, ref: np.ndarray | None = None,
                 ref_mask: np.ndarray | None = None, code: np.ndarray | None = None) -> np.ndarray:
        return self.outputs(image_masked, mask, ref, ref_mask, code)["raw"]

    def outputs(self, image_masked: np.ndarray, mask: np.ndarray, ref: np.ndarray | None = None,
                ref_mask: np.ndarray | None = None, code: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Generator.outputs: "raw", and a warp model's "flow", "weight" and "pixels"."""
        cfg, t = self.cfg, self.t
        x = [image_masked, mask]
        if cfg.mode == "reference":
            if ref is None or ref_mask is None:
                raise ValueError("a reference-mode generator needs ref and ref_mask")
            x += [ref, ref_mask]
        if cfg.mode == "code" and code is None:
            raise ValueError("a code-mode generator needs code")
        h = self._conv("inp", np.concatenate(x, axis=1).astype(np.float32), padding=2)
        if cfg.mode == "code" and cfg.code_at_input:
            h = h + linear(code, t["code_in.weight"], t["code_in.bias"])[:, :, None, None]
        h0 = leaky_relu(h)
        h1 = leaky_relu(self._conv("down1", h0, stride=2, padding=1))
        h = leaky_relu(self._conv("down2", h1, stride=2, padding=1))
        if cfg.mode == "code":
            scale, shift = np.split(linear(code, t["code_film.weight"], t["code_film.bias"])[:, :, None, None], 2, axis=1)
            h = h * (1 + scale) + shift
        for i in range(cfg.n_blocks):
            d = 2 ** (i % 4)  # as Generator: dilations 1, 2, 4, 8, 1, ...
            r = self._conv(f"blocks.{i}.conv1", leaky_relu(h), padding=d, dilation=d)
            r = self._conv(f"blocks.{i}.conv2", leaky_relu(r), padding=1)
            h = h + t[f"blocks.{i}.gain"] * r
        h = leaky_relu(self._conv("up1.conv", upsample2(h), padding=1))
        if cfg.skips:
            h = h + self._conv("skip1", h1)
        h = leaky_relu(self._conv("up2.conv", upsample2(h), padding=1))
        if cfg.skips:
            h = h + self._conv("skip0", h0)
        pixels = np.tanh(self._conv("out", h, padding=1))
        if not cfg.warp:
            return {"raw": pixels}
        return blend_warped(pixels, ref, ref_mask, self._conv("warp_head", h, padding=1), cfg.warp_max)


# ---------------------------------------------------------------------------------------
# Eye encoder (model/encoder.py), code mode


def encoder_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """The tensors an EyeEncoder of ``cfg`` holds (convs are nn.Sequential indices 0, 2, 4)."""
    from exgan_cli.model.config import band_grid

    c = cfg.base_channels
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (c_in, c_out) in zip((0, 2, 4), ((3, c), (c, 2 * c), (2 * c, 4 * c))):
        shapes[f"convs.{i}.weight"], shapes[f"convs.{i}.bias"] = (c_out, c_in, 4, 4), (c_out,)
    gh, gw = band_grid(cfg.resolution)
    shapes["fc.weight"], shapes["fc.bias"] = (cfg.code_dim, 4 * c * gh * gw), (cfg.code_dim,)
    return shapes


class NumpyEncoder:
    """EyeEncoder.forward in numpy: aligned faces (N, 3, R, R) in [-1, 1] -> codes (N, code_dim)."""

    def __init__(self, cfg, tensors: dict[str, np.ndarray]):
        self.cfg = cfg
        self.t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        import cv2

        from exgan_cli.model.config import band_size
        from exgan_cli.stages.geometry import eye_band

        r = self.cfg.resolution
        if tuple(faces.shape[-2:]) != (r, r):
            raise ValueError(f"the eye encoder expects aligned faces (N, 3, {r}, {r}), got {tuple(faces.shape)}")
        x0, y0, x1, y1 = eye_band(r)
        bh, bw = band_size(r)
        # crop_eye_band's bilinear resize (align_corners=False, no antialiasing) is OpenCV's INTER_LINEAR
        h = np.stack([
            cv2.resize(np.ascontiguousarray(f[:, y0:y1, x0:x1].transpose(1, 2, 0)), (bw, bh), interpolation=cv2.INTER_LINEAR)
            for f in faces.astype(np.float32)
        ]).transpose(0, 3, 1, 2)
        for i in (0, 2, 4):
            h = leaky_relu(conv2d(h, self.t[f"convs.{i}.weight"], self.t[f"convs.{i}.bias"], stride=2, padding=1))
        return linear(h.reshape(len(h), -1), self.t["fc.weight"], self.t["fc.bias"])


# ---------------------------------------------------------------------------------------
# Eye-state network (stages/eye_classifier.build_net)


def eye_net_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """The tensors of an EyeStateNet of EyeNetConfig ``cfg``: per stage a bias-free conv and a
    BatchNorm (nn.Sequential indices: [pool,] conv, bn, relu), then the head."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in, idx = 1, 0
    for i, c in enumerate(cfg.channels):
        idx += 1 if i else 0  # the max-pool
        shapes[f"features.{idx}.weight"] = (c, c_in, 3, 3)
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"features.{idx + 1}.{k}"] = (c,)
        shapes[f"features.{idx + 1}.num_batches_tracked"] = ()
        idx += 3
        c_in = c
    shapes["head.weight"], shapes["head.bias"] = (1, c_in + (2 if cfg.use_ear else 0)), (1,)
    return shapes


class NumpyEyeNet:
    """EyeStateNet in eval mode: bands (N, 1, H, W), EARs (N, 2) or None -> logits (N,)."""

    def __init__(self, cfg, tensors: dict[str, np.ndarray], eps: float = 1e-5):
        self.cfg = cfg
        self.stages = []  # (conv weight, BatchNorm folded into a scale and a shift)
        idx = 0
        for i, _ in enumerate(cfg.channels):
            idx += 1 if i else 0
            bn = {k: tensors[f"features.{idx + 1}.{k}"].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var")}
            scale = bn["weight"] / np.sqrt(bn["running_var"] + eps)
            shift = bn["bias"] - bn["running_mean"] * scale
            self.stages.append((tensors[f"features.{idx}.weight"].astype(np.float32),
                                scale.astype(np.float32)[:, None, None], shift.astype(np.float32)[:, None, None]))
            idx += 3
        self.head = (tensors["head.weight"].astype(np.float32), tensors["head.bias"].astype(np.float32))

    def __call__(self, x: np.ndarray, ear: np.ndarray | None = None) -> np.ndarray:
        h = x.astype(np.float32)
        for i, (w, scale, shift) in enumerate(self.stages):
            if i:
                h = max_pool2(h)
            h = np.maximum(conv2d(h, w, padding=1) * scale + shift, 0)
        h = h.mean(axis=(2, 3))
        if self.cfg.use_ear:
            if ear is None:
                raise ValueError("this eye-state network needs the two EARs")
            h = np.concatenate([h, (ear.astype(np.float32) - 0.25) / 0.1], axis=1)
        return linear(h, *self.head)[:, 0]
