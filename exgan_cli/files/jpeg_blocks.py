"""The block arithmetic of a JPEG patch (jpeg_patch.py): where two images differ, which MCUs
that touches, and the change added to those MCUs' DCT coefficients, quantised with the file's
own tables.
"""

from __future__ import annotations

import numpy as np

# libjpeg's RGB -> YCbCr (JFIF, full range). Only differences of pixels are transformed here,
# so the +128 offsets of Cb and Cr cancel out.
_RGB_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64
)


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II matrix C: a block's coefficients are C @ block @ C.T.

    JPEG's forward DCT, (1/4) C(u) C(v) sum f(x, y) cos(...) cos(...) with C(0) = 1/sqrt(2),
    is exactly this orthonormal transform, so no further scaling is needed.
    """
    k = np.arange(8)
    c = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    c[0] /= np.sqrt(2)
    return c


_DCT = _dct_matrix()

def differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: where two (H, W, C) images differ. The rows that differ at all are found
    first (a reduction along contiguous memory, fast), then only those are looked at per pixel:
    a retouch changes a few hundred of a photo's thousands of rows."""
    h, w = a.shape[:2]
    out = np.zeros((h, w), dtype=bool)
    rows = np.nonzero((a.reshape(h, -1) != b.reshape(h, -1)).any(axis=1))[0]
    if len(rows):
        out[rows] = (a[rows] != b[rows]).reshape(len(rows), w, -1).any(axis=2)
    return out


def mcu_grid_mask(changed: np.ndarray, mcu_h: int, mcu_w: int) -> np.ndarray:
    """(rows, cols) of MCUs: True where the MCU holds a changed pixel."""
    h, w = changed.shape
    grid = np.zeros((-(-h // mcu_h), -(-w // mcu_w)), dtype=bool)
    ys, xs = np.nonzero(changed)  # a retouch changes a few thousand of millions of pixels
    grid[ys // mcu_h, xs // mcu_w] = True
    return grid


def mcu_pixels(mask: np.ndarray, shape: tuple[int, int], mcu_h: int, mcu_w: int, reach: int) -> np.ndarray:
    """(H, W) pixel mask of the marked MCUs, grown by ``reach`` pixels on every side."""
    import cv2

    out = np.zeros(shape, dtype=bool)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(rows):
        return out
    # Only the window around the marked MCUs is drawn (at 12 MP the whole photo's mask cost more
    # than the rest of the verification), with a margin of ``reach`` for the growing.
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    grid = np.repeat(np.repeat(mask[r0:r1, c0:c1].astype(np.uint8), mcu_h, axis=0), mcu_w, axis=1)
    grid = np.pad(grid, reach)
    if reach:
        grid = cv2.dilate(grid, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    y0, x0 = r0 * mcu_h - reach, c0 * mcu_w - reach  # the window's corner in the photo
    ty0, tx0 = max(0, y0), max(0, x0)
    ty1, tx1 = min(shape[0], y0 + grid.shape[0]), min(shape[1], x0 + grid.shape[1])
    out[ty0:ty1, tx0:tx1] = grid[ty0 - y0: ty1 - y0, tx0 - x0: tx1 - x0] > 0
    return out


def mcu_tiles(image: np.ndarray, my: np.ndarray, mx: np.ndarray, mcu_h: int, mcu_w: int) -> np.ndarray:
    """(n, mcu_h, mcu_w, C) pixels of the MCUs at rows ``my``, columns ``mx``. Pixels past the
    image's right and bottom edges repeat the last column and row, as libjpeg pads them."""
    height, width = image.shape[:2]
    rows = np.clip(my[:, None] * mcu_h + np.arange(mcu_h), 0, height - 1)[:, :, None]
    cols = np.clip(mx[:, None] * mcu_w + np.arange(mcu_w), 0, width - 1)[:, None, :]
    return image[rows, cols]


def apply_change(comps: list[np.ndarray], qtables: list[np.ndarray], factors: list[tuple[int, int]], target: np.ndarray,
           base: np.ndarray, mcu_mask: np.ndarray, mcu_h: int, mcu_w: int, chunk: int = 2048) -> int:
    """Add the quantised DCT of the change (target - base) to the coefficients of the marked
    MCUs, in place; returns how many component blocks changed. ``target`` and ``base``: (H, W, 3)
    RGB for a YCbCr file (the change taken to YCbCr), (H, W, 1) grey for a one-component one.

    Working on the change rather than re-encoding the retouched pixels keeps a block whose
    pixels did not change (or changed by less than its quantisation steps) exactly as it was,
    and spares the unchanged part of a block a second rounding.
    """
    hmax, vmax = max(h for h, _ in factors), max(v for _, v in factors)
    mys, mxs = np.nonzero(mcu_mask)
    changed_blocks = 0
    for start in range(0, len(mys), chunk):
        my, mx = mys[start:start + chunk], mxs[start:start + chunk]
        delta = mcu_tiles(target, my, mx, mcu_h, mcu_w).astype(np.float64) - mcu_tiles(base, my, mx, mcu_h, mcu_w)
        if len(factors) == 3:
            delta = delta @ _RGB_TO_YCC.T  # (n, mcu_h, mcu_w, 3): the change in Y, Cb, Cr
        n = len(my)
        for c, (h, v) in enumerate(factors):
            sy, sx = vmax // v, hmax // h
            # Downsample as libjpeg does (the mean of each sy x sx cell), cut into v x h blocks.
            plane = delta[..., c].reshape(n, 8 * v, sy, 8 * h, sx).mean(axis=(2, 4))
            blocks = plane.reshape(n, v, 8, h, 8).transpose(0, 1, 3, 2, 4)
            step = np.rint(_DCT @ blocks @ _DCT.T / qtables[c]).astype(np.int32)  # (n, v, h, 8, 8)
            by = np.broadcast_to(my[:, None, None] * v + np.arange(v)[None, :, None], (n, v, h))
            bx = np.broadcast_to(mx[:, None, None] * h + np.arange(h)[None, None, :], (n, v, h))
            arr = comps[c]
            keep = (by < arr.shape[0]) & (bx < arr.shape[1])  # blocks of the padding MCUs are not stored
            by, bx, step = by[keep], bx[keep], step[keep]
            old = arr[by, bx].astype(np.int32)
            new = old + step
            # Keep every coefficient codable (baseline: |AC| < 1024; DC within the 8-bit range).
            dc_max = int(1024 // qtables[c][0, 0])
            new[:, 0, 0] = np.clip(new[:, 0, 0], -dc_max, dc_max)
            new = np.clip(new, -1023, 1023)
            changed_blocks += int((new != old).any(axis=(1, 2)).sum())
            arr[by, bx] = new.astype(arr.dtype)
    return changed_blocks
