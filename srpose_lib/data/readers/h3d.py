"""H3D — Hand-3D-Studio (Zhao, Wang, Xia & Wang, ICASSP 2020), a real hand target.

The studio release is by request from the authors; the baselines (TLL, UniFrame) never read
it directly but TLL's ``H3D_crop.tar`` (1.5x crops, link now dead), whose
``annotation.json`` was made by a script that was never released. This reader takes either:

**(a) TLL's crop release**, unpacked into ``DATA_DIR/raw/h3d/``::

    H3D_crop/annotation.json
    H3D_crop/part1/ ... part5/        square 1.5x crops (names as in the JSON)

**(b) the studio images with an annotation.json you write** (the same format, keypoints in
the pixels of the full studio images)::

    H3D/annotation.json
    H3D/<name>                        the images the JSON names, any sub-folders

``annotation.json`` is a JSON list of samples::

    {"name": "part1/....jpg",            # image path relative to the annotation's folder
     "keypoint2d": [[u, v] x 21],         # pixels of that image, Hand21 order
     "keypoint3d": [[x, y, z] x 21],      # camera coordinates (m or mm, see `units`)
     "intrinsic_matrix": [[3 x 3]],       # of that image
     "without_object": 1,                 # 1: bare hand, 0: hand holding an object
     # optional, srpose only (for multi-view / temporal pairs):
     "subject": 0, "sequence": 0, "frame": 0, "view": 0}

What this reader reproduces (TLL ``hand_3d_studio.py``): the keypoints are already in Hand21
order and all count as visible; ``task`` ``'noobject'`` (default: ``without_object == 1``),
``'object'`` or ``'all'``; the split is ``random.seed(42); random.shuffle(samples)`` over the
task's samples in file order, test = the first ``min(int(0.2 N), 3200)``, train = the rest.
Both splits keep TLL's shuffled order, so UniFrame's extra splits (``hand_3d_studio_mt.py``:
``val`` = shuffled samples ``[k, 2k)``, ``train-val`` = ``[2k, N)``, with ``k`` the test size)
are the first ``k`` / the rest of the prepared ``train`` split.
Crops: layout (a) uses each (square) crop whole, as TLL resizes it whole; layout (b) takes
the 1.5x box of the 21 keypoints. No flip (TLL does not flip H3D).

Unverified: the studio release's own file layout and which hand it shows, the units of
``keypoint3d`` (``units='auto'`` takes millimetres when the median depth exceeds 10, which no
hand at arm's length has in metres) and the sample counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from . import RawSample, tll_split
from .files import load_json

LAYOUTS = {"crop": "H3D_crop", "full": "H3D"}
TASKS = ("noobject", "object", "all")
FIX = ("put TLL's H3D_crop release or your studio annotation.json where "
       "`python -m data_scripts.h3d --check` says (see data_scripts/README.md, H3D)")


def find_root(raw_dir: str | Path) -> tuple[Path, str]:
    """The folder holding ``annotation.json`` and its layout (``'crop'`` or ``'full'``)."""
    raw = Path(raw_dir)
    for layout, folder in LAYOUTS.items():
        if (raw / folder / "annotation.json").is_file():
            return raw / folder, layout
    if (raw / "annotation.json").is_file():  # raw_dir is the H3D_crop folder itself
        return raw, "crop" if raw.name == "H3D_crop" else "full"
    raise DataError(f"H3D not found in {raw}: neither {raw / 'H3D_crop' / 'annotation.json'} "
                    f"nor {raw / 'H3D' / 'annotation.json'} exists", FIX)


def load_annotations(root: Path) -> list[dict]:
    path = root / "annotation.json"
    samples = load_json(path, "H3D annotation file", f"copy {path.name} again from the release")
    if not isinstance(samples, list):
        raise DataError(f"H3D annotation file {path} holds a {type(samples).__name__}, expected a list "
                        "of samples", FIX)
    return samples


def _units_scale(samples: list[dict], units: str) -> float:
    if units == "m":
        return 1.0
    if units == "mm":
        return 1e-3
    if units != "auto":
        raise DataError(f"unknown H3D units {units!r}", "use 'auto', 'm' or 'mm'")
    z = [abs(float(s["keypoint3d"][0][2])) for s in samples[:200] if s.get("keypoint3d")]
    return 1e-3 if z and float(np.median(z)) > 10 else 1.0


def _parse(root: Path, sample: dict, i: int, scale: float, layout: str) -> RawSample:
    path = root / "annotation.json"
    try:
        name = str(sample["name"])
        kp = np.asarray(sample["keypoint2d"], dtype=np.float64)
        k3 = np.asarray(sample["keypoint3d"], dtype=np.float64) * scale
        K = np.asarray(sample["intrinsic_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: sample {i} lacks name/keypoint2d/keypoint3d/intrinsic_matrix ({e})",
                        FIX) from None
    if kp.shape != (21, 2) or k3.shape != (21, 3) or K.shape != (3, 3):
        raise DataError(f"{path}: sample {i} ({name}) has keypoint2d {kp.shape}, keypoint3d {k3.shape}, "
                        f"intrinsic_matrix {K.shape}; expected (21, 2), (21, 3), (3, 3)", FIX)
    ids = {k: int(sample.get(k, -1)) for k in ("subject", "sequence", "frame", "view")}
    if ids["view"] < 0 and "camera" in sample:
        ids["view"] = int(sample["camera"])
    return RawSample(name=name, image=name, keypoints2d=kp, visible=np.ones(21, bool), keypoints3d=k3,
                     intrinsics=K, box="full" if layout == "crop" else None,
                     extra={"without_object": int(sample.get("without_object", 1))}, annotation=str(path), **ids)


def read(raw_dir: str | Path, task: str = "noobject", units: str = "auto",
         seed: int = 42) -> dict[str, list[RawSample]]:
    """``{"train": [...], "test": [...]}`` with TLL's seed-42 split of the ``task``'s
    samples. Image names are relative to the folder holding ``annotation.json``; a
    ``box == "full"`` sample is cropped whole (layout (a))."""
    if task not in TASKS:
        raise DataError(f"unknown H3D task {task!r}", f"use one of {', '.join(TASKS)}")
    root, layout = find_root(raw_dir)
    samples = load_annotations(root)
    if task == "noobject":
        samples = [s for s in samples if int(s.get("without_object", 1)) == 1]
    elif task == "object":
        samples = [s for s in samples if int(s.get("without_object", 1)) == 0]
    scale = _units_scale(samples, units)
    train, test = tll_split(len(samples), seed)
    return {"train": [_parse(root, samples[i], i, scale, layout) for i in train],
            "test": [_parse(root, samples[i], i, scale, layout) for i in test]}


def verify(raw_dir: str | Path) -> dict:
    """The layout, sample count and the images the annotation names that are missing."""
    root, layout = find_root(raw_dir)
    samples = load_annotations(root)
    missing = [str(root / s["name"]) for s in samples if isinstance(s, dict) and "name" in s
               and not (root / s["name"]).is_file()]
    return {"root": str(root), "layout": layout, "samples": len(samples),
            "without_object": sum(int(s.get("without_object", 1)) == 1 for s in samples if isinstance(s, dict)),
            "missing": missing}
