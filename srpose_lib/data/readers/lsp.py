"""LSP — Leeds Sports Pose (Johnson & Everingham, BMVC 2010), a real body target.

Official layout (``lsp_dataset.zip`` unpacked into ``DATA_DIR/raw/lsp/``)::

    joints.mat          'joints': 3 x 14 x 2000 (x, y, flag) image pixels
    images/im0001.jpg ... im2000.jpg      (small, non-square images around one person)
    visualized/ ...     (not needed)

LSP-14: 0 R-ankle, 1 R-knee, 2 R-hip, 3 L-hip, 4 L-knee, 5 L-ankle, 6 R-wrist, 7 R-elbow,
8 R-shoulder, 9 L-shoulder, 10 L-elbow, 11 L-wrist, 12 neck, 13 head top. Left and right
are taken as labelled (the person's own, as TLL takes them).

What this reader reproduces (TLL ``lsp.py``, which UniFrame copies):

* **Remap** ``(0, 1, 2, 3, 4, 5, 13, 13, 12, 13, 6, 7, 8, 9, 10, 11)``: LSP has no pelvis or
  thorax, so those two slots hold the head top and are **forced invisible**; upper neck =
  neck, head top = head top.
* **Visibility** = ``1 - flag`` (``visibility='tll'``, the default). The flag's meaning is
  ambiguous: TLL reads it as "occluded", LSP's README calls the third row "visibility";
  ``visibility='flag'`` takes the README's reading (visible = flag). Unverified which is right.
* **Splits**: all images are both ``train`` and ``test`` (TLL uses the whole set for either).
* **Crop**: TLL does not crop LSP: its fixed ``ResizePad(256)`` scales the longer side to
  256 and zero-pads the shorter one, centred. ``crop='full'`` (the default) is the same: the
  whole image centred in a zero-padded square (the ``box`` goes past the image; no keypoint
  is lost). ``crop='box'`` takes the 1.5x box of the visible keypoints instead, like the
  other datasets (an image without a visible keypoint is then kept whole).

Keypoints are used as stored (TLL does the same; whether LSP's MATLAB-made annotations
count pixels from 0 or 1 is unverified, at most a pixel). No 3D, no intrinsics; every image
is its own sample: ``subject``, ``sequence``, ``frame``, ``view`` = -1 (single images, as the
hand readers mark them: reconstruction pairs for LSP are warps of the same image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from . import RawSample
from .files import load_mat

TO_BODY16 = (0, 1, 2, 3, 4, 5, 13, 13, 12, 13, 6, 7, 8, 9, 10, 11)
FAKE = (6, 7)  # pelvis, thorax
RELEASE_IMAGES = 2000
CROPS = ("full", "box")
VISIBILITY = ("tll", "flag")
FIX = "unpack lsp_dataset.zip again (or run `python -m data_scripts.lsp --download`)"


def find_root(raw_dir: str | Path) -> Path:
    """The folder holding ``joints.mat`` and ``images/``."""
    raw = Path(raw_dir)
    for cand in (raw, raw / "lsp", raw / "lsp_dataset"):
        if (cand / "joints.mat").is_file() or (cand / "images").is_dir():
            return cand
    raise DataError(f"LSP not found in {raw} (expected {raw / 'joints.mat'} and {raw / 'images'})",
                    "run `python -m data_scripts.lsp --data-dir DATA_DIR --download`, or unpack "
                    f"lsp_dataset.zip into {raw}")


def load_joints(root: Path) -> np.ndarray:
    """``joints.mat`` as (N, 14, 3): x, y, flag per image and joint."""
    path = root / "joints.mat"
    joints = np.asarray(load_mat(path, "LSP annotation file", FIX, ("joints",))["joints"], dtype=np.float64)
    if joints.ndim == 3 and joints.shape[:2] == (14, 3):
        raise DataError(f"{path} holds 14 x 3 x {joints.shape[2]} joints: that is LSP extended's "
                        "layout (lspet_dataset.zip), not LSP's 3 x 14 x N",
                        "put the original lsp_dataset.zip's joints.mat there")
    if joints.ndim != 3 or joints.shape[:2] != (3, 14):
        raise DataError(f"LSP annotation file {path}: 'joints' has shape {joints.shape}, expected "
                        "(3, 14, N)", FIX)
    return joints.transpose(2, 1, 0)


def visible_joints(flags: np.ndarray, rule: str = "tll") -> np.ndarray:
    """Body16 visibility (..., 16) from LSP flags already remapped to Body16 (..., 16)."""
    if rule not in VISIBILITY:
        raise DataError(f"unknown LSP visibility rule {rule!r}", f"use one of {', '.join(VISIBILITY)}")
    vis = (1.0 - flags if rule == "tll" else flags) > 0.5
    vis[..., list(FAKE)] = False
    return vis


def image_name(i: int) -> str:
    return f"images/im{i + 1:04d}.jpg"


def read(raw_dir: str | Path, crop: str = "full", visibility: str = "tll") -> dict[str, list[RawSample]]:
    """``{"train": all images, "test": the same images}`` (TLL's protocol)."""
    if crop not in CROPS:
        raise DataError(f"unknown LSP crop {crop!r}", f"use one of {', '.join(CROPS)}")
    root = find_root(raw_dir)
    joints = load_joints(root)[:, list(TO_BODY16)]
    vis = visible_joints(joints[..., 2], visibility)
    samples = []
    for i in range(len(joints)):
        box = "full" if crop == "full" or not vis[i].any() else None
        samples.append(RawSample(name=image_name(i), image=image_name(i), keypoints2d=joints[i, :, :2],
                                 visible=vis[i], box=box, extra={"id": i + 1},
                                 annotation=str(root / "joints.mat")))
    return {"train": samples, "test": list(samples)}


def verify(raw_dir: str | Path) -> dict:
    """The annotation file, the number of images and every annotated image that is missing."""
    root = find_root(raw_dir)
    report: dict = {"root": str(root), "missing": []}
    if not (root / "joints.mat").is_file():
        report["missing"].append(str(root / "joints.mat"))
        return report
    n = len(load_joints(root))
    report["images"] = f"{n} annotated (release: {RELEASE_IMAGES})"
    report["missing"] += [str(root / image_name(i)) for i in range(n) if not (root / image_name(i)).is_file()]
    return report
