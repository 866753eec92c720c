"""`exgan evaluate --closed`: the full open-eyes pipeline on real closed eyes.

In a per-person folder, every photo with a closed-eyed face is retouched by the open-eyes pipeline
(apps.retouch.retouch; references = that person's other photos through references.load_candidates);
reported are the share of retouched faces whose eyes the eye-state detector finds open afterwards,
and the identity distance to the references before and after. Eye state is eye_state.assess (the
eye-state classifier, or the EAR rule without its weights), as in open-eyes. The pipeline's
self-check (selfcheck.py) stays on, as users get it: faces whose every reference failed it are left
as they were and counted as "failed_self_check" (not retouched); ``ClosedConfig.self_check=False``
(evaluate --no-self-check) measures the raw pipeline instead. The paper's protocol (protocol.py)
never involves the self-check: it calls the generator directly on aligned crops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from exgan_cli.errors import DataError, ExganError, WeightsError
from exgan_cli.evaluation import metrics as M
from exgan_cli.evaluation.baselines import MethodInfo, load_models, model_info
from exgan_cli.evaluation.config import ClosedConfig, LogFn, ProgressFn
from exgan_cli.evaluation.grids import make_grid
from exgan_cli.evaluation.scoring import round_score
from exgan_cli.evaluation.split import person_order, person_photos
from exgan_cli.stages.geometry import AlignConfig

CLOSED_FORMAT = "exgan-eval-closed-1"

CLOSED_NOTES = [
    "Targets: every face that eye_state.assess (the eye-state classifier; the EAR rule without its weights) finds closed in a photo of DIR/<person>/; references: the person's other photos "
    "(references.load_candidates; apps.retouch.retouch picks the best open-eyed face of the same identity).",
    "opened: the retouched face, re-detected in the result by the pipeline, has open eyes by the same detector "
    "(FaceReport.eyes_after); a face not found again counts as not opened. Share with a Wilson 95% interval.",
    "self-check (selfcheck.py, on unless --no-self-check): a retouched face whose eyes are not open or whose identity moved is "
    "redone with the next reference, and left as it was when all fail (status 'failed self-check', counted in failed_self_check, "
    "not in retouched). With it on, 'opened' among retouched faces is high by construction: compare retouched/faces.",
    "identity_before/after: mean descriptor distance from the face (before: the closed-eyed original; after: re-detected in the "
    "result) to the central face of each of the person's other photos; *_chosen: to the reference the pipeline used.",
]


@dataclass
class ClosedResult:
    data: str
    methods: list[MethodInfo]
    rows: list[dict]  # one per (closed-eyed face, model)
    summary: dict
    notes: list[str]
    seed: int
    limit: Optional[int]
    seconds: float = 0.0
    grid: Optional[np.ndarray] = None
    self_check: bool = True

    def to_dict(self) -> dict:
        return {
            "format": CLOSED_FORMAT,
            "data": self.data,
            "self_check": self.self_check,
            "seed": self.seed,
            "limit": self.limit,
            "faces": len({(r["photo"], r["face"]) for r in self.rows}),
            "seconds": round(self.seconds, 2),
            "methods": [m.to_dict() for m in self.methods],
            "summary": self.summary,
            "notes": self.notes,
            "rows": self.rows,
        }


@dataclass
class _Run:
    """One closed-eyes evaluation under way: its models, and the rows and grid cells so far."""

    cfg: ClosedConfig
    data_dir: Path
    models: list[tuple[str, Any]]  # (name, loaded model)
    infos: list[MethodInfo]
    options: Any  # RetouchOptions: closed faces only, the self-check as asked
    grid_align: AlignConfig  # grid tiles at the largest model resolution
    rows: list[dict] = field(default_factory=list)
    tiles: dict[tuple[str, int], dict[str, np.ndarray]] = field(default_factory=dict)  # (photo, face) -> column -> tile
    n_targets: int = 0  # closed-eyed faces taken
    scanned: int = 0  # photos looked at

    def full(self) -> bool:
        return self.cfg.limit is not None and self.n_targets >= self.cfg.limit


# ---------------------------------------------------------------------------------------
# Rows


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _check_summary(check: Optional[dict]) -> Optional[dict]:
    """A row's self-check: passed, references tried, and why each failed (FaceReport.self_check, shortened)."""
    if check is None:
        return None
    return {
        "enabled": check["enabled"], "passed": check["passed"], "attempts": len(check["attempts"]),
        "reasons": [r for a in check["attempts"] for r in a["reasons"]][:6],
    }


def _mean_distance(desc: np.ndarray, refs: Sequence[np.ndarray]) -> Optional[float]:
    if not refs:
        return None
    return round_score(float(np.mean([np.linalg.norm(desc.astype(np.float64) - r) for r in refs])))


