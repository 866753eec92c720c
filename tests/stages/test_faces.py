"""faces.py on real photos: detection, landmarks, descriptors, pose, sharpness."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from exgan_cli.stages import dlib_models, faces as F
from exgan_cli.stages import geometry as G
from exgan_cli.stages.faces import SAME_PERSON_THRESHOLD, Face, descriptor_distance, detect_faces, face_descriptor
from exgan_cli.stages.pose import head_pose
from exgan_cli.files.images import load_image

from conftest import CHAVEZ_OPEN, DATA, GROUP, GROUP_FACES, HIGHRES, POWELL, SERENA


@pytest.fixture(scope="module")
def lfw_faces() -> dict[str, tuple[np.ndarray, Face]]:
    """The single face of each open-eyed LFW test photo, by person."""
    out = {}
    for p in CHAVEZ_OPEN + POWELL + SERENA:
        rgb = load_image(p).pixels
        faces = detect_faces(rgb)
        assert len(faces) == 1, p
        out[p.name] = (rgb, faces[0])
    return out


@pytest.fixture(scope="module")
def highres() -> tuple[np.ndarray, list[Face]]:
    rgb = load_image(HIGHRES).pixels
    return rgb, detect_faces(rgb)


@pytest.fixture(scope="module")
def group() -> tuple[np.ndarray, list[Face]]:
    rgb = load_image(GROUP).pixels
    return rgb, detect_faces(rgb)


def test_face_fields(lfw_faces):
    rgb, face = lfw_faces[CHAVEZ_OPEN[0].name]
    assert face.detector == "hog" and face.score > 0
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float64
    x0, y0, x1, y1 = face.box
    assert all(isinstance(v, int) for v in face.box)
    assert 0 <= x0 < x1 <= 250 and 0 <= y0 < y1 <= 250
    # LFW centres the face: the landmarks sit in the middle of the 250 px photo
    cx, cy = face.landmarks.mean(axis=0)
    assert 95 < cx < 155 and 95 < cy < 165
    assert 70 < F.face_width(face) < 140
    assert hash(face) == hash(face) and face == face


def test_landmarks_align_to_template(lfw_faces):
    cfg = G.AlignConfig()
    band = G.eye_band(cfg.resolution)
    template = np.asarray(cfg.template) * cfg.resolution
    for name, (rgb, face) in lfw_faces.items():
        crop, m = G.align_face(rgb, face.landmarks, cfg)
        assert crop.shape == (128, 128, 3)
        lm = G.transform_points(face.landmarks, m)
        eyes = lm[36:48]
        assert (eyes[:, 0] > band[0]).all() and (eyes[:, 0] < band[2]).all(), name
        assert (eyes[:, 1] > band[1]).all() and (eyes[:, 1] < band[3]).all(), name
        # the five alignment points land near the template (least squares over five points)
        err = np.linalg.norm(G.alignment_points(lm) - template, axis=1)
        assert err.max() < 8.0, (name, err)
        # photo -> crop -> photo round trip
        back = G.transform_points(lm, G.invert(m))
        assert np.abs(back - face.landmarks).max() < 1e-6


def test_landmarks_found_again_in_aligned_crop(lfw_faces):
    """Landmarks detected in the aligned crop map back onto the photo's (a few px at most)."""
    cfg = G.AlignConfig(resolution=256)
    for name, (rgb, face) in list(lfw_faces.items())[:3]:
        crop, m = G.align_face(rgb, face.landmarks, cfg)
        again = detect_faces(crop)
        assert len(again) == 1, name
        back = G.transform_points(again[0].landmarks, G.invert(m))
        eyes_err = np.linalg.norm(back[36:48] - face.landmarks[36:48], axis=1).mean()
        assert eyes_err < 2.0, (name, eyes_err)


def test_highres_photo(highres):
    rgb, faces = highres
    assert len(faces) == 1
    face = faces[0]
    assert F.face_width(face) > 500
    # the box (found on a reduced copy, scaled back) agrees with the full-res landmarks
    lo, hi = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
    assert F._iou(face.box, (*lo, *hi)) > 0.5
    x0, y0, x1, y1 = face.box
    cx, cy = face.landmarks.mean(axis=0)
    assert x0 < cx < x1 and y0 < cy < y1
    assert abs((hi[0] - lo[0]) - (x1 - x0)) < 0.25 * (x1 - x0)  # HOG boxes are a bit tighter


def test_detection_size_does_not_move_landmarks(highres):
    rgb, faces = highres
    small = detect_faces(rgb, max_side=800)
    assert len(small) == 1
    assert F._iou(small[0].box, faces[0].box) > 0.8
    diff = np.linalg.norm(small[0].landmarks - faces[0].landmarks, axis=1).mean()
    assert diff < 0.02 * F.face_width(faces[0])


