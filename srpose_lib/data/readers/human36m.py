"""Human3.6M (Ionescu et al., TPAMI 2014), a real body target, read from G. Moon's JSON release
(the one TLL's loader expects; PoseNet / I2L-MeshNet distribute it).

Layout (under ``DATA_DIR/raw/human36m/``), for the subjects ``N`` in 1, 5, 6, 7, 8, 9, 11::

    annotations/Human36M_subject{N}_data.json       {"images": [{"file_name", "width", "height",
                                                     "subject", "action_idx", "subaction_idx",
                                                     "cam_idx", "frame_idx", ...}, ...],
                                                     "annotations": [...]}
    annotations/Human36M_subject{N}_camera.json     {"<cam_idx>": {"R": 3x3, "t": 3 (mm),
                                                     "f": 2, "c": 2}}
    annotations/Human36M_subject{N}_joint_3d.json   {"<action_idx>": {"<subaction_idx>":
                                                     {"<frame_idx>": 17 x 3 world mm}}}
    images/<file_name>                              e.g. s_01_act_02_subact_01_ca_01/..._000001.jpg

H36M-17 (Moon): 0 pelvis, 1 R-hip, 2 R-knee, 3 R-ankle, 4 L-hip, 5 L-knee, 6 L-ankle,
7 torso, 8 neck, 9 nose, 10 head, 11 L-shoulder, 12 L-elbow, 13 L-wrist, 14 R-shoulder,
15 R-elbow, 16 R-wrist; left and right are the person's own (a real camera: no cross).

What this reader reproduces (TLL ``human36m.py``'s one-time ``preprocess``):

* **Every 5th image**: the entries ``i`` of the subject's ``images`` list with
  ``i % 5 == 0`` (the list index, not ``frame_idx``; where a video's length is not a
  multiple of 5 the phase moves from one video to the next, so the four cameras of an
  instant are not always all kept).
* **Remap** ``[3, 2, 1, 4, 5, 6, 0, 11, 8, 10, 16, 15, 14, 11, 12, 13]``; then thorax :=
  the midpoint of the two shoulders. Upper neck = neck, head top = head.
* **Camera**: world -> camera ``R X + t`` (millimetres, stored as metres), 2D = the pinhole
  projection with ``f``, ``c``. **All joints visible.**
* **Crop**: the 1.5x box of the 16 keypoints, clamped to the image (TLL resizes it to
  512 px once; srpose crops straight to the prepared size).
* **Splits**: ``train`` = S1, S5, S6, S7, S8; ``test`` = S9 + S11.

One deliberate difference: TLL draws its 3,200 test samples with ``random.choices``, i.e.
**with replacement** (duplicates possible). srpose draws ``test_size`` (default 3,200) of
the S9 + S11 samples **without replacement** (``random.Random(42).sample``), kept in file
order; ``test_size=0`` keeps them all.

Ids: ``subject`` = N, ``sequence`` = ``100 * action_idx + subaction_idx``, ``view`` =
``cam_idx``, ``frame`` = ``frame_idx``: consecutive kept frames of one camera are pairs, and
the other cameras of the same frame where all were kept.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...utils import progress
from . import RawSample, check_every, project
from .files import as_array, load_json

SUBJECTS = {"train": (1, 5, 6, 7, 8), "test": (9, 11)}
KINDS = ("data", "camera", "joint_3d")
TO_BODY16 = (3, 2, 1, 4, 5, 6, 0, 11, 8, 10, 16, 15, 14, 11, 12, 13)
THORAX, SHOULDERS = 7, (12, 13)
EVERY = 5
TEST_SIZE = 3200
FIX = ("get G. Moon's Human3.6M annotations and images again (see "
       "`python -m data_scripts.human36m --check`)")


def annotation_path(root: Path, subject: int, kind: str) -> Path:
    return root / "annotations" / f"Human36M_subject{subject}_{kind}.json"


def find_root(raw_dir: str | Path) -> Path:
    """The folder holding ``annotations/Human36M_subject*_data.json`` and ``images/``."""
    raw = Path(raw_dir)
    for cand in (raw, raw / "Human36M", raw / "h36m"):
        if any((cand / "annotations").glob("Human36M_subject*_data.json")):
            return cand
    raise DataError(f"Human3.6M not found in {raw} (expected {annotation_path(raw, 1, 'data')} and "
                    f"{raw / 'images'})",
                    "Human3.6M needs a registration: see `python -m data_scripts.human36m --check` "
                    "(data_scripts/README.md, Human3.6M) for what to get and where to put it")


def load_subject(root: Path, subject: int) -> tuple[list, dict, dict]:
    """The ``images`` list, the cameras and the 3D joints of one subject."""
    data = load_json(annotation_path(root, subject, "data"), "Human3.6M annotation file", FIX)
    cameras = load_json(annotation_path(root, subject, "camera"), "Human3.6M camera file", FIX)
    joints = load_json(annotation_path(root, subject, "joint_3d"), "Human3.6M joint file", FIX)
    path = annotation_path(root, subject, "data")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"Human3.6M annotation file {path} has no 'images' list", FIX)
    for kind, obj in (("camera", cameras), ("joint_3d", joints)):
        if not isinstance(obj, dict):
            raise DataError(f"Human3.6M file {annotation_path(root, subject, kind)} holds a "
                            f"{type(obj).__name__}, expected a JSON object", FIX)
    return data["images"], cameras, joints


def camera(cameras: dict, cam_idx, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``R`` (3, 3), ``t`` (3,) in mm and the intrinsics ``K`` of one camera entry."""
    try:
        c = cameras[str(cam_idx)]
        R = as_array(c["R"], (3, 3), f"{where}: camera {cam_idx} R", FIX)
        t = as_array(c["t"], (3,), f"{where}: camera {cam_idx} t", FIX)
        f = as_array(c["f"], (2,), f"{where}: camera {cam_idx} f", FIX)
        cc = as_array(c["c"], (2,), f"{where}: camera {cam_idx} c", FIX)
    except (KeyError, TypeError) as e:
        raise DataError(f"{where} has no complete camera {cam_idx} (R, t, f, c; missing {e})", FIX) from None
    K = np.array([[f[0], 0.0, cc[0]], [0.0, f[1], cc[1]], [0.0, 0.0, 1.0]])
    return R, t, K


