"""Checkpoints: safetensors for the tensors, JSON for everything else (no pickle).

Each file is written to a temporary name and moved into place with os.replace; the step is in
both, and a mismatch (a crash between the two renames) is refused on resume. A checkpoint holds
every network, both optimizers and every RNG (numpy, Python, torch, CUDA; one entry per rank),
so on CPU a resumed run is bit-for-bit the run that never stopped.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exgan_cli.errors import WeightsError
from exgan_cli.files.images import atomic_write_bytes
from exgan_cli.training.config import CHECKPOINT_META, CHECKPOINT_TENSORS, RUN_FORMAT

if TYPE_CHECKING:
    import torch


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def rng_state(sampler_rng: np.random.Generator, device: "torch.device") -> dict:
    import torch

    np_global = np.random.get_state()
    state = {
        "numpy": sampler_rng.bit_generator.state,
        "numpy_global": [np_global[0], np_global[1].tolist(), int(np_global[2]), int(np_global[3]), float(np_global[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "torch": _b64(torch.get_rng_state().numpy().tobytes()),
    }
    if device.type == "cuda":
        state["cuda"] = _b64(torch.cuda.get_rng_state(device).numpy().tobytes())
    return state


def set_rng_state(state: dict, sampler_rng: np.random.Generator, device: "torch.device") -> None:
    import torch

    sampler_rng.bit_generator.state = state["numpy"]
    g = state["numpy_global"]
    np.random.set_state((g[0], np.array(g[1], dtype=np.uint32), g[2], g[3], g[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["cuda"])), dtype=torch.uint8), device)


def _optimizer_to_flat(opt, prefix: str) -> tuple[dict, dict]:
    """An optimizer's state_dict as (tensors for safetensors, JSON-able rest)."""
    import torch

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.state.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "state_ids": sorted(sd["state"]), "scalars": scalars}


def optimizer_from_flat(opt, tensors: dict, meta: dict, prefix: str) -> None:
    state: dict[int, dict] = {int(pid): {} for pid in meta["state_ids"]}
    head = f"{prefix}.state."
    for key, v in tensors.items():
        if key.startswith(head):
            pid, name = key[len(head) :].split(".", 1)
            state[int(pid)][name] = v
    for pid, d in meta["scalars"].items():
        state[int(pid)].update(d)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run_dir: Path, modules: dict, optimizers: dict, meta: dict) -> None:
    """checkpoint.safetensors (module tensors under "<name>.", optimizer tensors under
    "<opt>.state.<param>.<key>") and checkpoint.json (meta + optimizer hyper-parameters)."""
    from safetensors.torch import save

    tensors, opt_meta = {}, {}
    for name, m in modules.items():
        if m is not None:
            tensors.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
    for name, opt in optimizers.items():
        t, rest = _optimizer_to_flat(opt, name)
        tensors.update(t)
        opt_meta[name] = rest
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {**meta, "format": RUN_FORMAT, "optimizers": opt_meta, "modules": [k for k, m in modules.items() if m is not None]}
    atomic_write_bytes(run_dir / CHECKPOINT_TENSORS, save(tensors, metadata={"format": "pt", "step": str(meta["step"])}))
    atomic_write_bytes(run_dir / CHECKPOINT_META, (json.dumps(meta) + "\n").encode("utf-8"))


def read_checkpoint(run_dir: Path) -> tuple[dict, dict]:
    """(meta from checkpoint.json, tensors from checkpoint.safetensors) of a run folder, checked
    to be the same step."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    meta_path, tensor_path = run_dir / CHECKPOINT_META, run_dir / CHECKPOINT_TENSORS
    if not meta_path.is_file() or not tensor_path.is_file():
        raise WeightsError(f"{run_dir}: no checkpoint ({CHECKPOINT_META} and {CHECKPOINT_TENSORS})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with safe_open(str(tensor_path), "pt") as f:
            step = (f.metadata() or {}).get("step")
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError, SafetensorError) as e:
        raise WeightsError(f"{run_dir}: unreadable checkpoint: {e}") from None
    if meta.get("format") != RUN_FORMAT:
        raise WeightsError(f"{meta_path}: not an {RUN_FORMAT} checkpoint")
    if str(meta.get("step")) != step:
        raise WeightsError(f"{run_dir}: {CHECKPOINT_META} (step {meta.get('step')}) and {CHECKPOINT_TENSORS} (step {step}) differ")
    return meta, tensors


def init_from_weights(folder: Path, g, enc=None) -> None:
    """Start G (and the eye encoder C) from an exported model folder of the same mode: every
    tensor whose name and shape match is copied. A reference generator's input convolution is
    copied for the target's channels only when the exemplar channels changed meaning (a "face"
    model starting an "eyes" one); those start at zero, so the warm start is the old in-painter
    and the exemplar's weight grows from there. New modules (G's skips) keep their own init."""
    import torch
    from safetensors.torch import load_file

    from exgan_cli.model.weights import CONFIG_FILE as MODEL_CONFIG, read_config

    folder = Path(folder)
    old_cfg = read_config(folder / MODEL_CONFIG, str(folder))[0]
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError) as e:
        raise WeightsError(f"{folder}: cannot start from these weights: {e}") from None
    if old_cfg.mode != g.cfg.mode:
        raise WeightsError(f"{folder}: a {old_cfg.mode} model cannot start a {g.cfg.mode} run")
    same_exemplar = old_cfg.ref_input == g.cfg.ref_input
    copied = 0
    with torch.no_grad():
        for prefix, module in (("generator.", g), ("encoder.", enc)):
            if module is None:
                continue
            for name, p in module.state_dict().items():
                src = tensors.get(prefix + name)
                if src is None or src.shape != p.shape:
                    continue
                if prefix == "generator." and name == "inp.weight" and g.cfg.mode == "reference" and not same_exemplar:
                    p.zero_()
                    p[:, :4].copy_(src[:, :4])
                else:
                    p.copy_(src)
                copied += 1
    if copied < len([k for k in tensors if k.startswith("generator.")]):
        raise WeightsError(f"{folder}: only {copied} of its tensors fit this run's networks (other widths or depth?)")


def load_module(module, tensors: dict, prefix: str) -> None:
    got = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(got, strict=True)


def trim_log(path: Path, step: int) -> None:
    """Keep the log lines up to `step` (those after the checkpoint a run resumes from belong to
    steps that will be done again); step 0: start a fresh log."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode("utf-8"))