def test_group_photo_all_faces(group):
    rgb, faces = group
    # four faces are whole enough for HOG; the ones cut by the frame's edges are not found
    assert len(faces) == GROUP_FACES
    xs = [f.box[0] + f.box[2] for f in faces]
    assert xs == sorted(xs)  # left to right
    for a, b in itertools.combinations(faces, 2):
        assert F._iou(a.box, b.box) < 0.1  # no duplicates


def test_shipped_hog_detector_is_dlibs(tmp_path, group):
    """The HOG detector read from frontal_face_hog.svm (3 ms) is the one dlib builds (1 s).
    If dlib's detector ever changes, regenerate the file:
    python -c "import dlib; dlib.get_frontal_face_detector().save('exgan_cli/stages/frontal_face_hog.svm')"
    """
    import dlib

    built = dlib.get_frontal_face_detector()
    built.save(str(tmp_path / "built.svm"))
    assert (tmp_path / "built.svm").read_bytes() == dlib_models.HOG_DETECTOR_FILE.read_bytes()
    rgb, faces = group
    small = np.ascontiguousarray(rgb[::2, ::2])
    got = dlib_models.hog_detector().run(small, 1, 0.0)
    want = built.run(small, 1, 0.0)
    assert len(got[0]) == len(want[0]) >= 3
    assert [(r.left(), r.top(), r.right(), r.bottom()) for r in got[0]] == [(r.left(), r.top(), r.right(), r.bottom()) for r in want[0]]
    assert np.allclose(got[1], want[1])


def test_threads_detect_and_describe_at_once(group, highres):
    """open-eyes scans the photo and its references on two threads: the same faces, landmarks
    and descriptors as one after the other (one shared dlib detector crashed the process)."""
    from concurrent.futures import ThreadPoolExecutor

    photos = [group[0], highres[0], group[0][::-1].copy(), highres[0][:, ::-1].copy()]

    def work(rgb):
        found = detect_faces(rgb)
        return [(f.box, f.landmarks, face_descriptor(rgb, f)) for f in found]

    serial = [work(p) for p in photos]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(work, photos * 2))
    for want, got in zip(serial * 2, threaded):
        assert [b for b, _, _ in got] == [b for b, _, _ in want]
        for (_, lm_a, d_a), (_, lm_b, d_b) in zip(got, want):
            assert np.array_equal(lm_a, lm_b) and np.array_equal(d_a, d_b)


def test_upsample_rule():
    # whole photos up to max_side are doubled once: 40 px faces reach the 80 px window
    assert F._upsample_count(300, 1.0, F.HOG_UPSAMPLED_LIMIT) == 1
    assert F._upsample_count(1600, 1.0, F.HOG_UPSAMPLED_LIMIT) == 1
    # a 6000 px photo reduced to 1600 px would need 2 doublings but is capped at 3200 px
    assert F._upsample_count(1600, 1600 / 6000, F.HOG_UPSAMPLED_LIMIT) == 1
    assert F._upsample_count(3000, 0.5, F.HOG_UPSAMPLED_LIMIT) == 0


def test_small_face_in_big_photo_found():
    """A ~70 px face in a 2400 px photo: ~47 px on the 1600 px copy, so it needs upsampling."""
    rgb = load_image(SERENA[0]).pixels
    small = cv2.resize(rgb, (170, 170), interpolation=cv2.INTER_AREA)
    canvas = np.full((1800, 2400, 3), 90, np.uint8)
    canvas[1000:1170, 1500:1670] = small
    faces = detect_faces(canvas)
    assert len(faces) == 1
    assert 50 < F.face_width(faces[0]) < 90
    cx, cy = faces[0].landmarks.mean(axis=0)
    assert 1500 < cx < 1670 and 1000 < cy < 1170


def test_small_crops_found(closed_crops):
    for p in closed_crops:  # 63 to 368 px face crops: the face fills the frame
        rgb = load_image(p).pixels
        assert len(detect_faces(rgb)) >= 1, p


def test_cnn_detector(lfw_faces):
    rgb, hog_face = lfw_faces[SERENA[0].name]
    faces = detect_faces(rgb, detector="cnn")
    assert len(faces) == 1 and faces[0].detector == "cnn"
    assert np.linalg.norm(faces[0].landmarks - hog_face.landmarks, axis=1).mean() < 4.0
    with pytest.raises(ValueError):
        detect_faces(rgb, detector="mtcnn")


