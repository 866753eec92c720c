"""How an in-painting is scored (metrics.py does the arithmetic): per-face metrics against the
real crop, means with 95% intervals, the exemplar gain (wrong minus right reference, paired per
face), the paired comparison with the first model, and eye colour on the light-eyed third."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from exgan_cli.evaluation import metrics as M
from exgan_cli.evaluation.baselines import MethodInfo

# (key, label, higher is better) for the per-face metrics, in table order
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("l1_face", "L1 face", False),
    ("l1_eyes", "L1 eyes", False),
    ("psnr_eyes", "PSNR eyes", True),
    ("ssim_eyes", "SSIM eyes", True),
    ("ms_ssim_eyes", "MS-SSIM eyes", True),
    ("detail_eyes", "detail eyes", True),
    ("seam_eyes", "seam eyes", False),
    ("colour_eyes", "colour eyes", False),
    ("identity", "ID dist", False),
)
LIGHT_SHARE = 1 / 3  # the light-eyed faces: this share whose true irises are least red relative to the skin
SET_METRIC = ("frechet_descriptor", "FD desc", False)


def round_score(v: float, digits: int = 5) -> Optional[float]:
    """A score as the JSON holds it: rounded, None when not finite."""
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


# ---------------------------------------------------------------------------------------
# One face


def crop_descriptor(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's identity descriptor of an aligned crop, with the given (crop-space) landmarks."""
    from exgan_cli.stages.faces import Face, face_descriptor

    r = crop.shape[0]
    face = Face(box=(0, 0, r, r), landmarks=np.asarray(landmarks, np.float64), detector="hog", score=0.0)
    return face_descriptor(np.ascontiguousarray(crop), face)


def score_face(result: np.ndarray, truth: np.ndarray, mask: np.ndarray, scales: int, landmarks: np.ndarray) -> dict[str, float]:
    """The per-face image metrics of one in-painted crop against the real one (``landmarks``: the
    real face's, in crop coordinates)."""
    from exgan_cli.stages.eye_colour import colour_eyes

    return {
        "colour_eyes": colour_eyes(result, truth, landmarks),
        "l1_face": M.l1(result, truth),
        "l1_eyes": M.l1(result, truth, mask),
        "psnr_eyes": M.psnr(result, truth, mask),
        "ssim_eyes": M.ssim(result, truth, mask),
        "ms_ssim_eyes": M.ms_ssim(result, truth, mask, scales),
        "detail_eyes": M.detail_ratio(result, truth, mask),
        "seam_eyes": M.seam_error(result, truth, mask),
    }


# ---------------------------------------------------------------------------------------
# Tables


def gain(right: Sequence[float], wrong: Sequence[float], higher_is_better: bool) -> M.Interval:
    """Mean paired difference, signed so that positive means ``right`` is better; 95% t-interval."""
    d = np.asarray(right, np.float64) - np.asarray(wrong, np.float64)
    return M.mean_ci(d if higher_is_better else -d)


def paired_difference(rows: Sequence[dict], primary: str, other: str) -> dict[str, Any]:
    """How much better ``primary`` is than ``other`` on the same faces, each with its right
    reference: per metric the mean of the per-face differences with a 95% Student-t interval,
    signed so that positive means the primary is better. Pairing removes the spread between
    faces, so it separates two methods whose own intervals overlap."""
    a = {r["photo"]: r for r in rows if r["method"] == primary and r["ref"] == "right"}
    b = {r["photo"]: r for r in rows if r["method"] == other and r["ref"] == "right"}
    both = sorted(set(a) & set(b))
    return {
        "primary": primary,
        **{k: gain([a[p][k] for p in both], [b[p][k] for p in both], hib).to_dict() for k, _, hib in METRICS},
    }