def _reference_descriptors(refs: Sequence[Any]) -> list[np.ndarray]:
    """The person's reference faces for the identity check: the central face of each other photo."""
    from exgan_cli.stages.faces import central_face

    out = []
    for other in sorted({str(c.path) for c in refs}):
        mine = [c for c in refs if str(c.path) == other]
        shape = mine[0].pixels.shape
        centre = central_face([c.face for c in mine], (shape[1], shape[0]))
        out += [c.descriptor for c in mine if c.face is centre and not c.eye.closed]
    return out


def _row(run: _Run, rel: str, i: int, person: str, name: str, rep: Any, why: str, state: Any,
         before: np.ndarray, ref_desc: list[np.ndarray]) -> dict[str, Any]:
    """One closed-eyed face after one model: what the pipeline reported, identity before."""
    return {
        "photo": rel, "face": i, "person": person, "method": name,
        "status": rep.status if rep is not None else "no reference",
        "message": (rep.message if rep is not None else why)[:300],
        "eyes_before": state.to_dict(),
        "eyes_after": rep.eyes_after if rep is not None else None,
        "reference": _relative(rep.reference["path"], run.data_dir) if rep is not None and rep.reference else None,
        "references": len(ref_desc),
        "identity_before": _mean_distance(before, ref_desc),
        "identity_after": None,
        "identity_before_chosen": None, "identity_after_chosen": None, "opened": None,
        "self_check": _check_summary(rep.self_check if rep is not None else None),
    }


def _add_tiles(run: _Run, key: tuple[str, int], name: str, out: np.ndarray, pixels: np.ndarray, face: Any,
               refs: Sequence[Any], rep: Any) -> None:
    """The grid cells of a retouched face: before, each model's result, the reference used."""
    from exgan_cli.stages.geometry import align_face

    if key not in run.tiles and len(run.tiles) >= run.cfg.grid_rows:
        return
    cell = run.tiles.setdefault(key, {})
    cell[name] = align_face(out, face.landmarks, run.grid_align)[0]
    if "before" not in cell:
        cell["before"] = align_face(pixels, face.landmarks, run.grid_align)[0]
        ref = next(c for c in refs if str(c.path) == rep.reference["path"] and c.index == rep.reference["face"])
        cell["reference"] = align_face(ref.pixels, ref.face.landmarks, run.grid_align)[0]


# ---------------------------------------------------------------------------------------
# One person, one photo


def _scan(run: _Run, photos: Sequence[str], progress: Optional[ProgressFn], total: int) -> dict[str, tuple[np.ndarray, list]]:
    """photo -> (pixels, faces) for a person's photos with a face (unreadable ones are skipped)."""
    from exgan_cli.files.images import load_image
    from exgan_cli.stages.faces import detect_faces

    found: dict[str, tuple[np.ndarray, list]] = {}
    for rel in photos:
        run.scanned += 1
        try:
            img = load_image(run.data_dir / rel)
        except ExganError:
            continue
        faces = detect_faces(img.pixels, detector=run.cfg.detector)
        if faces:
            found[rel] = (img.pixels, faces)
        if progress:
            progress("scanning photos", run.scanned, total)
    return found


def _retouch_photo(run: _Run, person: str, rel: str, pixels: np.ndarray, faces: list, states: list, cands: list) -> None:
    """Retouch one photo's closed-eyed faces with each model, against the person's other photos."""
    from exgan_cli.apps.retouch import retouch
    from exgan_cli.errors import NoReferenceError
    from exgan_cli.stages.faces import face_descriptor, refit_face

    target = run.data_dir / rel
    refs = [c for c in cands if c.path != target]
    ref_desc = _reference_descriptors(refs)
    closed_idx = [i for i, st in enumerate(states) if st.closed]
    run.n_targets += len(closed_idx)
    before_desc = {i: face_descriptor(pixels, faces[i]) for i in closed_idx}
    for (name, model), info in zip(run.models, run.infos):
        why = ""
        t = time.perf_counter()
        try:
            result = retouch(pixels, refs, model, run.options, faces=faces, states=states)
            reports = {r.index: r for r in result.faces}
            out = result.pixels
        except NoReferenceError as e:
            reports, out = {}, None
            why = str(e)
        info.seconds += time.perf_counter() - t
        for i in closed_idx:
            rep = reports.get(i)
            row = _row(run, rel, i, person, name, rep, why, states[i], before_desc[i], ref_desc)
            if rep is not None and row["status"] == "retouched":
                row["opened"] = bool(rep.eyes_after is not None and not rep.eyes_after["closed"])
                row["identity_before_chosen"] = rep.reference["distance"] if rep.reference else None
                row["identity_after_chosen"] = rep.identity_after
                after = refit_face(out, faces[i])
                row["identity_after"] = _mean_distance(face_descriptor(out, after), ref_desc)
                _add_tiles(run, (rel, i), name, out, pixels, faces[i], refs, rep)
            run.rows.append(row)