def test_auto_falls_back_to_cnn_when_hog_finds_nothing():
    # A CEW crop (176 px) whose face HOG misses even with the padded, upsampled copy; the
    # CNN finds it, the face reports which detector found it, and its eyes read as closed.
    from exgan_cli.stages import eye_state as eyes

    rgb = load_image(DATA / "hog_miss" / "closed_eye_2740.jpg_face_1.jpg").pixels
    assert detect_faces(rgb, detector="hog") == []
    found = detect_faces(rgb, detector="auto")
    assert len(found) == 1 and found[0].detector == "cnn"
    x0, y0, x1, y1 = found[0].box
    assert x1 - x0 > 100 and y1 - y0 > 100  # the face fills the crop
    assert eyes.assess(rgb, found[0]).closed


def test_no_face_in_blank_image():
    assert detect_faces(np.full((200, 300, 3), 128, np.uint8)) == []


def test_descriptor_same_vs_different_person(lfw_faces):
    desc = {name: face_descriptor(rgb, face) for name, (rgb, face) in lfw_faces.items()}
    assert all(d.shape == (128,) and d.dtype == np.float32 for d in desc.values())
    people = {name: name.rsplit("_", 1)[0] for name in desc}
    same, diff = [], []
    for a, b in itertools.combinations(desc, 2):
        (same if people[a] == people[b] else diff).append(descriptor_distance(desc[a], desc[b]))
    assert max(same) < SAME_PERSON_THRESHOLD < min(diff)
    assert max(same) < 0.55 and min(diff) > 0.7  # with a margin on these photos


def test_descriptor_crop_matches_full_resolution(highres, group):
    for rgb, faces in (highres, group):
        for face in faces:
            fast = face_descriptor(rgb, face)
            full = face_descriptor(rgb, face, full_resolution=True)
            assert descriptor_distance(fast, full) < 0.05


def test_descriptor_across_resolutions(highres, group):
    """Angelina Jolie in a 2500 px portrait and in a 600 px group selfie."""
    a = face_descriptor(highres[0], highres[1][0])
    dists = [descriptor_distance(a, face_descriptor(group[0], f)) for f in group[1]]
    assert int(np.argmin(dists)) == 1
    assert dists[1] < SAME_PERSON_THRESHOLD < min(d for i, d in enumerate(dists) if i != 1)


def test_head_pose_signs(lfw_faces):
    for name, (rgb, face) in lfw_faces.items():
        h, w = rgb.shape[:2]
        yaw, pitch, roll = head_pose(face.landmarks, (w, h))
        assert all(abs(v) < 60 for v in (yaw, pitch, roll)), name
        # mirroring the photo mirrors yaw and roll and keeps pitch
        flipped = np.ascontiguousarray(rgb[:, ::-1])
        mf = detect_faces(flipped)[0]
        yaw2, pitch2, roll2 = head_pose(mf.landmarks, (w, h))
        assert abs(yaw + yaw2) < 6 and abs(roll + roll2) < 4 and abs(pitch - pitch2) < 5, name
        # yaw > 0 means the nose points to the image's right: the nose tip lies right of
        # the middle of the eyes
        lm = face.landmarks
        offset = (lm[30, 0] - (lm[36, 0] + lm[45, 0]) / 2) / (lm[45, 0] - lm[36, 0])
        if abs(offset) > 0.05:
            assert np.sign(yaw) == np.sign(offset), name


def test_roll_sign():
    """A frontal face rotated clockwise on screen has positive roll."""
    rgb = load_image(CHAVEZ_OPEN[0]).pixels
    face = detect_faces(rgb)[0]
    centre = face.landmarks.mean(axis=0)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), -20, 1.0)  # cv2: + is CCW
    lm = G.transform_points(face.landmarks, m)
    roll0 = head_pose(face.landmarks, (250, 250))[2]
    roll1 = head_pose(lm, (250, 250))[2]
    assert 14 < roll1 - roll0 < 26


def test_sharpness(highres):
    rgb, faces = highres
    face = faces[0]
    sharp = F.sharpness(rgb, face)
    blurred = F.sharpness(cv2.GaussianBlur(rgb, (0, 0), 6), face)
    assert blurred < 0.5 * sharp
    # comparable across resolutions: the same face at half size scores about the same
    half = cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    small_face = Face(box=tuple(v // 2 for v in face.box), landmarks=face.landmarks / 2, detector="hog", score=1.0)
    ratio = F.sharpness(half, small_face) / sharp
    assert 0.6 < ratio < 1.6


def test_central_and_largest_face(group):
    rgb, faces = group
    assert F.largest_face(faces) is faces[3] or F.face_width(F.largest_face(faces)) == max(map(F.face_width, faces))
    assert F.central_face([], (10, 10)) is None and F.largest_face([]) is None
    c = F.central_face(faces, (rgb.shape[1], rgb.shape[0]))
    assert c in faces


def test_bad_array():
    with pytest.raises(ValueError):
        detect_faces(np.zeros((10, 10), np.uint8))