def _frechet(real: np.ndarray, d_right: np.ndarray, d_wrong: np.ndarray, bootstrap: int, seed: int) -> tuple[M.Interval, ...]:
    """Fréchet distance of the right and the wrong set to the real one, and its gain (bootstrap CIs)."""
    if np.array_equal(d_right, d_wrong):  # blind to the reference: one set, no gain
        fr = M.bootstrap_ci(lambda i: M.frechet_from_samples(real[i], d_right[i]), len(real), bootstrap, seed, method="basic")
        return fr, fr, M.Interval(0.0, 0.0, 0.0, len(real))

    def stats(i: np.ndarray) -> list[float]:
        a, b = M.frechet_from_samples(real[i], d_right[i]), M.frechet_from_samples(real[i], d_wrong[i])
        return [a, b, b - a]

    fr, fw, fg = M.bootstrap_cis(stats, len(real), bootstrap, seed, method="basic")
    return fr, fw, fg


def summarise(rows: Sequence[dict], descriptors: dict, real: dict, methods: Sequence[MethodInfo],
              bootstrap: int = 200, seed: int = 0) -> dict:
    """Per method: means with 95% CIs (right and wrong reference) and the exemplar gain.

    ``descriptors[(method, which)]`` and ``real[resolution]`` are (N, 128) arrays in face order.
    """
    out: dict[str, Any] = {}
    for info in methods:
        mine = {w: [r for r in rows if r["method"] == info.name and r["ref"] == w] for w in ("right", "wrong")}
        entry: dict[str, Any] = {}
        for which in ("right", "wrong"):
            entry[which] = {k: M.mean_ci([r[k] for r in mine[which]]).to_dict() for k, _, _ in METRICS}
        gains = {k: gain([r[k] for r in mine["right"]], [r[k] for r in mine["wrong"]], hib).to_dict() for k, _, hib in METRICS}
        fr, fw, fg = _frechet(real[info.resolution], descriptors[(info.name, "right")], descriptors[(info.name, "wrong")], bootstrap, seed)
        entry["right"][SET_METRIC[0]], entry["wrong"][SET_METRIC[0]] = fr.to_dict(), fw.to_dict()
        gains[SET_METRIC[0]] = fg.to_dict()
        entry["exemplar_gain"] = gains
        out[info.name] = entry
    primary = next((m for m in methods if m.kind == "model"), None)
    if primary is not None:
        for info in methods:
            if info.name != primary.name:
                out[info.name]["vs_primary"] = paired_difference(rows, primary.name, info.name)
    return out


# ---------------------------------------------------------------------------------------
# Eye colour


def light_eyed(redness: Sequence[float], share: float = LIGHT_SHARE) -> list[int]:
    """Indices of the ``share`` of faces whose true irises are least red relative to the skin
    (faces whose colour could not be read are left out)."""
    r = np.asarray(redness, dtype=np.float64)
    ok = np.nonzero(np.isfinite(r))[0]
    n = int(round(len(ok) * share))
    return sorted(ok[np.argsort(r[ok], kind="stable")[:n]].tolist())


def colour_summary(rows: Sequence[dict], methods: Sequence[MethodInfo], light: set[str], natural: dict[str, float]) -> dict:
    """Eye colour where a brown prior is wrong: per method colour eyes on the light-eyed faces
    (right and wrong reference, exemplar gain, paired with the first model), and the natural
    figure (the right reference's own iris colour against the truth's) on all and light faces."""
    def on(photo_rows: Sequence[dict]) -> list[dict]:
        return [r for r in photo_rows if r["photo"] in light]

    out: dict[str, Any] = {
        "faces": len(light),
        "natural": {
            "all": M.mean_ci(list(natural.values())).to_dict(),
            "light": M.mean_ci([v for p, v in natural.items() if p in light]).to_dict(),
        },
        "methods": {},
    }
    primary = next((m for m in methods if m.kind == "model"), None)
    for info in methods:
        mine = {w: on([r for r in rows if r["method"] == info.name and r["ref"] == w]) for w in ("right", "wrong")}
        entry = {w: M.mean_ci([r["colour_eyes"] for r in mine[w]]).to_dict() for w in ("right", "wrong")}
        entry["exemplar_gain"] = gain([r["colour_eyes"] for r in mine["right"]], [r["colour_eyes"] for r in mine["wrong"]], False).to_dict()
        if primary is not None and info.name != primary.name:
            entry["vs_primary"] = paired_difference(on(rows), primary.name, info.name)["colour_eyes"]
        out["methods"][info.name] = entry
    return out
