"""FreiHAND (Zimmermann et al., ICCV 2019), real hands.

Official layout (``FreiHAND_pub_v2.zip`` unpacked into ``DATA_DIR/raw/freihand/``)::

    training_K.json     list of 32,560 intrinsics (3 x 3)
    training_xyz.json   list of 32,560 x 21 x 3 camera coordinates (metres), Hand21 order
    training_mano.json  (not needed here)
    training/rgb/%08d.jpg   130,240 images, 224 x 224: id + 32,560 * version
    evaluation/...          (unused by the baselines)

Versions (FreiHAND's ``sample_version``; the image of id ``i`` in version ``v`` is
``i + 32560 * ["gs", "hom", "sample", "auto"].index(v)``): green screen, homogenised,
auto-coloured with sample points, auto-coloured.

What this reader reproduces (TLL ``freihand.py``): 2D keypoints are the projection of
``xyz`` with ``K``; all keypoints visible; the crop is the 1.5x box of the 21 keypoints
(clamped to the image); every image is **flipped** (all FreiHAND hands are right hands; TLL
flips the samples with ``left is False``, i.e. all of them), so they look like RHD's left
hands. ``task='all'`` (default) takes the versions in TLL's order gs, auto, sample, hom
(32,560 each); the split is ``random.seed(42); random.shuffle``, test = the first
``min(int(0.2 N), 3200)`` = 3,200, train = the other 127,040. One version alone (``gs``, ...)
gives 29,360 / 3,200. The official 3,960-image evaluation set is not used.

The number of ids is read from the JSON files (32,560 in the release), so the image id
offset of a version is ``len(training_K.json)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from . import RawSample, project, tll_split
from .files import load_json

VERSIONS = ("gs", "hom", "sample", "auto")  # FreiHAND's order: image id offsets
TLL_ALL_ORDER = ("gs", "auto", "sample", "hom")  # TLL's concatenation order for task 'all'
TASKS = ("all",) + VERSIONS
IMAGE_SIZE = (224, 224)
FIX = "unpack FreiHAND_pub_v2.zip again (or re-run `python -m data_scripts.freihand --download`)"


def find_root(raw_dir: str | Path) -> Path:
    raw = Path(raw_dir)
    for cand in (raw, raw / "FreiHAND_pub_v2"):
        if (cand / "training_xyz.json").is_file() or (cand / "training").is_dir():
            return cand
    raise DataError(f"FreiHAND not found in {raw} (expected {raw / 'training_xyz.json'} and "
                    f"{raw / 'training' / 'rgb'})",
                    "run `python -m data_scripts.freihand --data-dir DATA_DIR --download`, or unpack "
                    f"FreiHAND_pub_v2.zip into {raw}")


def _load_json(path: Path):
    return load_json(path, "FreiHAND annotation file", FIX)


def load_annotations(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """``K`` (n, 3, 3) and ``xyz`` (n, 21, 3) of the training set."""
    K_list = _load_json(root / "training_K.json")
    xyz_list = _load_json(root / "training_xyz.json")
    try:
        K = np.asarray(K_list, dtype=np.float64)
        xyz = np.asarray(xyz_list, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"FreiHAND annotations in {root} are malformed ({e})", FIX) from None
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise DataError(f"{root / 'training_K.json'} holds shape {K.shape}, expected (n, 3, 3)", FIX)
    if xyz.ndim != 3 or xyz.shape[1:] != (21, 3):
        raise DataError(f"{root / 'training_xyz.json'} holds shape {xyz.shape}, expected (n, 21, 3)", FIX)
    if len(K) != len(xyz):
        raise DataError(f"FreiHAND size mismatch in {root}: {len(K)} intrinsics, {len(xyz)} poses", FIX)
    return K, xyz


def read(raw_dir: str | Path, task: str = "all", seed: int = 42) -> dict[str, list[RawSample]]:
    """``{"train": [...], "test": [...]}`` with TLL's seed-42 split."""
    if task not in TASKS:
        raise DataError(f"unknown FreiHAND task {task!r}", f"use one of {', '.join(TASKS)}")
    root = find_root(raw_dir)
    K, xyz = load_annotations(root)
    n = len(K)
    kp = project(xyz, K)
    versions = TLL_ALL_ORDER if task == "all" else (task,)
    samples: list[RawSample] = []
    for v in versions:
        offset = n * VERSIONS.index(v)
        for i in range(n):
            image = f"training/rgb/{i + offset:08d}.jpg"
            samples.append(RawSample(name=image, image=image, keypoints2d=kp[i], visible=np.ones(21, bool),
                                     keypoints3d=xyz[i], intrinsics=K[i], flip=True, image_size=IMAGE_SIZE,
                                     extra={"version": v, "id": i},
                                     annotation=str(root / "training_xyz.json")))
    train, test = tll_split(len(samples), seed)
    return {"train": [samples[i] for i in train], "test": [samples[i] for i in test]}


def verify(raw_dir: str | Path, task: str = "all") -> dict:
    """Annotation files, the number of ids, and every image of ``task`` that is missing."""
    root = find_root(raw_dir)
    report: dict = {"root": str(root), "missing": []}
    for name in ("training_K.json", "training_xyz.json"):
        if not (root / name).is_file():
            report["missing"].append(str(root / name))
    if report["missing"]:
        return report
    n = len(_load_json(root / "training_K.json"))
    folder = root / "training" / "rgb"
    have = {p.name for p in folder.glob("*.jpg")} if folder.is_dir() else set()
    versions = TLL_ALL_ORDER if task == "all" else (task,)
    want = [f"{i + n * VERSIONS.index(v):08d}.jpg" for v in versions for i in range(n)]
    report["ids"] = f"{n} (release: 32560)"
    report["training/rgb"] = f"{len(have)} images (release: 130240)"
    report["missing"] += [str(folder / w) for w in want if w not in have]
    return report
