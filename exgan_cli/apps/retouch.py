"""retouch(): one photo, its faces, their references and the model -> the retouched photo.

This is the chain every command shares: detect -> eye state -> choose faces -> per face
align, masks, reference -> generator (batched over faces) -> colour match -> paste back (with
full-resolution detail from the reference photo unless ``BlendConfig.detail`` is off) ->
a self-check of each result (eyes open? same person? selfcheck.py; else the next reference, or the
face is left as it was). It works on pixels and plain data; reading and
writing files is the caller's business (commands/open_eyes.py, batch, evaluate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from exgan_cli.stages.blend import feather_alpha, match_colour, paste_back, photo_boxes
from exgan_cli.stages.detail import DetailSource, Exemplar
from exgan_cli.stages.eye_colour import match_iris_colour
from exgan_cli.errors import NoFaceError, NoReferenceError
from exgan_cli.options import RetouchOptions
from exgan_cli.stages.pose import expression, head_pose, pose_difference
from exgan_cli.stages.warp import warp_source
from exgan_cli.stages.generate import AlignedFace, Generated, align_for_model, exemplar_batch, generate_crops


@dataclass
class FaceReport:
    index: int
    box: tuple[int, int, int, int]
    detector: str
    eyes_before: dict[str, Any]
    # "retouched" | "eyes open" | "eyes narrow" | "eyes hidden" | "not selected" | "no reference" |
    # "pose out of range" | "failed self-check"
    status: str
    message: str = ""
    eyes_after: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    mask_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    identity_after: float | None = None  # descriptor distance result face <-> reference
    # selfcheck.py: {"enabled": bool, "passed": bool, "attempts": [one per reference tried]}; None: not in-painted
    self_check: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "box": list(self.box),
            "detector": self.detector,
            "status": self.status,
            "message": self.message,
            "eyes_before": self.eyes_before,
            "eyes_after": self.eyes_after,
            "reference": self.reference,
            "mask_boxes": [[round(v, 1) for v in b] for b in self.mask_boxes],
            "identity_after": self.identity_after,
            "self_check": self.self_check,
        }


@dataclass
class RetouchResult:
    pixels: np.ndarray
    faces: list[FaceReport]
    weights: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def retouched(self) -> list[FaceReport]:
        return [f for f in self.faces if f.status == "retouched"]

    @property
    def failed_check(self) -> list[FaceReport]:
        """Faces in-painted but kept as they were: no reference gave a result that passed the self-check."""
        return [f for f in self.faces if f.status == "failed self-check"]


def wanted(state, faces: str) -> bool:
    """Whether a face in this eye state (eye_state.EyeState) is one to retouch under ``--faces``:
    "closed" its closed eyes, "narrow" its closed and narrowed ones, "all" every face; eyes that
    cannot be seen (hidden: sunglasses, a hand, too dark or small) never."""
    if state.hidden:
        return False
    if faces == "all":
        return True
    if faces == "narrow":
        return state.closed or state.narrow
    return bool(state.closed)


def idle_status(state) -> str:
    """The status of a face left alone: what its eyes are ("eyes open", "eyes narrow", "eyes hidden"),
    or "not selected" (closed, but another face was asked for)."""
    return "not selected" if state.closed else f"eyes {state.state}"


def select_faces(faces: Sequence, states: Sequence, options: RetouchOptions) -> list[int]:
    """Indices of the faces to in-paint under the options (faces are left to right). A face whose
    eyes are hidden is never one, not even asked for by index."""
    if options.face_index is not None:
        if not 0 <= options.face_index < len(faces):
            numbered = {0: "no face", 1: "one face, face 0"}.get(len(faces), f"{len(faces)} faces, numbered 0 to {len(faces) - 1}")
            raise NoFaceError(f"--face {options.face_index}: the photo has {numbered}")
        return [] if states[options.face_index].hidden else [options.face_index]
    allowed = range(len(faces)) if options.only is None else sorted({i for i in options.only if 0 <= i < len(faces)})
    return [i for i in allowed if wanted(states[i], options.faces)]


def _reference_dict(choice) -> dict[str, Any]:
    c = choice.candidate
    return {
        "path": str(c.path),
        "face": int(c.index),
        "distance": round(float(choice.distance), 4),
        "score": round(float(choice.score), 4),
        "why": choice.reasons,
    }


@dataclass
class FaceJob:
    """One face to in-paint: what was measured of it and the references it will be tried with."""

    index: int
    face: Any  # faces.Face
    descriptor: np.ndarray  # its identity descriptor (the self-check keeps the result closest to it)
    pose: tuple[float, ...]  # pose.head_pose
    expression: tuple[float, ...]  # pose.expression: weighed in every reference choice, retries too
    far: list  # candidates beyond the pose limit, never tried (empty with --force)
    choices: list  # references.Choice, best first: the first round of attempts
    aligned: AlignedFace


def retouch(
    rgb: np.ndarray,
    candidates: Sequence,
    model,
    options: RetouchOptions | None = None,
    faces: Sequence | None = None,
    states: Sequence | None = None,
) -> RetouchResult:
    """In-paint the selected faces of ``rgb`` (RGB uint8) with references from ``candidates``.

    ``faces`` may be passed when the caller already detected them, and ``states`` (eye_state.assess of
    each of them) when it already judged their eyes: nothing is computed twice. Raises NoFaceError when
    the photo has no face, NoReferenceError when faces need retouching but none has a
    usable reference. A face without a usable reference while others have one is reported
    as "no reference" and left untouched.
    """
    from exgan_cli.apps.inputs import find_faces
    from exgan_cli.stages import eye_state as eyes, faces as facelib

    options = options or RetouchOptions()
    threshold = options.identity_threshold if options.identity_threshold is not None else facelib.SAME_PERSON_THRESHOLD
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if faces is None:  # the runners' own path (apps.inputs), --min-face included
        faces, states = find_faces(rgb, options)
    timings["detect"] = time.perf_counter() - t
    if not faces:
        raise NoFaceError("no face found")
    if states is None or len(states) != len(faces):
        states = [eyes.assess(rgb, f) for f in faces]
    reports = [
        FaceReport(index=i, box=tuple(int(v) for v in f.box), detector=f.detector, eyes_before=s.to_dict(), status="not selected")
        for i, (f, s) in enumerate(zip(faces, states))
    ]
    chosen = select_faces(faces, states, options)
    for i, s in enumerate(states):
        if i not in chosen:
            reports[i].status = idle_status(s)
    result = RetouchResult(pixels=rgb, faces=reports, weights=model.source, timings=timings)
    if not chosen:
        return result

    # References: one per chosen face, the best match for that person.
    t = time.perf_counter()
    failures: list[str] = []
    jobs = [job for i in chosen if (job := _plan_face(rgb, i, faces[i], candidates, model, options, threshold, reports[i], failures))]
    timings["references"] = time.perf_counter() - t
    if not jobs:
        if failures:
            raise NoReferenceError("; ".join(failures))
        return result  # every face beyond the pose limit: nothing to do, each report says why

    # Generator, batched over faces and their candidate references.
    t = time.perf_counter()
    generated = _generate(jobs, model)
    timings["generate"] = time.perf_counter() - t

    # Paste back, one face at a time, into one output image (see _retouch_face).
    t = time.perf_counter()
    spent = {"check": 0.0, "generate": 0.0}
    reference_eyes = _ReferenceEyesCache()
    out = rgb
    for k, job in enumerate(jobs):
        out = _retouch_face(out, job, generated[k], candidates, model, options, threshold, reference_eyes, reports[job.index], spent)
    timings["blend"] = time.perf_counter() - t - spent["check"] - spent["generate"]
    timings["generate"] += spent["generate"]
    timings["check"] = spent["check"]
    result.pixels = out
    return result


def _plan_face(rgb, i: int, f, candidates, model, options: RetouchOptions, threshold: float,
               report: FaceReport, failures: list[str]) -> FaceJob | None:
    """Measure face ``i`` and choose its references; None (with the reason in ``report``) when it has none."""
    from exgan_cli.stages import faces as facelib, reference_choice

    desc = facelib.face_descriptor(rgb, f)
    pose = head_pose(f.landmarks, (rgb.shape[1], rgb.shape[0]))
    face_expression = expression(f.landmarks)
    # References turned further than the model handles are never used unless forced, in the first
    # choice and in the self-check's retries alike.
    far = [c for c in candidates if pose_difference(pose, c.pose) > options.pose_limit]
    excluded = [] if options.force else far
    pick = dict(identity_threshold=threshold, any_identity=options.any_identity, target_width=facelib.face_width(f),
                target_expression=face_expression)
    try:
        choice = reference_choice.choose_reference(desc, pose, candidates, exclude=excluded,
                                                   exclude_reason="beyond the pose limit", **pick)
    except NoReferenceError as e:
        try:  # would one have been usable but for the pose limit?
            nearest = reference_choice.choose_reference(desc, pose, candidates, **pick) if excluded else None
        except NoReferenceError:
            nearest = None
        if nearest is None:
            report.status, report.message = "no reference", str(e)
            failures.append(f"face {i}: {e}")
        else:
            closest = min(pose_difference(pose, c.pose) for c in nearest.ranking_candidates())
            report.status = "pose out of range"
            report.message = (f"reference pose differs by {closest:.0f}°; the model is reliable up to "
                              f"{options.pose_limit:.0f}° (--force to retouch anyway)")
        return None
    report.reference = _reference_dict(choice)
    choices = reference_choice.top_choices(choice, max(1, options.best_of))
    if check_limit := options.self_check.max_references:
        choices = choices[:check_limit]
    beyond = [pose_difference(pose, c.candidate.pose) for c in choices if any(c.candidate is x for x in far)]
    if beyond:  # only with --force
        report.message = (f"forced past the pose limit: reference pose differs by {min(beyond):.0f}°; "
                          f"the model is reliable up to {options.pose_limit:.0f}°")
    for c in choices:
        c.candidate.pixels  # decoded here, not before: a cached analysis needs no pixels until chosen
    return FaceJob(i, f, desc, pose, face_expression, excluded, choices, align_for_model(rgb, f.landmarks, model))


def _generate(jobs: list[FaceJob], model) -> list[list[tuple[Any, Generated, AlignedFace]]]:
    """One generator call for every (face, reference) pair of the first round; per job, (choice,
    its generator output, aligned reference)."""
    pairs = [(k, c) for k, job in enumerate(jobs) for c in job.choices]
    refs = [align_for_model(c.candidate.pixels, c.candidate.face.landmarks, model) for _, c in pairs]
    out = generate_crops(
        model,
        np.stack([jobs[k].aligned.crop for k, _ in pairs]),
        np.stack([jobs[k].aligned.mask for k, _ in pairs]),
        exemplar_batch(model, [jobs[k].aligned for k, _ in pairs], refs),
    )
    generated: list[list[tuple[Any, Generated, AlignedFace]]] = [[] for _ in jobs]
    for i, ((k, c), ref) in enumerate(zip(pairs, refs)):
        generated[k].append((c, out.item(i), ref))
    return generated


class _ReferenceEyesCache:
    """Per reference face, what its results are checked against (selfcheck.ReferenceEyes), measured once."""

    def __init__(self) -> None:
        self._measured: dict[int, Any] = {}

    def __call__(self, candidate):
        from exgan_cli.stages import selfcheck

        if id(candidate) not in self._measured:
            self._measured[id(candidate)] = selfcheck.ReferenceEyes.measure(candidate.pixels, candidate.face.landmarks)
        return self._measured[id(candidate)]


def _retouch_face(out: np.ndarray, job: FaceJob, pending: list, candidates, model, options: RetouchOptions,
                  threshold: float, reference_eyes: _ReferenceEyesCache, report: FaceReport, spent: dict[str, float]) -> np.ndarray:
    """``out`` with face ``job`` retouched, or unchanged when every result fails the self-check.

    Every result is checked before it can be kept (selfcheck.py); of those that pass, the one
    closest to the face's own identity is kept. When none passes, the next best references are
    tried one by one, and the face is left exactly as it was when every reference fails.
    """
    from exgan_cli.stages import faces as facelib, reference_choice, selfcheck

    check_cfg = options.self_check
    attempts: list[dict[str, Any]] = []
    tried: list[Any] = []
    kept: list[tuple[float, int, Any, np.ndarray, Any]] = []  # (distance to the face itself, attempt, choice, photo, check)
    while pending:
        for choice, gen, ref in pending:
            pasted, warp_info = _paste_face(out, job.face, choice, job.aligned, gen, ref, model, options)
            tc = time.perf_counter()  # the refit was the check's: its time stays there
            after = facelib.refit_face(pasted, job.face)  # the new eyes' landmarks
            unmatched = pasted
            if options.blend.iris_colour and selfcheck.colour_measurable(facelib.face_width(after)):
                pasted = match_iris_colour(pasted, after.landmarks, reference_eyes(choice.candidate).colour)
            check = selfcheck.check_face(
                pasted, job.face, choice.candidate.descriptor, choice.distance, threshold, check_cfg,
                reference_eyes(choice.candidate) if check_cfg.enabled else None, refitted=after,
                unmatched=unmatched if unmatched is not pasted else None,
            )
            spent["check"] += time.perf_counter() - tc
            own = facelib.descriptor_distance(check.descriptor, job.descriptor)
            extra = {"identity_to_face": round(own, 4), **({"warp": warp_info} if warp_info is not None else {})}
            attempts.append(selfcheck.Attempt(_reference_dict(choice), check, extra).to_dict())
            tried.append(choice.candidate)
            if check.passed or not check_cfg.enabled:
                kept.append((own, len(attempts) - 1, choice, pasted, check))
        pending = []
        if kept or (check_cfg.max_references is not None and len(tried) >= check_cfg.max_references):
            break
        try:  # none passed: the next best reference
            choice = reference_choice.choose_reference(
                job.descriptor, job.pose, candidates, identity_threshold=threshold, any_identity=options.any_identity,
                exclude=[*tried, *job.far], target_width=facelib.face_width(job.face), target_expression=job.expression,
            )
        except NoReferenceError:
            break
        tg = time.perf_counter()
        ref = align_for_model(choice.candidate.pixels, choice.candidate.face.landmarks, model)
        gen = generate_crops(model, job.aligned.crop[None], job.aligned.mask[None], exemplar_batch(model, [job.aligned], [ref])).item(0)
        spent["generate"] += time.perf_counter() - tg
        pending = [(choice, gen, ref)]
    best = _report_outcome(report, job, kept, attempts)
    report.self_check = {
        "enabled": check_cfg.enabled,
        "passed": bool(kept) and bool(attempts[best]["passed"]),
        "kept": best,  # index into attempts of the result kept (None: none)
        "attempts": attempts,
    }
    return min(kept, key=lambda r: (r[0], r[1]))[3] if kept else out


def _report_outcome(report: FaceReport, job: FaceJob, kept: list, attempts: list[dict[str, Any]]) -> int | None:
    """Fill ``report`` with the result kept (the passing one closest to the face's identity); its attempt index."""
    if not kept:  # every usable reference failed: the face stays as it was
        report.status = "failed self-check"
        report.reference = None
        report.message = "no reference gave eyes that pass the self-check: " + "; ".join(
            f"{Path(a['reference']['path']).name} (face {a['reference']['face'] + 1}): {', '.join(a['reasons'])}"
            for a in attempts
        )
        return None
    _, best, choice, _, check = min(kept, key=lambda r: (r[0], r[1]))
    report.status = "retouched"
    report.reference = _reference_dict(choice)
    report.mask_boxes = photo_boxes(job.aligned.boxes, job.aligned.matrix)
    report.eyes_after = check.eyes.to_dict()  # check_face refits the face: both are always measured
    report.identity_after = round(float(check.identity), 4)
    return best


def _paste_face(out: np.ndarray, face, choice, prep: AlignedFace, gen: Generated, ref: AlignedFace, model,
                options: RetouchOptions) -> tuple[np.ndarray, dict[str, Any] | None]:
    """``out`` with one generated face (``gen``: one face's generator output) colour-matched and
    pasted back; a warp model's field takes the reference photo's own pixels (stages/warp.py),
    and what it took is returned for the report (None: no warp)."""
    colour = match_colour(gen.raw, prep.crop, prep.boxes, options.blend)
    # G is only trained inside its holes (masked L1 on the composite), but the feathered alpha
    # reaches a little beyond them: there, blend the real crop, not G's untrained output.
    # On real closed eyes this cuts the change of the skin on the boxes' border by 23%
    # (benchmarks/seams.py: 0.0070 -> 0.0054), sharpness and identity unchanged.
    hole = prep.mask[..., None]
    colour = hole * colour + (1.0 - hole) * prep.crop.astype(np.float32)
    alpha = feather_alpha(prep.boxes, model.align_cfg.resolution, options.blend)
    source = None
    if options.blend.detail:  # full-resolution detail from the reference photo (detail.py)
        c = choice.candidate
        source = DetailSource(face.landmarks, Exemplar(c.pixels, c.face.landmarks, ref.matrix), options.blend.detail_cfg)
    warp = None
    if gen.flow is not None and options.blend.warp and model.model_cfg.warp_fullres:
        warp = warp_source(model, prep, ref, choice.candidate.pixels, gen.flow, gen.weight, options.blend.detail_cfg)
    pasted, _ = paste_back(out, colour, alpha, prep.matrix, source, warp)
    return pasted, (dict(warp.info) if warp is not None else None)