def to_body16(joints17: np.ndarray) -> np.ndarray:
    """H36M-17 (..., 17, D) to Body16, thorax := the shoulders' midpoint (TLL)."""
    j = np.asarray(joints17, dtype=np.float64)[..., list(TO_BODY16), :]
    j[..., THORAX, :] = 0.5 * (j[..., SHOULDERS[0], :] + j[..., SHOULDERS[1], :])
    return j


def read_subject(root: Path, subject: int, every: int = EVERY) -> list[RawSample]:
    """The kept images (``i % every == 0``) of one subject, in the file's order."""
    images, cameras, joints = load_subject(root, subject)
    data_path = annotation_path(root, subject, "data")
    joint_path = annotation_path(root, subject, "joint_3d")
    cams: dict = {}
    out: list[RawSample] = []
    for i in range(0, len(images), check_every(every, "Human3.6M")):
        img = images[i]
        try:
            name = str(img["file_name"])
            a, s, c, f = (int(img[k]) for k in ("action_idx", "subaction_idx", "cam_idx", "frame_idx"))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{data_path}: image {i} lacks file_name/action_idx/subaction_idx/cam_idx/"
                            f"frame_idx ({e})", FIX) from None
        try:
            world = joints[str(a)][str(s)][str(f)]
        except (KeyError, TypeError):
            raise DataError(f"{joint_path} has no joints for action {a}, subaction {s}, frame {f} "
                            f"(image {name})", FIX) from None
        world = as_array(world, (17, 3), f"{joint_path}: action {a}, subaction {s}, frame {f}", FIX)
        if c not in cams:
            cams[c] = camera(cameras, c, str(annotation_path(root, subject, "camera")))
        R, t, K = cams[c]
        cam = to_body16(world @ R.T + t) / 1000.0  # metres
        size = (int(img["width"]), int(img["height"])) if "width" in img and "height" in img else None
        image = f"images/{name}"
        out.append(RawSample(name=image, image=image, keypoints2d=project(cam, K), visible=np.ones(16, bool),
                             keypoints3d=cam, intrinsics=K, subject=subject, sequence=100 * a + s, frame=f,
                             view=c, image_size=size, extra={"action": a, "subaction": s},
                             annotation=str(joint_path)))
    return out


def read(raw_dir: str | Path, every: int = EVERY, test_size: int = TEST_SIZE, seed: int = 42,
         show_progress: bool = False) -> dict[str, list[RawSample]]:
    """``{"train": S1, S5-S8, "test": a seeded sample of S9 + S11 without replacement}``."""
    every = check_every(every, "Human3.6M")
    if isinstance(test_size, bool) or not isinstance(test_size, int) or test_size < 0:
        raise DataError(f"Human3.6M: test_size must be a whole number >= 0 (0 keeps all), got {test_size!r}",
                        f"pass --test-size {TEST_SIZE} (TLL's count) or 0 to keep every S9 + S11 sample")
    root = find_root(raw_dir)
    out = {}
    for split, subjects in SUBJECTS.items():
        samples: list[RawSample] = []
        for subject in progress(subjects, desc=f"human36m/{split} annotations", unit="subject",
                                disable=not show_progress):
            samples += read_subject(root, subject, every)
        out[split] = samples
    n = len(out["test"])
    k = n if test_size <= 0 else min(int(test_size), n)
    out["test"] = [out["test"][i] for i in sorted(random.Random(seed).sample(range(n), k))]
    return out


def split_sources(root: Path, split: str) -> list[str]:
    """The data files a split is read from and how many images each lists (named when the
    split comes out empty)."""
    out = []
    for subject in SUBJECTS.get(split, ()):
        path = annotation_path(Path(root), subject, "data")
        try:
            images = load_json(path, "Human3.6M annotation file", FIX).get("images")
            out.append(f"{path} ({len(images) if isinstance(images, list) else 0} images)")
        except (DataError, AttributeError):
            out.append(f"{path} (unreadable)")
    return out


def verify(raw_dir: str | Path, every: int = EVERY) -> dict:
    """Per subject: its three annotation files, and the images the default prepare uses
    (every 5th) that are missing."""
    root = find_root(raw_dir)
    report: dict = {"root": str(root), "missing": []}
    for subject in SUBJECTS["train"] + SUBJECTS["test"]:
        paths = [annotation_path(root, subject, kind) for kind in KINDS]
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            report["missing"] += absent
            continue
        images = load_json(paths[0], "Human3.6M annotation file", FIX)
        images = images.get("images", []) if isinstance(images, dict) else []
        need = [str(im.get("file_name", "")) for im in images[::every] if isinstance(im, dict)]
        missing = [str(root / "images" / n) for n in need if not (root / "images" / n).is_file()]
        report[f"S{subject}"] = f"{len(images)} images, {len(need)} used"
        report["missing"] += missing
    return report
