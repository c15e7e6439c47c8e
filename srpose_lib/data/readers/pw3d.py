"""3DPW — 3D Poses in the Wild (von Marcard et al., ECCV 2018), a real body target.

Official layout (``imageFiles.zip`` and ``sequenceFiles.zip`` unpacked into
``DATA_DIR/raw/pw3d/``; a doubled ``imageFiles/imageFiles/`` or
``sequenceFiles/sequenceFiles/`` from unzipping into a folder of the same name is accepted)::

    imageFiles/<sequence>/image_%05d.jpg                 1920 x 1080 or 1080 x 1920
    sequenceFiles/{train,validation,test}/<sequence>.pkl   a Python-2 pickle (latin1)

A sequence file is a dict; the fields read here (3DPW's readme): ``sequence`` (name),
``jointPositions`` (a list, one per actor, of N x 72: the 24 SMPL joints in world metres),
``cam_poses`` (N x 4 x 4 world -> camera), ``campose_valid`` (a list, one per actor, of N
flags: whether that frame's camera pose was aligned to the image), ``cam_intrinsics``
(3 x 3); also ``poses``, ``trans``, ``betas``, ``poses2d`` (N x 3 x 18 OpenPose COCO-18
detections), ``img_frame_ids``, ... Row ``i`` belongs to ``image_%05d.jpg`` with index ``i``
(as the common 3DPW preprocessing, e.g. VIBE's, reads it).

The baselines have no 3DPW loader; srpose's protocol (the paper's is unverified):

* **Joints**: ``jointPositions`` projected into the image (``K [R | t]`` of ``cam_poses``) on
  the frames where ``campose_valid``, mapped to Body16 with the same SMPL joints as TLL's
  SURREAL map (collars as shoulders, spine3 as thorax) but **without its left/right cross**
  (:data:`.smpl.ANATOMICAL_TO_BODY16`): 3DPW's camera is real, so SMPL's left is the
  person's left in the image (SURREAL's reflecting camera is what makes TLL's cross right
  there; see :mod:`.smpl`). ``tll_cross=True`` applies TLL's map unchanged.
* **Visibility**: a joint is visible when it lies in front of the camera and projects inside
  the image (3DPW has no occlusion labels; ``poses2d`` are detections, not ground truth).
  Frames where fewer than ``min_visible`` (default 6, the threshold 3DPW itself uses for
  ``poses2d``) joints are visible are skipped.
* **Crop**: the 1.5x box of the visible keypoints, clamped to the image.
* **Splits**: the official folders: ``train``, ``val`` (= ``validation``), ``test``.
* **Ids**: ``sequence`` = the sequence's index in its split (sorted by name), ``subject`` =
  the actor's index in the file (0 or 1), ``frame`` = the image index, ``view`` = -1:
  consecutive frames of one actor are reconstruction pairs. Names are
  ``imageFiles/<sequence>/image_%05d.jpg#<actor>`` (an image may show two actors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ...utils import progress
from . import RawSample, check_every, project, smpl
from .files import as_array, image_size_of, load_pickle

SPLITS = {"train": "train", "val": "validation", "test": "test"}
MIN_VISIBLE = 6
FIX = ("unpack sequenceFiles.zip / imageFiles.zip again (see "
       "`python -m data_scripts.pw3d --check`)")


def _folder(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name/name`` when the zip was unpacked into its own name."""
    nested = root / name / name
    return nested if nested.is_dir() else root / name


def find_root(raw_dir: str | Path) -> Path:
    """The folder holding ``sequenceFiles/`` and ``imageFiles/``."""
    raw = Path(raw_dir)
    for cand in (raw, raw / "3DPW", raw / "3dpw"):
        if (cand / "sequenceFiles").is_dir():
            return cand
    raise DataError(f"3DPW not found in {raw} (expected {raw / 'sequenceFiles'}/train/<sequence>.pkl and "
                    f"{raw / 'imageFiles'}/<sequence>/image_00000.jpg)",
                    "see `python -m data_scripts.pw3d --check` (data_scripts/README.md, 3DPW) for what "
                    "to download and where to put it")


def list_sequences(root: Path, split: str) -> list[Path]:
    """The sequence files of a split, sorted by name."""
    return sorted((_folder(root, "sequenceFiles") / SPLITS[split]).glob("*.pkl"))


def image_path(root: Path, sequence: str, i: int) -> Path:
    return _folder(root, "imageFiles") / sequence / f"image_{i:05d}.jpg"


