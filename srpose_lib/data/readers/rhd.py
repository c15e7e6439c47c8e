"""RHD — Rendered Hand Pose Dataset (Zimmermann & Brox, ICCV 2017), the synthetic hand source.

Official layout (``RHD_v1-1.zip`` unpacked into ``DATA_DIR/raw/rhd/``)::

    RHD_published_v2/
        training/   anno_training.pickle    color/%05d.png  depth/%05d.png  mask/%05d.png
        evaluation/ anno_evaluation.pickle  color/%05d.png  depth/%05d.png  mask/%05d.png

41,258 training and 2,728 evaluation images, 320 x 320. ``anno_<set>.pickle`` maps a sample
id to ``{"uv_vis": (42, 3) [u, v, visible], "xyz": (42, 3) camera metres, "K": (3, 3)}``.
Joints 0-20 are the left hand, 21-41 the right: wrist, then thumb, index, middle, ring,
little finger, each from tip to palm.

What this reader reproduces (TLL ``rendered_hand_pose.py``, which UniFrame copies):

* **Remap** to Hand21 with ``[0, 4, 3, 2, 1, 8, 7, 6, 5, ...]`` (+21 for the right hand):
  each finger reversed to MCP -> tip.
* **Sample filter**, per hand, with TLL's exact integer arithmetic: the 1.5x square box of
  all 21 keypoints (``scale_box`` clamped to 320 x 320, inclusive corners) must have
  ``right - left = side - 1 > 64``; more than 16 of the 21 keypoints visible; and the
  intersection of this box with the *other* hand's (unscaled) keypoint box must be under
  30 % of this box's area (areas count pixels inclusively, ``+ 1``).
* **Crop**: the same 1.5x box of all 21 keypoints (visible or not).
* **Flip**: right hands are mirrored (TLL's comment says "change all hands to right hands"
  but the code flips the samples with ``left is False``), so every sample looks like a
  left hand. The 3D keypoints and the crop intrinsics are mirrored with the image.
* **Visibility** = ``uv_vis[:, 2]``.
* **Splits**: ``train`` = training, ``test`` = evaluation; samples in the pickle's order,
  the left hand before the right hand of each image.

Sample names are ``<set>/color/%05d.png#left`` / ``#right`` (one image can give two samples).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from . import RawSample
from .files import load_pickle

FOLDER = "RHD_published_v2"
SETS = {"train": "training", "test": "evaluation"}
IMAGE_SIZE = (320, 320)
LEFT_INDEX = [0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17]
RIGHT_INDEX = [i + 21 for i in LEFT_INDEX]
MIN_SIZE = 64
MIN_VISIBLE = 16
MAX_OVERLAP = 0.3


def find_root(raw_dir: str | Path) -> Path:
    """``raw_dir/RHD_published_v2`` (or ``raw_dir`` itself when it is that folder)."""
    raw = Path(raw_dir)
    for cand in (raw / FOLDER, raw):
        if (cand / "training").is_dir() or (cand / "evaluation").is_dir():
            return cand
    raise DataError(f"RHD not found in {raw} (expected {raw / FOLDER}/training and evaluation)",
                    "run `python -m data_scripts.rhd --data-dir DATA_DIR --download`, or unpack "
                    f"RHD_v1-1.zip into {raw}")


def load_annotations(root: Path, split: str) -> dict:
    """The ``anno_<set>.pickle`` dict of a split, or a DataError naming the file."""
    s = SETS[split]
    path = root / s / f"anno_{s}.pickle"
    anno = load_pickle(path, "RHD annotation file",
                       "delete it and unpack RHD_v1-1.zip again (re-download the archive if "
                       "unpacking fails)")
    if not isinstance(anno, dict):
        raise DataError(f"RHD annotation file {path} holds a {type(anno).__name__}, expected a dict",
                        "unpack RHD_v1-1.zip again")
    return anno


# --- TLL's integer box arithmetic, reproduced exactly -----------------------------------


def _bbox(kp: np.ndarray) -> tuple[float, float, float, float]:
    return float(kp[:, 0].min()), float(kp[:, 1].min()), float(kp[:, 0].max()), float(kp[:, 1].max())


def _tll_scale_box(box, w: int, h: int, scale: float):
    left, upper, right, lower = box
    cx, cy = (left + right) / 2, (upper + lower) / 2
    side = min(round(scale * max(right - left, lower - upper)), min(w, h))
    left = round(cx - side / 2)
    right = left + side - 1
    upper = round(cy - side / 2)
    lower = upper + side - 1
    if left < 0:
        left, right = 0, side - 1
    if right >= w:
        right, left = w - 1, w - side
    if upper < 0:
        upper, lower = 0, side - 1
    if lower >= h:
        lower, upper = h - 1, h - side
    return left, upper, right, lower


def _area(left, upper, right, lower) -> float:
    return max(right - left + 1, 0) * max(lower - upper + 1, 0)


def _intersection(a, b):
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def keep_hand(kp: np.ndarray, vis: np.ndarray, other_kp: np.ndarray,
              image_size=IMAGE_SIZE) -> tuple[bool, tuple[float, float, float]]:
    """TLL's filter for one hand (21 keypoints in Hand21 order, its visibility, the other
    hand's keypoints); returns (keep, crop box (x0, y0, side)).

    Keypoints with a non-finite coordinate (not in the official release; TLL would stop on
    them) take no part: the boxes are those of the finite keypoints and only finite visible
    joints count; a hand without a finite keypoint is dropped."""
    w, h = image_size
    finite = np.isfinite(kp).all(-1)
    if not finite.any():
        return False, (0.0, 0.0, float(min(w, h)))
    scaled = _tll_scale_box(_bbox(kp[finite]), w, h, 1.5)
    left, upper, right, lower = scaled
    size = max(right - left, lower - upper)
    other = other_kp[np.isfinite(other_kp).all(-1)]
    overlap = _area(*_intersection(scaled, _bbox(other))) / _area(*scaled) if len(other) else 0.0
    keep = (size > MIN_SIZE and float(np.sum(np.asarray(vis, bool) & finite)) > MIN_VISIBLE
            and overlap < MAX_OVERLAP)
    return bool(keep), (float(left), float(upper), float(right - left + 1))


def read_split(root: str | Path, split: str) -> list[RawSample]:
    """The filtered, Hand21-ordered hand samples of ``split`` (``train`` or ``test``)."""
    if split not in SETS:
        raise DataError(f"RHD has no split {split!r}", "use 'train' or 'test'")
    root = Path(root)
    s = SETS[split]
    anno = load_annotations(root, split)
    path = root / s / f"anno_{s}.pickle"
    out: list[RawSample] = []
    for sample_id, a in anno.items():
        try:
            uv_vis = np.asarray(a["uv_vis"], dtype=np.float64)
            xyz = np.asarray(a["xyz"], dtype=np.float64)
            K = np.asarray(a["K"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"RHD annotation file {path}: sample {sample_id!r} lacks uv_vis/xyz/K ({e})",
                            "unpack RHD_v1-1.zip again") from None
        if uv_vis.shape != (42, 3) or xyz.shape != (42, 3) or K.shape != (3, 3):
            raise DataError(f"RHD annotation file {path}: sample {sample_id!r} has uv_vis {uv_vis.shape}, "
                            f"xyz {xyz.shape}, "
                            f"K {K.shape}; expected (42, 3), (42, 3), (3, 3)",
                            "unpack RHD_v1-1.zip again")
        image = f"{s}/color/{int(sample_id):05d}.png"
        kp, vis = uv_vis[:, :2], uv_vis[:, 2] > 0.5
        for hand, idx, other in (("left", LEFT_INDEX, RIGHT_INDEX), ("right", RIGHT_INDEX, LEFT_INDEX)):
            keep, box = keep_hand(kp[idx], vis[idx], kp[other])
            if not keep:
                continue
            out.append(RawSample(
                name=f"{image}#{hand}", image=image, keypoints2d=kp[idx], visible=vis[idx],
                keypoints3d=xyz[idx], intrinsics=K, box=box, flip=(hand == "right"),
                image_size=IMAGE_SIZE, extra={"hand": hand, "id": int(sample_id)}, annotation=str(path)))
    return out


def read(raw_dir: str | Path) -> dict[str, list[RawSample]]:
    """Both splits: ``{"train": [...], "test": [...]}``."""
    root = find_root(raw_dir)
    return {split: read_split(root, split) for split in SETS}


def split_sources(root: Path, split: str) -> list[str]:
    """The annotation file of a split and how many images it lists (named when the split
    comes out empty)."""
    s = SETS.get(split)
    if s is None:
        return []
    path = Path(root) / s / f"anno_{s}.pickle"
    try:
        return [f"{path} ({len(load_annotations(Path(root), split))} images, none with a hand that passes the filter)"]
    except DataError:
        return [f"{path} (unreadable)"]


RELEASE_COUNTS = {"training": 41258, "evaluation": 2728}


def verify(raw_dir: str | Path) -> dict:
    """Images per set (and the release's counts), and every annotation file or colour image
    the annotations name that is missing. Raises DataError for an unreadable pickle."""
    root = find_root(raw_dir)
    report: dict = {"root": str(root), "missing": []}
    for split, s in SETS.items():
        if not (root / s / f"anno_{s}.pickle").is_file():
            report["missing"].append(str(root / s / f"anno_{s}.pickle"))
            continue
        anno = load_annotations(root, split)
        folder = root / s / "color"
        have = {p.name for p in folder.glob("*.png")} if folder.is_dir() else set()
        want = [f"{int(i):05d}.png" for i in anno]
        report[f"{s}/color"] = f"{len(have)} images (release: {RELEASE_COUNTS[s]})"
        report["missing"] += [str(folder / n) for n in want if n not in have]
    return report
