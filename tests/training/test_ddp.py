"""Multi-process training: torchrun, 2 CPU processes, gloo, a couple of steps on a synthetic cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from _synthetic import write_synthetic_cache
from exgan_cli.training import export
from conftest import ROOT

ROOT = ROOT


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "exgan_cli", *args]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    # --standalone picks a free port and then binds it: on a shared machine another process can
    # take it in between; that is the machine's race, not training's, so try once more
    if p.returncode and any(s in p.stderr for s in ("Address already in use", "EADDRINUSE", "DistNetworkError")):
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    return p


def test_two_cpu_processes_train_and_resume(tmp_path):
    cache = write_synthetic_cache(tmp_path / "syn.npz", persons=4, per_person=5, resolution=32)
    run = tmp_path / "run"
    common = ["--resolution", "32", "--base-channels", "8", "--n-blocks", "2", "--set", "model.d_channels=8",
              "--device", "cpu", "--threads", "1", "-b", "3", "--log-every", "1", "--sample-every", "2", "-q"]
    p = _torchrun(["train", "--cache", str(cache), "--out", str(run), "--steps", "2", *common], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 2 and meta["world_size"] == 2
    assert meta["images_seen"] == 2 * 3 * 2  # steps x batch x processes
    assert len(meta["rng"]) == 2 and meta["rng"][0]["numpy"] != meta["rng"][1]["numpy"]  # each rank its own batches
    assert meta["commands"][0].startswith("torchrun --nproc_per_node 2 -m exgan_cli train")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2] and all("l1" in e for e in log)  # rank 0 alone writes
    assert (run / "samples" / "step_000002.png").is_file() and (run / "config.json").is_file()
    assert not list(run.glob(".*tmp*"))

    # continue the 2-process run, then export it and load it
    p = _torchrun(["train", "--resume", str(run), "--steps", "3", "-q", "--threads", "1"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 3 and meta["images_seen"] == 3 * 3 * 2 and len(meta["commands"]) == 2
    tensors = load_file(str(run / "checkpoint.safetensors"))
    assert any(k.startswith("opt_d.state.") for k in tensors)
    folder = export.export_run(run, tmp_path / "model")
    from exgan_cli.model.weights import load_pretrained

    model = load_pretrained(folder)
    assert model.training["world_size"] == 2 and model.training["steps"] == 3