def load_sequence(path: Path) -> dict:
    """The fields of one sequence file that the reader uses, shapes checked:
    ``sequence``, ``joints`` (A, N, 24, 3), ``cam_poses`` (N, 4, 4), ``valid`` (A, N) bool,
    ``K`` (3, 3)."""
    seq = load_pickle(path, "3DPW sequence file", FIX)
    if not isinstance(seq, dict):
        raise DataError(f"3DPW sequence file {path} holds a {type(seq).__name__}, expected a dict", FIX)
    missing = [k for k in ("jointPositions", "cam_poses", "campose_valid", "cam_intrinsics") if k not in seq]
    if missing:
        raise DataError(f"3DPW sequence file {path} lacks {', '.join(missing)}", FIX)
    actors = seq["jointPositions"]  # one array per actor
    actors = list(actors) if isinstance(actors, (list, tuple)) else [actors]
    poses = as_array(seq["cam_poses"], (None, 4, 4), f"{path}: cam_poses", FIX)
    n = len(poses)
    joints = np.stack([as_array(a, (n, 72), f"{path}: jointPositions[{i}]", FIX).reshape(n, 24, 3)
                       for i, a in enumerate(actors)]) if actors else np.zeros((0, n, 24, 3))
    valid = seq["campose_valid"]  # one array per actor (or, in a file with one, the array itself)
    per_actor = isinstance(valid, (list, tuple)) or getattr(valid, "ndim", 0) == 2
    valid = list(valid) if per_actor else [valid] * len(actors)
    if len(valid) != len(actors):
        raise DataError(f"{path}: campose_valid has {len(valid)} entries for {len(actors)} actors", FIX)
    valid = np.stack([as_array(v, (n,), f"{path}: campose_valid[{i}]", FIX) > 0.5
                      for i, v in enumerate(valid)]) if actors else np.zeros((0, n), bool)
    K = as_array(seq["cam_intrinsics"], (3, 3), f"{path}: cam_intrinsics", FIX)
    name = seq.get("sequence", path.stem)
    return {"sequence": name.decode("latin1") if isinstance(name, bytes) else str(name),
            "joints": joints, "cam_poses": poses, "valid": valid, "K": K}


def read_sequence(root: Path, path: Path, index: int, every: int = 1, min_visible: int = MIN_VISIBLE,
                  tll_cross: bool = False) -> list[RawSample]:
    """The valid frames of every actor of one sequence file, frame-major."""
    seq = load_sequence(path)
    name, K = seq["sequence"], seq["K"]
    if not len(seq["joints"]):
        return []
    W, H = image_size_of(image_path(root, name, 0), FIX)
    homo = np.concatenate([seq["joints"], np.ones(seq["joints"].shape[:-1] + (1,))], -1)  # (A, N, 24, 4)
    cam = np.einsum("nij,ankj->anki", seq["cam_poses"][:, :3], homo)  # (A, N, 24, 3) metres
    cam = smpl.to_body16(cam, crossed=tll_cross)
    kp = project(cam, K)
    vis = (np.isfinite(kp).all(-1) & (cam[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 0] <= W - 1)
           & (kp[..., 1] >= 0) & (kp[..., 1] <= H - 1))
    out: list[RawSample] = []
    for f in range(0, cam.shape[1], check_every(every, "3DPW")):
        for a in range(cam.shape[0]):
            if not seq["valid"][a, f] or int(vis[a, f].sum()) < min_visible:
                continue
            image = image_path(root, name, f).relative_to(root).as_posix()
            out.append(RawSample(name=f"{image}#{a}", image=image, keypoints2d=kp[a, f], visible=vis[a, f],
                                 keypoints3d=cam[a, f], intrinsics=K, subject=a, sequence=index, frame=f,
                                 image_size=(W, H), extra={"sequence": name, "actor": a}))
    return out


def read(raw_dir: str | Path, every: int = 1, min_visible: int = MIN_VISIBLE, tll_cross: bool = False,
         show_progress: bool = False) -> dict[str, list[RawSample]]:
    """``{"train": [...], "val": [...], "test": [...]}`` from the official folders."""
    root = find_root(raw_dir)
    out = {}
    for split in SPLITS:
        samples: list[RawSample] = []
        for index, path in enumerate(progress(list_sequences(root, split), desc=f"pw3d/{split} sequences",
                                              unit="seq", disable=not show_progress)):
            samples += read_sequence(root, path, index, every, min_visible, tll_cross)
        out[split] = samples
    return out


def verify(raw_dir: str | Path) -> dict:
    """Sequence files per split, and for each sequence the images its frames need that are
    missing (raises DataError for an unreadable sequence file)."""
    root = find_root(raw_dir)
    report: dict = {"root": str(root), "missing": []}
    for split, folder in SPLITS.items():
        paths = list_sequences(root, split)
        report[f"sequenceFiles/{folder}"] = f"{len(paths)} sequences"
        if not paths:
            report["missing"].append(f"{_folder(root, 'sequenceFiles') / folder}/<sequence>.pkl (none)")
        for path in paths:
            seq = load_sequence(path)
            frames = len(seq["cam_poses"])
            report["missing"] += [str(p) for p in (image_path(root, seq["sequence"], i) for i in range(frames))
                                  if not p.is_file()]
    return report
