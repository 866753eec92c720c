"""dlib's models, loaded once per process and shared safely between threads (faces.py uses them).

The model files come from the ``face_recognition_models`` package, found without importing it
(its __init__ imports pkg_resources). The HOG detector ships with this package.

dlib's detectors and its descriptor network keep scratch buffers in the object: two threads
scanning with one object crash the process, and open-eyes scans a photo and its references at
once (apps/one_photo.py). So each thread has its own HOG detector (3 ms to read), and the CNN
detector and the descriptor network, slower to load, are lent to one thread at a time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import threading
from pathlib import Path
from concurrent.futures import Future
from typing import Any, Iterator

from exgan_cli.errors import WeightsError

# dlib's frontal-face HOG detector, as dlib.get_frontal_face_detector() builds it, saved in dlib's
# own format: building it decodes a compressed string in ~1 s, reading this file takes ~3 ms.
# tests/stages/test_faces.py checks the file is byte for byte what the installed dlib saves.
HOG_DETECTOR_FILE = Path(__file__).with_name("frontal_face_hog.svm")

_PER_THREAD = threading.local()
_CNN_LOCK = threading.Lock()
_ENCODER_LOCK = threading.Lock()
# Reading the 68-point model (99 MB) takes ~1 s, during which dlib holds the GIL: every other
# thread stops unless it is inside a call that released it, as a HOG scan does for its whole
# run. A second caller of shape_predictor waits for a load under way, not start its own.
_PREDICTOR_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def model_dir() -> Path:
    """Folder holding dlib's model files (from the face_recognition_models package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("face_recognition_models is not installed (pip install face_recognition_models)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not folder.is_dir():
        raise WeightsError(f"{folder}: dlib model folder missing (reinstall face_recognition_models)")
    return folder


def _model_file(name: str) -> str:
    path = model_dir() / name
    if not path.is_file():
        raise WeightsError(f"{path}: dlib model file missing (reinstall face_recognition_models)")
    return str(path)


def hog_detector() -> Any:
    """This thread's frontal-face HOG detector (dlib.fhog_object_detector)."""
    detector = getattr(_PER_THREAD, "hog", None)
    if detector is None:
        import dlib

        if HOG_DETECTOR_FILE.is_file():
            detector = dlib.fhog_object_detector(str(HOG_DETECTOR_FILE))
        else:
            detector = dlib.get_frontal_face_detector()
        _PER_THREAD.hog = detector
    return detector


@functools.lru_cache(maxsize=None)
def cnn_detector() -> Any:
    """dlib's MMOD CNN face detector (use it through ``locked_cnn`` where threads may share it)."""
    import dlib

    return dlib.cnn_face_detection_model_v1(_model_file("mmod_human_face_detector.dat"))


@contextlib.contextmanager
def _lent(lock: threading.Lock, load: Any) -> Iterator[Any]:
    """``load()``'s model, lent to this thread alone while the block runs."""
    with lock:
        yield load()


def locked_cnn() -> contextlib.AbstractContextManager:
    """The CNN face detector, lent to this thread alone (``with locked_cnn() as cnn:``)."""
    return _lent(_CNN_LOCK, cnn_detector)


@functools.lru_cache(maxsize=None)
def face_encoder() -> Any:
    """dlib's ResNet identity descriptor network (use it through ``locked_encoder``)."""
    import dlib

    return dlib.face_recognition_model_v1(_model_file("dlib_face_recognition_resnet_model_v1.dat"))


def locked_encoder() -> contextlib.AbstractContextManager:
    """The descriptor network, lent to this thread alone (``with locked_encoder() as encoder:``)."""
    return _lent(_ENCODER_LOCK, face_encoder)


@functools.lru_cache(maxsize=None)
def _load_shape_predictor() -> Any:
    import dlib

    return dlib.shape_predictor(_model_file("shape_predictor_68_face_landmarks.dat"))


# The event a pending preload waits for (preload_landmarks): another thread that needs the model
# first (the references' thread) waits for it too, rather than start the GIL-holding read itself.
_GATE: threading.Event | None = None
_GATE_TIMEOUT = 10.0  # s: a photo that never reaches its scan does not hold the others for longer


def shape_predictor() -> Any:
    """dlib's 68-point landmark model (its use is thread-safe: it keeps no state between calls)."""
    gate = _GATE
    if gate is not None and not _load_shape_predictor.cache_info().currsize:
        gate.wait(_GATE_TIMEOUT)
    with _PREDICTOR_LOCK:
        return _load_shape_predictor()


def preload_landmarks(start: threading.Event | None = None) -> "Future":
    """Load dlib's landmark model on a daemon thread, so that it is ready when the first face is
    found. With ``start``, the load waits for that event (at most ``timeout`` s): pass the same
    event to ``faces.detect_faces(scan_started=)`` and the load runs beside the photo's HOG scan
    instead of stopping its decoding; any other thread that needs the model meanwhile waits for
    the event as well. A failed load is not reported here: whoever needs the landmarks gets the
    error. Returns the load's future."""
    from exgan_cli.background import in_background

    global _GATE
    _GATE = start

    def load() -> Any:
        return shape_predictor()  # waits for the gate

    return in_background(load, name="exgan-landmarks")
