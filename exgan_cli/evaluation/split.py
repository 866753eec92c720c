"""Which faces are evaluated: persons in a seeded order, each target with a right reference (the
same person's next open-eyed face) and a wrong one (the next person's face at the same index)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from exgan_cli.errors import DataError
from exgan_cli.evaluation.config import PER_PERSON
from exgan_cli.training.dataset import list_person_photos


@dataclass
class Protocol:
    """Which faces are evaluated, with which references (paths relative to the data folder)."""

    targets: list[str]
    references: list[str]
    wrong_references: list[str]
    persons: list[str]  # person of each target
    wrong_persons: list[str]  # person of each wrong reference (never the target's)

    def __len__(self) -> int:
        return len(self.targets)

    def photos(self) -> list[str]:
        return sorted(set(self.targets) | set(self.references) | set(self.wrong_references))

    def keep(self, idx: Sequence[int]) -> "Protocol":
        return Protocol(*[[lst[i] for i in idx] for lst in (self.targets, self.references, self.wrong_references, self.persons, self.wrong_persons)])


def person_photos(data_dir: Path, per_person: int = PER_PERSON) -> dict[str, list[str]]:
    """Person -> photo paths relative to data_dir (sorted; the first per_person, 0 = all)."""
    out: dict[str, list[str]] = {}
    for person, photo in list_person_photos(data_dir):
        out.setdefault(person, []).append(str(photo.relative_to(data_dir)))
    if per_person:
        out = {p: v[:per_person] for p, v in out.items()}
    return out


def person_order(persons: Sequence[str], seed: int) -> list[str]:
    """The persons in a seeded random order (the evaluation order)."""
    names = sorted(persons)
    rng = np.random.default_rng(seed)
    return [names[i] for i in rng.permutation(len(names))]


def groups(order: Sequence[str], eligible: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """(person, open-eyed faces) in ``order``, for the persons with two or more such faces."""
    return [(p, eligible[p]) for p in order if len(eligible.get(p, ())) >= 2]


def enough(order: Sequence[str], eligible: dict[str, list[str]], limit: Optional[int]) -> bool:
    """Whether the persons in ``order`` settle the protocol: ``limit`` targets and one more person."""
    if limit is None:
        return False
    n = 0
    usable = groups(order, eligible)
    for k, (_, faces) in enumerate(usable):
        n += len(faces)
        if n >= limit:
            return k + 1 < len(usable)
    return False


def select_protocol(order: Sequence[str], eligible: dict[str, list[str]], limit: Optional[int] = None) -> Protocol:
    """Targets, right and wrong references from each person's open-eyed faces (``eligible``, in
    photo-name order), persons taken in ``order`` until ``limit`` targets.

    Right reference: the person's next open-eyed face (wrapping). Wrong reference: the same index
    (wrapping) in the next person's faces; the next person after the last one taken is the next
    eligible person in the order (or the first, when all were taken).
    """
    usable = groups(order, eligible)
    chosen: list[tuple[str, list[str]]] = []
    n = 0
    for g in usable:
        if limit is not None and n >= limit:
            break
        chosen.append(g)
        n += len(g[1])
    pool = chosen + ([usable[len(chosen)]] if len(chosen) < len(usable) else [])
    if len(pool) < 2:
        raise DataError("evaluation needs open-eyed faces of at least two persons with two such faces each")
    t, r, w, p, wp = [], [], [], [], []
    for k, (person, faces) in enumerate(chosen):
        other, other_faces = pool[(k + 1) % len(pool)]
        for j, face in enumerate(faces):
            if limit is not None and len(t) >= limit:
                break
            t.append(face)
            r.append(faces[(j + 1) % len(faces)])
            w.append(other_faces[j % len(other_faces)])
            p.append(person)
            wp.append(other)
    return Protocol(t, r, w, p, wp)
