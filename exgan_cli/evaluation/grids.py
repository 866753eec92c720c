"""The images an evaluation writes (--grid): columns of aligned faces under their labels, a few
faces of several persons."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from exgan_cli.evaluation.split import Protocol


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    w = tile.shape[1]
    bar = np.full((18, w, 3), 255, np.uint8)
    scale = 0.38
    while len(text) > 3 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > w - 4:
        text = text[:-2] + "~"
    cv2.putText(bar, text, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def make_grid(columns: Sequence[tuple[str, Sequence[np.ndarray]]], tile: int = 128, gap: int = 2) -> np.ndarray:
    """Columns of tiles (each resized to tile x tile) under their labels: RGB uint8."""
    import cv2

    rows = max(len(t) for _, t in columns)
    cols = []
    for label, tiles in columns:
        cells = [_label(np.zeros((tile, tile, 3), np.uint8), label)]
        for t in tiles:
            if t.shape[0] != tile:
                t = cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA if t.shape[0] > tile else cv2.INTER_CUBIC)
            cells += [np.full((gap, tile, 3), 255, np.uint8), t]
        for _ in range(rows - len(tiles)):
            cells += [np.full((gap, tile, 3), 255, np.uint8), np.full((tile, tile, 3), 255, np.uint8)]
        cols += [np.vstack(cells), np.full((18 + rows * (tile + gap), gap, 3), 255, np.uint8)]
    return np.hstack(cols[:-1])


def grid_faces(protocol: Protocol, rows: int) -> list[int]:
    """Up to ``rows`` target indices for the grid, one person after another (round robin in the
    evaluation order), so that the grid shows several people."""
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(protocol.persons):
        by_person.setdefault(p, []).append(i)
    out: list[int] = []
    depth = 0
    while len(out) < min(rows, len(protocol)):
        for members in by_person.values():
            if depth < len(members) and len(out) < rows:
                out.append(members[depth])
        depth += 1
    return out


def masked_view(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The crop with its holes grey: what a method is given."""
    out = crop.copy()
    out[mask > 0.5] = 128
    return out
