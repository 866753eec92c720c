"""The wheel carries the default models, and an installed exgan finds them.

The full check (a fresh virtual environment, the wheel installed with its dependencies, open-eyes
run from outside the checkout) is in .ci/run; here the wheel is built from a copy of the sources
and taken apart.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from exgan_cli import __version__
from exgan_cli.model.bundled import DEFAULT_MODEL, ENV_VAR, locate_weights

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
SHIPPED = ("config.json", "model.safetensors", "README.md")  # per model folder


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in SHIPPED:
        (folder / name).write_text("x")
    return folder


def test_locate_weights_order(tmp_path):
    """$EXGAN_WEIGHTS_DIR, then the wheel's exgan_cli/_weights, then a checkout's weights/."""
    site = tmp_path / "site-packages"
    package = site / "exgan_cli"
    package.mkdir(parents=True)
    checkout = site / "weights"

    # nothing anywhere: where a wheel keeps them, marked missing
    loc = locate_weights(env={}, package_dir=package)
    assert (loc.path, loc.source) == (package / "_weights", "missing")
    assert "is not there" in loc.describe()

    # a checkout (editable install): its weights/
    _model(checkout / DEFAULT_MODEL)
    loc = locate_weights(env={}, package_dir=package)
    assert (loc.path, loc.source) == (checkout, "checkout")
    assert loc.describe() == f"{checkout} (the source checkout's weights/)"

    # an empty or stray exgan_cli/_weights (no model in it) does not hide the checkout
    (package / "_weights" / "__pycache__").mkdir(parents=True)
    assert locate_weights(env={}, package_dir=package).source == "checkout"

    # an installed wheel: the packaged copy wins
    _model(package / "_weights" / DEFAULT_MODEL)
    loc = locate_weights(env={}, package_dir=package)
    assert (loc.path, loc.source) == (package / "_weights", "packaged")
    assert loc.describe() == f"{package / '_weights'} (packaged with exgan)"

    # the environment beats both, even where nothing is (the load then says so)
    loc = locate_weights(env={ENV_VAR: str(tmp_path / "mine")}, package_dir=package)
    assert (loc.path, loc.source) == (tmp_path / "mine", "env")
    assert loc.describe().endswith(f"(${ENV_VAR}); {DEFAULT_MODEL} is not there")
    assert locate_weights(env={ENV_VAR: ""}, package_dir=package).source == "packaged"


def test_this_checkout_reads_its_weights(monkeypatch):
    from exgan_cli.model import weights

    monkeypatch.delenv(ENV_VAR, raising=False)
    loc = locate_weights()
    assert (loc.path, loc.source) == (WEIGHTS, "checkout")
    assert weights.bundled_weights_dir() == WEIGHTS


def _copy_sources(dest: Path) -> Path:
    """What a build reads, copied, so that the build writes nothing into the checkout (setuptools
    builds in place: build/, *.egg-info) and leftovers of earlier builds cannot leak in."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "exgan_cli", dest / "exgan_cli", ignore=ignore)
    shutil.copytree(WEIGHTS, dest / "weights", ignore=ignore)
    return dest


def _setuptools_is_new() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp / "src")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)]
    if _setuptools_is_new():  # the installed setuptools will do: no isolated build environment to set up
        cmd.insert(4, "--no-build-isolation")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    (path,) = (tmp / "dist").glob("exgan-*.whl")
    return path


def test_wheel_holds_every_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    models = sorted(p.parent for p in WEIGHTS.glob("*/config.json"))
    assert DEFAULT_MODEL in [m.name for m in models] and (WEIGHTS / "eye-state") in models
    with zipfile.ZipFile(wheel) as z:
        for m in models:
            for name in SHIPPED:
                inside = f"exgan_cli/_weights/{m.name}/{name}"
                assert inside in names, f"{inside} missing from {wheel.name}"
                assert z.getinfo(inside).file_size == (m / name).stat().st_size  # this build's files
    # inference files only: no sample grids
    assert not [n for n in names if n.startswith("exgan_cli/_weights/") and not n.endswith(SHIPPED)]


def test_wheel_holds_every_package(wheel):
    """pyproject.toml lists the packages by hand (the data package needs it): a new sub-package
    of exgan_cli/ must be added there."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in sorted((ROOT / "exgan_cli").rglob("__init__.py")):
        inside = init.relative_to(ROOT).as_posix()
        assert inside in names, f"{inside} missing from the wheel: add its package to pyproject.toml"
    tracked = subprocess.run(["git", "ls-files", "exgan_cli"], cwd=ROOT, capture_output=True, text=True)
    for path in tracked.stdout.split():
        if path.endswith(".py"):
            assert path in names, f"{path} missing from the wheel"


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = z.read(info).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in z.namelist())
        assert "exgan = exgan_cli.cli:main" in z.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert f"Version: {__version__}\n" in meta
    assert "License-Expression: MIT\n" in meta
    assert "Requires-Python: >=3.10\n" in meta
    assert "Classifier: Programming Language :: Python :: 3.10\n" in meta


def test_unpacked_wheel_finds_its_own_weights(wheel, tmp_path):
    """The wheel's exgan, imported from where the wheel was unpacked (as in site-packages),
    reports and loads the packaged copy, never the checkout's weights/."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "PYTHONPATH")}
    code = (
        "import exgan_cli, exgan_cli.model.weights as w, exgan_cli.stages.eye_classifier as e; "
        "print(exgan_cli.__file__); print(w.resolve_default()); print(e.default_folder())"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    package = (site / "exgan_cli").resolve()
    assert res.stdout.split("\n")[:3] == [
        str(package / "__init__.py"), str(package / "_weights" / DEFAULT_MODEL), str(package / "_weights" / "eye-state"),
    ]
    res = subprocess.run([sys.executable, "-m", "exgan_cli", "--version"], cwd=site, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        f"exgan {__version__} (Python {platform.python_version()})\n"
        f"default weights: {package / '_weights'} (packaged with exgan)\n"
    )


ABSOLUTE_PATH = re.compile(r"""(?:^|[\s"'`(=\[])(/[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*|[A-Za-z]:\\[^\s"']+)""", re.M)


def test_absolute_path_finder():
    found = [m.group(1) for m in ABSOLUTE_PATH.finditer('"data_dir": "/work/shared/data/lfw", --cache /home/a/c.npz, '
                                                          'C:\\data\\lfw; 2.0 photos/s, ../shared/data, https://x.org/a/b')]
    assert found == ["/work/shared/data/lfw", "/home/a/c.npz", "C:\\data\\lfw;"]


def test_shipped_configs_and_docs_name_no_machine_path():
    """Model configs, model cards and the docs name data by its path relative to the repository
    (../shared/data/lfw) or by what it is: never by where it lay on the machine they were made on."""
    files = [*WEIGHTS.glob("*/config.json"), *WEIGHTS.glob("*/README.md"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    assert len(files) > 10
    found = [f"{f.relative_to(ROOT)}: {m.group(1)}" for f in files for m in ABSOLUTE_PATH.finditer(f.read_text())]
    assert not found, found
