"""What an evaluation is asked to do: EvalConfig (the paper's protocol, `evaluate --data`) and
ClosedConfig (real closed eyes, `evaluate --closed`), with their defaults and the callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
LogFn = Callable[[str], None]

BASELINES = ("telea", "navier-stokes", "poisson-copy")
MIN_EAR = 0.2  # targets and references: both eyes at least this open (training's default)
PER_PERSON = 10  # photos per person considered (first by name); keeps LFW's 530 Bush photos from filling a sample
GRID_ROWS = 6


@dataclass
class EvalConfig:
    data: Optional[Path] = None  # one sub-folder per person; None: the data folder the --cache was made from
    weights: list[str] = field(default_factory=list)  # model folders / Hub ids to evaluate
    cache: Optional[Path] = None  # face cache at the first model's resolution; default dataset.default_cache_path
    limit: Optional[int] = None  # at most this many target faces (a seeded subset of persons)
    seed: int = 0  # orders the persons (the subset, grid rows, wrong references) and the bootstrap
    per_person: int = PER_PERSON  # photos of each person considered, first by name (0: all)
    min_ear: float = MIN_EAR  # open-eyed: both eye aspect ratios at least this
    baselines: tuple[str, ...] = BASELINES  # which baselines to run
    device: str = "auto"  # where the generators run: auto, cpu, cuda, cuda:N
    batch_size: int = 16  # faces per generator call
    workers: int = 0  # processes preparing the cache (0: all cores)
    grid_rows: int = GRID_ROWS  # faces in the grid
    bootstrap: int = 200  # resamples for the Fréchet distance's interval


@dataclass
class ClosedConfig:
    data: Path  # one sub-folder per person: closed-eyed photos and open-eyed references together
    weights: list[str] = field(default_factory=list)  # models to run (at least one)
    limit: Optional[int] = None  # stop after this many closed-eyed faces
    seed: int = 0  # orders the persons
    per_person: int = PER_PERSON  # photos of each person considered, first by name (0: all)
    device: str = "auto"
    detector: str = "hog"
    grid_rows: int = GRID_ROWS
    self_check: bool = True  # the pipeline's self-check (selfcheck.py), as open-eyes runs it; False: the raw pipeline
