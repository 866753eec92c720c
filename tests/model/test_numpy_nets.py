"""The numpy engine (model/numpy_nets.py) computes what the torch modules compute.

A CPU retouch runs the bundled networks in numpy so that it never imports torch; these tests
hold the two implementations together: the expected tensor shapes are the torch modules' own,
and every bundled network gives the torch output on real and random inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exgan_cli.errors import WeightsError
from exgan_cli.model import EyeEncoder, Generator, ModelConfig, numpy_nets
from exgan_cli.model.weights import bundled_weights_dir, load_pretrained
from exgan_cli.stages import eye_classifier

MODELS = ("exgan-reference-128", "exgan-code-128", "exgan-none-128")


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("mode", ["reference", "code", "none"])
@pytest.mark.parametrize("variant", [{}, {"skips": False, "code_at_input": False, "n_blocks": 5}])
def test_expected_shapes_are_the_modules(mode, variant):
    cfg = ModelConfig(mode=mode, resolution=64, base_channels=8, code_dim=16, **({"n_blocks": 2} | variant))
    assert numpy_nets.generator_shapes(cfg) == _shapes(Generator(cfg))
    assert numpy_nets.encoder_shapes(cfg) == _shapes(EyeEncoder(cfg))


def test_eye_net_shapes_are_the_modules():
    for cfg in (eye_classifier.EyeNetConfig(), eye_classifier.EyeNetConfig(channels=(8, 16), use_ear=True)):
        assert numpy_nets.eye_net_shapes(cfg) == _shapes(eye_classifier.build_net(cfg))


@pytest.mark.parametrize("stride,padding,dilation,k", [(1, 1, 1, 3), (2, 1, 1, 4), (1, 4, 4, 3), (1, 2, 1, 5), (1, 0, 1, 1)])
def test_conv2d_is_torchs(stride, padding, dilation, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 17, 20)).astype(np.float32)
    w = rng.standard_normal((7, 5, k, k)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation).numpy()
    got = numpy_nets.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _inputs(cfg: ModelConfig, rng: np.random.Generator, n: int = 2) -> dict[str, np.ndarray]:
    r = cfg.resolution
    mask = np.zeros((n, 1, r, r), np.float32)
    mask[:, :, r // 3: r // 2, r // 5: 4 * r // 5] = 1
    image = rng.uniform(-1, 1, (n, 3, r, r)).astype(np.float32) * (1 - mask)
    out = {"image_masked": image, "mask": mask}
    if cfg.mode == "reference":
        out |= {"ref": rng.uniform(-1, 1, (n, 3, r, r)).astype(np.float32), "ref_mask": mask.copy()}
    return out


@pytest.mark.parametrize("name", MODELS)
def test_bundled_generators_agree(name):
    folder = bundled_weights_dir() / name
    fast = load_pretrained(folder, engine="numpy")
    slow = load_pretrained(folder, device="cpu")
    assert isinstance(fast.generator, numpy_nets.NumpyGenerator) and fast.device == "cpu"
    assert fast.sha256 == slow.sha256 and fast.model_cfg == slow.model_cfg
    rng = np.random.default_rng(1)
    inputs = _inputs(fast.model_cfg, rng)
    with torch.inference_mode():
        t_in = {k: torch.from_numpy(v) for k, v in inputs.items()}
        if fast.model_cfg.mode == "code":
            faces = rng.uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32)
            want_code = slow.encoder(torch.from_numpy(faces)).numpy()
            got_code = fast.encoder(faces)
            np.testing.assert_allclose(got_code, want_code, rtol=1e-3, atol=1e-3)
            inputs["code"], t_in["code"] = got_code, torch.from_numpy(want_code)
        want = slow.generator(**t_in).numpy()
    got = fast.generator(**inputs)
    assert got.shape == want.shape == (2, 3, 128, 128)
    assert np.abs(got - want).max() < 1e-4  # float32 rounding: < 0.013 of a grey level


@pytest.mark.parametrize("name", MODELS)
def test_inpaint_crops_same_with_both_engines_on_real_faces(name):
    """The whole generator call of open-eyes (stages/generate: alignment, the exemplar inputs of
    each mode, the encoder in code mode) on real photos: numpy gives torch's pixels."""
    from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN
    from exgan_cli.files.images import load_image
    from exgan_cli.stages.faces import detect_faces
    from exgan_cli.stages.generate import align_for_model, exemplar_batch, inpaint_crops

    folder = bundled_weights_dir() / name
    fast, slow = load_pretrained(folder, engine="numpy"), load_pretrained(folder, device="cpu")
    aligned = []
    for path in (CHAVEZ_CLOSED, CHAVEZ_OPEN[0], CHAVEZ_OPEN[1]):
        rgb = load_image(path).pixels
        aligned.append(align_for_model(rgb, detect_faces(rgb)[0].landmarks, fast))
    targets, refs = [aligned[0], aligned[1]], [aligned[1], aligned[2]]
    crops = np.stack([t.crop for t in targets])
    masks = np.stack([t.mask for t in targets])
    outputs = [inpaint_crops(m, crops, masks, exemplar_batch(m, targets, refs)) for m in (fast, slow)]
    assert outputs[0].shape == outputs[1].shape == (2, 128, 128, 3)
    assert np.abs(outputs[0] - outputs[1]).max() < 0.01  # of 255


