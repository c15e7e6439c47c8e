"""MVHand — the multi-view RGB-D hand dataset of Yu, Yang, Chen & Yao (BMVC 2021), a real
hand target. Toolkit: github.com/ShichengChen/multiviewDataset (``toolkits/toolkit.py``,
``toolkits/globalCamera/camera.py``); the baselines have no loader for it, so the
visibility, crop and split below are srpose's.

Official layout, one folder per sequence (``7-14-1-2``, ``9-10-1-2``, ``9-17-1-2``,
``9-25-1-2``; one subject each) under ``DATA_DIR/raw/mvhand/``::

    <seq>/calib.pkl                      {camera serial: 4x4 pose (camera -> world); the
                                          root camera's is the identity}
    <seq>/rgb/%05d_%d.jpg                frame, view 0-3 (640 x 480)
    <seq>/depth/%05d_%d.png              (R + 256 G, not needed here)
    <seq>/mlresults/<seq>-joints.npy     (N, 84): 21 homogeneous world points per frame, mm
    <seq>/<seq>manoParam.pkl             (not needed here)

Views are the four RealSense D415 serials sorted (``840412062035``, ``...037``, ``...038``,
``...076``) -> view 0..3, as the toolkit sorts them; their intrinsics are hard-coded in the
toolkit (``CameraIntrinsics``) and copied below. Camera coordinates of view ``v`` are
``inv(pose[serial_v]) @ X_world``; 2D = pinhole projection.

Joint order: 0 wrist, 1-4 index, 5-8 middle, 9-12 ring, 13-16 pinky, 17-20 thumb (each
MCP -> tip), mapped to Hand21 with ``[0, 17, 18, 19, 20, 1, 2, ..., 16]``.

srpose's choices (documented, unverified against the paper):

* **Visibility**: a joint is visible when it projects inside the 640 x 480 image in front of
  the camera (the data has no occlusion labels; the depth maps could give them).
* **Crop**: the 1.5x box of the visible keypoints (TLL ``scale_box``, clamped to the image).
  Views where fewer than ``min_visible`` joints project into the image are skipped.
* **Flip**: every crop is mirrored (the toolkit fits MANO_RIGHT: the hands are right hands),
  so they look like RHD's left hands, as the baselines do with FreiHAND. ``flip=False`` keeps
  them as recorded.
* **Split**: instants (sequence, frame) are shuffled with ``random.seed(42)`` (the baselines'
  rule) and the first ``min(int(0.2 n), 800)`` instants, all four views each (at most 3,200
  images), are the test set; the rest are train. Views of one instant never straddle the
  split, so multi-view pairs stay within a split.
* ``subject`` = ``sequence`` = the sequence's index in the sorted list above, ``frame`` the
  frame index, ``view`` 0-3: pairs are consecutive frames of a view and the other views of
  an instant.

Quirk of the toolkit: it stores the per-view joints as int64 (truncated to whole mm) and
truncates the projected 2D to int; srpose keeps full precision. ``every`` keeps one frame
in ``every`` (the sequences are 30 fps videos).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from ...errors import DataError
from . import RawSample, check_every
from .files import load_pickle

SEQUENCES = ("7-14-1-2", "9-10-1-2", "9-17-1-2", "9-25-1-2")
SERIALS = ("840412062035", "840412062037", "840412062038", "840412062076")  # sorted: view 0..3
# toolkits/globalCamera/camera.py: RS4_035, RS4_037, RS4_038, RS4_076 (fx, fy, cx, cy)
INTRINSICS = {
    "840412062035": (619.598, 619.116, 325.345, 245.441),
    "840412062037": (615.85, 615.477, 316.062, 247.156),
    "840412062038": (619.475, 619.189, 313.715, 223.921),
    "840412062076": (615.665, 615.09, 306.514, 240.344),
}
TO_HAND21 = [0, 17, 18, 19, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
IMAGE_SIZE = (640, 480)
FIX = ("download the sequence folder again from the MVHand Dropbox "
       "(see `python -m data_scripts.mvhand --check`)")


def intrinsic_matrix(serial: str) -> np.ndarray:
    fx, fy, cx, cy = INTRINSICS[serial]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def find_sequences(raw_dir: str | Path) -> list[Path]:
    """The sequence folders (holding ``calib.pkl``) under ``raw_dir``, known ones first in
    their canonical order, then any others sorted."""
    raw = Path(raw_dir)
    found = sorted(p.parent for p in raw.glob("*/calib.pkl"))
    if not found:
        raise DataError(f"MVHand not found in {raw}: no <sequence>/calib.pkl (expected e.g. "
                        f"{raw / SEQUENCES[0] / 'calib.pkl'})",
                        "download the sequence folders from the MVHand Dropbox into this folder "
                        "(see data_scripts/README.md, MVHand)")
    known = [p for s in SEQUENCES for p in found if p.name == s]
    return known + [p for p in found if p.name not in SEQUENCES]


def load_calib(seq: Path) -> dict[str, np.ndarray]:
    path = seq / "calib.pkl"
    calib = load_pickle(path, "MVHand calibration", FIX)
    if not isinstance(calib, dict):
        raise DataError(f"MVHand calibration {path} holds a {type(calib).__name__}, expected a dict", FIX)
    poses = {}
    for serial in SERIALS:
        if serial not in calib:
            raise DataError(f"MVHand calibration {path} has no camera {serial} (it has "
                            f"{', '.join(map(str, calib))})", FIX)
        pose = np.asarray(calib[serial], dtype=np.float64)
        if pose.shape != (4, 4):
            raise DataError(f"MVHand calibration {path}: camera {serial} pose has shape {pose.shape}, "
                            "expected (4, 4)", FIX)
        poses[serial] = pose
    return poses


def load_joints(seq: Path) -> np.ndarray:
    """World joints (N, 21, 3) in mm, toolkit order."""
    path = seq / "mlresults" / f"{seq.name}-joints.npy"
    if not path.is_file():
        raise DataError(f"MVHand joints file {path} is missing", FIX)
    try:
        joints = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"MVHand joints file {path} could not be read ({type(e).__name__}: {e}); "
                        "it is probably truncated", FIX) from None
    if joints.ndim != 2 or joints.shape[1] != 84:
        raise DataError(f"MVHand joints file {path} has shape {joints.shape}, expected (N, 84)", FIX)
    j = joints.reshape(-1, 21, 4).astype(np.float64)
    w = np.where(np.abs(j[..., 3:]) > 1e-12, j[..., 3:], 1.0)
    return j[..., :3] / w


def read_sequence(seq: Path, seq_index: int, every: int = 1, flip: bool = True,
                  min_visible: int = 2) -> list[RawSample]:
    """All (frame, view) samples of one sequence, in frame-major order."""
    poses = load_calib(seq)
    world = load_joints(seq)  # (N, 21, 3) mm
    N = len(world)
    homo = np.concatenate([world, np.ones((N, 21, 1))], -1)  # (N, 21, 4)
    W, H = IMAGE_SIZE
    out: list[RawSample] = []
    per_view = []
    for v, serial in enumerate(SERIALS):
        cam = (homo @ np.linalg.inv(poses[serial]).T)[..., :3] / 1000.0  # (N, 21, 3) metres
        K = intrinsic_matrix(serial)
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = cam @ K.T
            kp = uv[..., :2] / uv[..., 2:]
        vis = (np.isfinite(kp).all(-1) & (cam[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 0] <= W - 1)
               & (kp[..., 1] >= 0) & (kp[..., 1] <= H - 1))
        per_view.append((cam[:, TO_HAND21], kp[:, TO_HAND21], vis[:, TO_HAND21], K))
    for f in range(0, N, check_every(every, "MVHand")):
        if not np.isfinite(world[f]).all():
            continue
        for v in range(len(SERIALS)):
            cam, kp, vis, K = per_view[v]
            if int(vis[f].sum()) < min_visible:
                continue
            image = f"{seq.name}/rgb/{f:05d}_{v}.jpg"
            out.append(RawSample(name=image, image=image, keypoints2d=kp[f], visible=vis[f],
                                 keypoints3d=cam[f], intrinsics=K, subject=seq_index, sequence=seq_index,
                                 frame=f, view=v, flip=flip, image_size=IMAGE_SIZE))
    return out


def split_instants(instants: list[tuple[int, int]], seed: int = 42, cap: int = 800):
    """(train, test) sets of (sequence, frame) instants: seed-42 shuffle, test = first
    ``min(int(0.2 n), cap)``."""
    order = list(instants)
    random.Random(seed).shuffle(order)
    k = min(int(len(order) * 0.2), cap)
    return set(order[k:]), set(order[:k])


def read(raw_dir: str | Path, every: int = 1, flip: bool = True, seed: int = 42,
         min_visible: int = 2) -> dict[str, list[RawSample]]:
    """``{"train": [...], "test": [...]}`` over every sequence found, in (sequence, frame,
    view) order within each split."""
    samples: list[RawSample] = []
    unknown = 0
    for seq in find_sequences(raw_dir):
        if seq.name in SEQUENCES:
            idx = SEQUENCES.index(seq.name)
        else:  # a folder not in the release's list: numbered after the known ones
            idx = len(SEQUENCES) + unknown
            unknown += 1
        samples += read_sequence(seq, idx, every, flip, min_visible)
    instants = sorted({(s.sequence, s.frame) for s in samples})
    _, test = split_instants(instants, seed)
    return {"train": [s for s in samples if (s.sequence, s.frame) not in test],
            "test": [s for s in samples if (s.sequence, s.frame) in test]}


def verify(raw_dir: str | Path) -> dict:
    """Per sequence: frames with joints, RGB images present and the images missing."""
    report: dict = {"sequences": {}, "missing": []}
    for seq in find_sequences(raw_dir):
        joints = seq / "mlresults" / f"{seq.name}-joints.npy"
        n = 0
        if joints.is_file():
            try:
                n = int(np.load(joints, mmap_mode="r").shape[0])
            except (OSError, ValueError):
                report["missing"].append(f"{joints} (unreadable)")
        else:
            report["missing"].append(str(joints))
        rgb = seq / "rgb"
        have = sum(1 for _ in rgb.glob("*.jpg")) if rgb.is_dir() else 0
        report["sequences"][seq.name] = {"frames": n, "rgb_images": have, "expected_rgb": 4 * n}
        if have < 4 * n:
            report["missing"].append(f"{rgb}: {4 * n - have} of {4 * n} images")
    return report