# ---------------------------------------------------------------------------------------
# The evaluation


def _start(cfg: ClosedConfig, log: Optional[LogFn]) -> _Run:
    from exgan_cli.options import RetouchOptions
    from exgan_cli.stages.selfcheck import SelfCheckConfig

    if cfg.limit is not None and cfg.limit < 1:
        raise DataError(f"--limit must be at least 1, not {cfg.limit}")
    specs = list(cfg.weights)
    if not specs:
        raise WeightsError("evaluate --closed needs a model: pass --weights (no bundled default weights found)")
    models = load_models(specs, cfg.device, log)
    return _Run(
        cfg=cfg, data_dir=Path(cfg.data).expanduser(), models=models, infos=[model_info(n, m) for n, m in models],
        options=RetouchOptions(faces="closed", detector=cfg.detector, self_check=SelfCheckConfig(enabled=cfg.self_check)),
        grid_align=AlignConfig(resolution=max(m.align_cfg.resolution for _, m in models)),
    )


def _closed_grid(run: _Run) -> Optional[np.ndarray]:
    """before | each model | reference, for the first few retouched faces."""
    if not run.tiles:
        return None
    blank = np.full((run.grid_align.resolution,) * 2 + (3,), 255, np.uint8)
    cells = list(run.tiles.values())
    columns = [(c, [cell.get(c, blank) for cell in cells]) for c in ("before", *[i.name for i in run.infos], "reference")]
    return make_grid(columns, tile=run.grid_align.resolution)


def evaluate_closed(cfg: ClosedConfig, progress: Optional[ProgressFn] = None, log: Optional[LogFn] = None) -> ClosedResult:
    """Retouch every closed-eyed face of cfg.data with each model; did the eyes open, who is it?"""
    from exgan_cli.stages.eye_state import assess
    from exgan_cli.stages.references import load_candidates

    t_start = time.perf_counter()
    run = _start(cfg, log)
    photos = person_photos(run.data_dir, cfg.per_person)
    order = person_order(photos, cfg.seed)
    total_photos = sum(len(photos[p]) for p in order)
    for person in order:
        if run.full():
            break
        # The person's photos: faces, eye states; the closed-eyed ones are retouched with the rest as references.
        found = _scan(run, photos[person], progress, total_photos)
        states = {rel: [assess(px, f) for f in faces] for rel, (px, faces) in found.items()}
        closed = [rel for rel in found if any(s.closed for s in states[rel])]
        if not closed:
            continue
        cands, _ = load_candidates([run.data_dir / rel for rel in found], detector=cfg.detector)
        for rel in closed:
            if run.full():
                break
            _retouch_photo(run, person, rel, *found[rel], states[rel], cands)
        if log:
            log(f"{person}: {len(closed)} photo(s) with closed eyes")
    if progress:  # stopped early at --limit: the bar ends where the scan did
        progress("scanning photos", run.scanned, run.scanned)
    if not run.rows:
        raise DataError(f"{run.data_dir}: no face with closed eyes found")
    summary = {info.name: summarise_closed([r for r in run.rows if r["method"] == info.name]) for info in run.infos}
    return ClosedResult(
        data=str(run.data_dir.resolve()), methods=run.infos, rows=run.rows, summary=summary, notes=list(CLOSED_NOTES),
        seed=cfg.seed, limit=cfg.limit, seconds=time.perf_counter() - t_start, grid=_closed_grid(run), self_check=cfg.self_check,
    )


def summarise_closed(rows: Sequence[dict]) -> dict:
    """One model's closed-eyes numbers: counts, share opened (Wilson CI), identity before/after."""
    done = [r for r in rows if r["status"] == "retouched"]
    opened = sum(1 for r in done if r["opened"])
    out: dict[str, Any] = {
        "faces": len(rows),
        "retouched": len(done),
        "no_reference": sum(1 for r in rows if r["status"] == "no reference"),
        "failed_self_check": sum(1 for r in rows if r["status"] == "failed self-check"),
        "pose_out_of_range": sum(1 for r in rows if r["status"] == "pose out of range"),
        "retouched_share": M.proportion_ci(len(done), len(rows)).to_dict(),  # of all closed-eyed faces
        "not_found_after": sum(1 for r in done if r["eyes_after"] is None),
        "opened": M.proportion_ci(opened, len(done)).to_dict(),
    }
    for key in ("identity_before", "identity_after", "identity_before_chosen", "identity_after_chosen"):
        out[key] = M.mean_ci([r[key] for r in done if r[key] is not None]).to_dict()
    for suffix in ("", "_chosen"):
        pairs = [(r["identity_before" + suffix], r["identity_after" + suffix]) for r in done]
        pairs = [(b, a) for b, a in pairs if a is not None and b is not None]
        out["identity_change" + suffix] = M.mean_ci([a - b for b, a in pairs]).to_dict()
    return out
