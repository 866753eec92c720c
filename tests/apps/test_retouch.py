"""pipeline.retouch's paste on a real photo: only what the generator was trained to paint is pasted."""

from __future__ import annotations

import numpy as np

from exgan_cli.apps import retouch as pipeline

from exgan_cli.stages import selfcheck
from exgan_cli.files.images import load_image
from exgan_cli.stages.references import load_candidates
from exgan_cli.model.weights import load_pretrained

from conftest import CHAVEZ_CLOSED, CHAVEZ_OPEN, patch_generator


def test_outside_its_holes_the_generator_output_is_never_pasted(tiny_model, monkeypatch):
    """G is trained on the composite only (masked L1): outside the eye boxes its raw output is
    arbitrary. A generator that paints the holes with the input and everything else black must
    leave the photo as it was (up to resampling), although the feathered alpha reaches beyond
    the boxes."""

    def black_outside(model, crops, masks, exemplars):
        return crops.astype(np.float32) * (masks[..., None] > 0.5)

    patch_generator(monkeypatch, black_outside)
    model = load_pretrained(tiny_model, device="cpu")
    candidates, _ = load_candidates(CHAVEZ_OPEN[:1])
    rgb = load_image(CHAVEZ_CLOSED).pixels
    options = pipeline.RetouchOptions(self_check=selfcheck.SelfCheckConfig(enabled=False))
    result = pipeline.retouch(rgb, candidates, model, options)
    assert result.faces[0].status == "retouched"
    diff = np.abs(result.pixels.astype(int) - rgb.astype(int)).max(axis=-1)
    changed = diff[diff > 0]
    assert changed.size > 100  # the eye regions were pasted (resampled) ...
    assert np.percentile(changed, 99) < 20 and diff.max() < 40  # ... with no dark fringe