@pytest.mark.parametrize("mode", ["reference", "code"])
def test_variant_networks_agree_with_random_weights(mode):
    """Configurations the bundled models do not use: no skips, no code at the input, five blocks
    (dilations 1, 2, 4, 8, 1); random weights and non-zero residual gains."""
    torch.manual_seed(3)
    cfg = ModelConfig(mode=mode, resolution=64, base_channels=8, code_dim=16, n_blocks=5, skips=False, code_at_input=False)
    gen = Generator(cfg).eval()
    for block in gen.blocks:
        block.gain.data.fill_(0.7)
    fast = numpy_nets.NumpyGenerator(cfg, {k: v.numpy() for k, v in gen.state_dict().items()})
    rng = np.random.default_rng(4)
    inputs = _inputs(cfg, rng)
    if mode == "code":
        inputs["code"] = rng.standard_normal((2, 16)).astype(np.float32)
    with torch.inference_mode():
        want = gen(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
    assert np.abs(fast(**inputs) - want).max() < 1e-4
    enc = EyeEncoder(cfg).eval()
    faces = rng.uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        want_code = enc(torch.from_numpy(faces)).numpy()
    got_code = numpy_nets.NumpyEncoder(cfg, {k: v.numpy() for k, v in enc.state_dict().items()})(faces)
    np.testing.assert_allclose(got_code, want_code, rtol=1e-3, atol=1e-4)


def test_eye_net_with_ears_agrees():
    torch.manual_seed(5)
    cfg = eye_classifier.EyeNetConfig(channels=(8, 16, 16), use_ear=True, width=48, height=24)
    net = eye_classifier.build_net(cfg)
    for m in net.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    fast = numpy_nets.NumpyEyeNet(cfg, {k: v.numpy() for k, v in net.state_dict().items()})
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 1, 25, 49)).astype(np.float32)  # odd sizes: max-pool drops the last row/column
    ears = rng.uniform(0.1, 0.35, (3, 2)).astype(np.float32)
    with torch.inference_mode():
        want = net(torch.from_numpy(x), torch.from_numpy(ears)).numpy()
    np.testing.assert_allclose(fast(x, ears), want, rtol=1e-4, atol=1e-4)


def test_numpy_engine_refuses_wrong_tensors(tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(bundled_weights_dir() / "exgan-none-128", folder)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace('"n_blocks": 4', '"n_blocks": 5'))
    with pytest.raises(WeightsError, match="lacks 5 tensors: generator.blocks.4"):
        load_pretrained(folder, engine="numpy")


def test_eye_classifier_runs_without_torch_and_agrees():
    """The shipped eye-state classifier, loaded for inference (numpy), gives torch's P(closed)."""
    from exgan_cli.model.weights import read_model_tensors

    clf = eye_classifier.load_classifier(eye_classifier.default_folder())
    assert isinstance(clf.net, numpy_nets.NumpyEyeNet)
    net = eye_classifier.build_net(clf.cfg)
    tensors = read_model_tensors(eye_classifier.default_folder() / "model.safetensors", "t", ("net.",))
    net.load_state_dict({k[4:]: v for k, v in tensors.items()})
    net.eval()
    rng = np.random.default_rng(2)
    bands = rng.standard_normal((6, clf.cfg.height, clf.cfg.width)).astype(np.float32)
    with torch.inference_mode():
        want = torch.sigmoid(net(torch.from_numpy(bands)[:, None])).numpy()
    np.testing.assert_allclose(clf.probabilities(bands), want, atol=1e-5)


def test_cpu_retouch_never_imports_torch(tmp_path):
    """The point of the engine: `exgan open-eyes` on the CPU runs without importing torch."""
    import subprocess
    import sys

    from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN

    code = (
        "import sys\n"
        "from exgan_cli.cli import main\n"
        f"sys.argv = ['exgan', 'open-eyes', {str(CHAVEZ_CLOSED)!r}, '--ref', {str(CHAVEZ_OPEN[0])!r}, '-o', {str(tmp_path / 'o.png')!r}, '--device', 'cpu', '--quiet']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**__import__("os").environ, "EXGAN_CACHE_DIR": str(tmp_path / "c")})
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "o.png").is_file()
