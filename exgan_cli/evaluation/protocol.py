"""`exgan evaluate`: how well models in-paint eyes, against baselines, on the same faces.

Protocol (Dolhansky & Canton Ferrer 2018, section 5). The faces come from the aligned-face cache
(training/dataset.py: the detect -> landmarks -> eye state -> align code that open-eyes runs), at each
model's own resolution. Targets are open-eyed faces (not closed, both eye aspect ratios at
least ``min_ear``, as in training) of persons with two or more of them. Both eyes of a target are
masked with the deterministic eye boxes (geometry.eye_boxes, no jitter) of its cached landmarks
and in-painted with a reference of the same person (the next of that person's open-eyed faces,
wrapping around); the result is compared with the real photo.

Identity test (the paper's thesis: the exemplar carries the identity). Every face is in-painted a
second time with a WRONG reference: a face of the next person in the evaluation order, the same
index in that person's faces (wrapping). A method that uses its exemplar comes closer to the truth
with the right reference; the "exemplar gain" (right vs wrong, paired per face, 95% t-interval)
says how much. Methods that ignore the reference score the same twice (gain exactly 0).

Methods (baselines.py): OpenCV's Telea and Navier-Stokes, a Poisson copy of the reference's
eyes, and every --weights through the generator of open-eyes; all on the same faces and holes.

Metrics (metrics.py): L1 over the whole crop and over the eye boxes; PSNR, SSIM and MS-SSIM over
the eye boxes; identity distance (dlib's 128-d descriptor, faces.face_descriptor, computed on the
aligned crop with the CACHED landmarks for the real and every in-painted face alike, so detection
noise does not enter); the Fréchet distance between the descriptor sets of the real and in-painted
faces. The paper's FID and Inception score need Inception-v3 weights, which an offline install
does not have: they are not computed (the JSON's notes say so).

The modules: config.py (the settings), split.py (which faces, which references), pool.py (the
cached faces and the batches), baselines.py (the methods), scoring.py (metrics, intervals, tables),
grids.py (the image), closed.py (the second evaluation, on real closed eyes); this module runs
the protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from exgan_cli.errors import DataError
from exgan_cli.evaluation import metrics as M
from exgan_cli.evaluation.baselines import Method, MethodInfo, load_models, method_groups
from exgan_cli.evaluation.config import BASELINES, EvalConfig, LogFn, ProgressFn
from exgan_cli.evaluation.grids import grid_faces, make_grid, masked_view
from exgan_cli.evaluation.pool import REFS, Batch, FacePool, load_faces, make_batch
from exgan_cli.evaluation.scoring import METRICS, SET_METRIC, colour_summary, crop_descriptor, light_eyed, round_score, score_face, summarise
from exgan_cli.evaluation.split import Protocol
from exgan_cli.stages.geometry import AlignConfig, MaskConfig, eye_boxes

FORMAT = "exgan-eval-1"

NOTES = [
    "L1 in 0..1 intensity units (pixel / 255), over the whole aligned crop (l1_face) and over the eye boxes (l1_eyes).",
    "PSNR, SSIM and MS-SSIM over the eye boxes; SSIM maps use the whole crop (Gaussian window 1.5), averaged over the boxes.",
    "MS-SSIM keeps only the scales at which the eye boxes are still 6 px across (ms_ssim_scales per resolution); weights renormalised.",
    "detail_eyes: fine detail (variance of the Laplacian of luminance inside the eye boxes, 2 px in from their border) of the result over the real eyes': 1 = as detailed as the truth, below 1 = softer.",
    "seam_eyes: how visible the eye boxes' border is: mean difference between the result's and the real photo's luminance gradients on a 2 px band straddling the border (0..1 units; 0 = continuous exactly as the truth; a 10-level step ~0.02).",
    "colour_eyes: CIE76 distance between the iris colour of the result and of the truth (eye_colour.py: median CIELAB inside each eye contour, in the central 0.44 of the eye's width, minus the cheeks' median), both read at the truth's landmarks.",
    "natural_colour: the same distance between the right reference's own irises (relative to its cheeks) and the truth's: how far a perfect copy of the reference's eye colour would be.",
    "light: the third of the faces whose true irises are least red (a*) relative to the skin, where a brown prior is wrong; colour eyes on them, the exemplar gain and the paired comparison.",
    "identity: Euclidean distance between dlib 128-d descriptors of the in-painted and the real aligned crop, both with the cached landmarks (< 0.6: same person for dlib).",
    "frechet_descriptor: Fréchet distance between Gaussians fitted to the descriptors of the real and the in-painted faces, bias-corrected by the bootstrap (basic bootstrap 95% CI); "
    "it is NOT FID: FID needs Inception-v3 weights, unavailable offline. With fewer faces than 128 it is biased upwards: compare methods at equal N only.",
    "Inception score: not computed (needs Inception-v3 weights, unavailable offline).",
    "Results are composited into the eye boxes with the hard mask (no feathering), so no true pixel is mixed back into the hole.",
    "vs_primary: per-face paired difference between a method and the first model (both with the right reference), signed so that positive means the first model is better; 95% Student-t interval.",
    "exemplar_gain: per-face paired difference between the wrong-reference and the right-reference score, signed so that positive means the right reference is better; 95% Student-t interval.",
]


@dataclass
class EvalResult:
    protocol: Protocol
    methods: list[MethodInfo]
    rows: list[dict]  # one per (face, method, reference kind)
    summary: dict  # method -> {"right": {...}, "wrong": {...}, "exemplar_gain": {...}}
    data: str
    caches: list[str]
    ms_ssim_scales: dict  # resolution -> scales
    seed: int
    limit: Optional[int]
    notes: list[str]
    seconds: float = 0.0
    grid: Optional[np.ndarray] = None
    colour: dict = field(default_factory=dict)  # colour_summary: light-eyed faces and the natural figure

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "data": self.data,
            "caches": self.caches,
            "seed": self.seed,
            "limit": self.limit,
            "faces": len(self.protocol),
            "persons": len(set(self.protocol.persons)),
            "seconds": round(self.seconds, 2),
            "ms_ssim_scales": {str(k): v for k, v in self.ms_ssim_scales.items()},
            "metrics": {k: {"label": label, "higher_is_better": hib} for k, label, hib in (*METRICS, SET_METRIC)},
            "methods": [m.to_dict() for m in self.methods],
            "summary": self.summary,
            "colour": self.colour,
            "notes": self.notes,
            "rows": self.rows,
        }


# ---------------------------------------------------------------------------------------
# What the scoring loop gathers


@dataclass
class Tally:
    """Everything gathered over the method groups and batches, in face order (index i of the protocol)."""

    protocol: Protocol
    first_resolution: int  # the natural eye colour is read at this resolution
    grid_idx: list[int]  # the faces shown in the grid
    rows: list[dict] = field(default_factory=list)
    redness: np.ndarray = field(init=False)  # the true irises' a* relative to the skin (light_eyed)
    natural: dict[str, float] = field(default_factory=dict)  # target -> the right reference's iris colour against the truth's
    descriptors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (method, ref) -> (N, 128)
    real: dict[int, np.ndarray] = field(default_factory=dict)  # resolution -> (N, 128) descriptors of the real faces
    real_done: dict[int, np.ndarray] = field(default_factory=dict)
    scales: dict[int, int] = field(default_factory=dict)  # resolution -> MS-SSIM scales
    tiles: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # grid column -> face index -> tile

    def __post_init__(self) -> None:
        self.redness = np.full(len(self.protocol), np.nan)

    def open_group(self, res: int, mask_cfg: MaskConfig, methods: Sequence[Method], pool: FacePool) -> None:
        """Room for a group's descriptors; the resolution's MS-SSIM scales from the median eye box
        of all the targets (with the first group's mask config at that resolution)."""
        n = len(self.protocol)
        if res not in self.real:
            self.real[res] = np.zeros((n, 128), np.float32)
            self.real_done[res] = np.zeros(n, bool)
        for meth in methods:
            for which in REFS:
                self.descriptors[(meth.info.name, which)] = np.zeros((n, 128), np.float32)
        if res not in self.scales:
            sides = [M.box_short_side(eye_boxes(pool.landmarks(t), mask_cfg)) for t in self.protocol.targets]
            self.scales[res] = M.ms_ssim_scales(float(np.median(sides)))


# ---------------------------------------------------------------------------------------
# One batch: the truth, then every method


def _truth(tally: Tally, batch: Batch, idx: Sequence[int], res: int) -> None:
    """The real faces' descriptors, their iris colour (first resolution only) and their grid tiles."""
    from exgan_cli.stages.eye_colour import colour_distance, iris_colour

    t, right = batch.targets, batch.refs["right"]
    for j, i in enumerate(idx):
        if not tally.real_done[res][i]:
            tally.real[res][i] = crop_descriptor(t.crops[j], t.landmarks[j])
            tally.real_done[res][i] = True
        target = tally.protocol.targets[i]
        if res == tally.first_resolution and target not in tally.natural:
            truth_c = iris_colour(t.crops[j], t.landmarks[j])
            ref_c = iris_colour(right.crops[j], right.landmarks[j])
            tally.redness[i] = truth_c.redness if truth_c is not None else float("nan")
            tally.natural[target] = colour_distance(ref_c, truth_c)
    for j, i in enumerate(idx):
        if i in tally.grid_idx:
            tally.tiles.setdefault(f"truth@{res}", {})[i] = t.crops[j]
            tally.tiles.setdefault(f"masked@{res}", {})[i] = masked_view(t.crops[j], t.masks[j])
            tally.tiles.setdefault(f"reference@{res}", {})[i] = right.crops[j]


def _poses(batch: Batch, res: int) -> dict[str, list[float]]:
    """Degrees between each target's head pose and its reference's, for both references."""
    from exgan_cli.stages.pose import head_pose, pose_difference

    lms = batch.targets.landmarks
    return {w: [pose_difference(head_pose(t, (res, res)), head_pose(r, (res, res))) for t, r in zip(lms, batch.refs[w].landmarks)]
            for w in REFS}


def _score_method(tally: Tally, meth: Method, batch: Batch, idx: Sequence[int], res: int, poses: dict[str, list[float]]) -> None:
    """In-paint the batch with both references and add a row per face and reference."""
    name, blind, p, t = meth.info.name, not meth.info.uses_reference, tally.protocol, batch.targets
    outs = {"right": meth.run(batch, "right")}
    outs["wrong"] = outs["right"] if blind else meth.run(batch, "wrong")
    right_scores: list[dict] = []
    for which in REFS:
        for j, i in enumerate(idx):
            out = outs[which][j]
            if which == "wrong" and blind:  # a method blind to the reference gave the same pixels, hence scores
                d, scores = tally.descriptors[(name, "right")][i], right_scores[j]
            else:
                d = crop_descriptor(out, t.landmarks[j])
                scores = score_face(out, t.crops[j], t.masks[j], tally.scales[res], t.landmarks[j])
                scores["identity"] = float(np.linalg.norm(d.astype(np.float64) - tally.real[res][i]))
            if which == "right":
                right_scores.append(scores)
            tally.descriptors[(name, which)][i] = d
            tally.rows.append({
                "photo": p.targets[i],
                "pose_difference": round(poses[which][j], 1),
                "person": p.persons[i],
                "reference": p.references[i] if which == "right" else p.wrong_references[i],
                "reference_person": p.persons[i] if which == "right" else p.wrong_persons[i],
                "method": name,
                "ref": which,
                **{k: round_score(v) for k, v in scores.items()},
            })
            if which == "right" and i in tally.grid_idx:
                tally.tiles.setdefault(name, {})[i] = out


# ---------------------------------------------------------------------------------------
# The evaluation


def _check(cfg: EvalConfig) -> None:
    if cfg.limit is not None and cfg.limit < 1:
        raise DataError(f"--limit must be at least 1, not {cfg.limit}")
    for b in cfg.baselines:
        if b not in BASELINES:
            raise DataError(f"unknown baseline {b!r} (one of {', '.join(BASELINES)})")


def _resolutions(models: Sequence[tuple[str, Any]]) -> tuple[list[int], dict[int, AlignConfig]]:
    """The models' resolutions in order (the default one without models), each with the
    alignment of its first model; the first resolution is the base of the protocol."""
    resolutions: list[int] = []
    for _, m in models:
        if m.align_cfg.resolution not in resolutions:
            resolutions.append(m.align_cfg.resolution)
    if not resolutions:
        resolutions = [AlignConfig().resolution]
    base_align = next((m.align_cfg for _, m in models), AlignConfig())
    aligns = {base_align.resolution: base_align}
    for _, m in models:
        aligns.setdefault(m.align_cfg.resolution, m.align_cfg)
    return resolutions, aligns


def _grid(tally: Tally, methods: Sequence[MethodInfo], resolutions: Sequence[int]) -> Optional[np.ndarray]:
    """masked | reference | each method | truth, at the first resolution's holes."""
    if not tally.grid_idx:
        return None
    r0 = resolutions[0]
    keys = [("masked", f"masked@{r0}"), ("reference", f"reference@{r0}"), *[(m.name, m.name) for m in methods], ("truth", f"truth@{r0}")]
    columns = [(label, [tally.tiles[key][i] for i in tally.grid_idx]) for label, key in keys]
    return make_grid(columns, tile=max(resolutions))


def evaluate(cfg: EvalConfig, progress: Optional[ProgressFn] = None, log: Optional[LogFn] = None) -> EvalResult:
    """Run the protocol on cfg.data for every model of cfg.weights and every baseline."""
    t_start = time.perf_counter()
    # What to evaluate: the models, their resolutions, the faces, the methods at each resolution.
    _check(cfg)
    models = load_models(cfg.weights, cfg.device, log)
    if not models and not cfg.baselines:
        raise DataError("nothing to evaluate: no model (--weights) and no baseline")
    resolutions, aligns = _resolutions(models)
    faces = load_faces(cfg, aligns, resolutions, progress, log)
    protocol, n = faces.protocol, len(faces.protocol)
    groups = method_groups(resolutions, models, cfg.baselines)
    method_infos = [m.info for ms in groups.values() for m in ms]

    # In-paint and score: each group on every batch of targets.
    tally = Tally(protocol, resolutions[0], grid_faces(protocol, cfg.grid_rows))
    total, done = n * len(groups), 0
    for (res, mask_cfg), methods in groups.items():
        pool = faces.pools[res]
        tally.open_group(res, mask_cfg, methods, pool)
        for start in range(0, n, cfg.batch_size):
            idx = list(range(start, min(n, start + cfg.batch_size)))
            batch = make_batch(pool, protocol, idx, mask_cfg)
            poses = _poses(batch, res)
            _truth(tally, batch, idx, res)
            for meth in methods:
                _score_method(tally, meth, batch, idx, res, poses)
            done += len(idx)
            if progress:
                progress("evaluating", done, total)

    # The tables and the grid.
    rows = sorted(tally.rows, key=lambda r: (r["photo"], r["method"], r["ref"]))
    summary = summarise(rows, tally.descriptors, tally.real, method_infos, cfg.bootstrap, cfg.seed)
    light = {protocol.targets[i] for i in light_eyed(tally.redness)}
    notes = list(NOTES)
    if not models:
        notes.append("no model evaluated (no --weights and no bundled default weights): baselines only.")
    return EvalResult(
        protocol=protocol, methods=method_infos, rows=rows, summary=summary,
        data=str(faces.data_dir.resolve()) if faces.data_dir else "", caches=faces.caches, ms_ssim_scales=tally.scales,
        seed=cfg.seed, limit=cfg.limit, notes=notes, seconds=time.perf_counter() - t_start, grid=_grid(tally, method_infos, resolutions),
        colour=colour_summary(rows, method_infos, light, tally.natural),
    )
