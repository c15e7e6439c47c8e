"""SMPL's 24 joints (SURREAL, 3DPW) and their two maps to Body16.

SMPL-24: 0 pelvis, 1 L-hip, 2 R-hip, 3 spine1, 4 L-knee, 5 R-knee, 6 spine2, 7 L-ankle,
8 R-ankle, 9 spine3, 10 L-foot, 11 R-foot, 12 neck, 13 L-collar, 14 R-collar, 15 head,
16 L-shoulder, 17 R-shoulder, 18 L-elbow, 19 R-elbow, 20 L-wrist, 21 R-wrist, 22 L-hand,
23 R-hand. "L" is the body's own left.

**TLL's map** (``tllib/.../surreal.py``, copied by UniFrame), :data:`TLL_TO_BODY16` =
``(7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 13, 14, 19, 21)``: Body16's shoulders are the
collars (13/14, not 16/17), thorax = spine3, upper neck = neck, head top = head, and left
and right are **crossed**: SMPL's L-ankle goes to ``r_ankle``, its L-wrist to ``r_wrist``.

Why the cross is right for SURREAL: SURREAL's camera is a reflection. Its world-to-camera
rotation (SURREAL ``datageneration/misc/3Dto2D/getExtrinsicBlender.m``) is
``[[0, 0, -1], [0, 1, 0], [-1, 0, 0]]``, determinant -1, and ``K [R | t]`` reproduces the
released ``joints2D`` exactly, so the rendered person is the mirror image of the SMPL body:
the body's left side looks like a right side in the image (checked on the repository's
sample ``01_01_c0001_info.mat``: :func:`chirality` is positive in world coordinates and
negative in camera coordinates for all 100 frames; SURREAL issue #10 reports the same by
eye). Body16 names the limbs as they look, so the cross gives SURREAL labels that mean what
Human3.6M's and LSP's mean.

**Anatomical map**, :data:`ANATOMICAL_TO_BODY16`: the same joints without the cross (SMPL
L-* to ``l_*``), for a real, non-mirroring camera such as 3DPW's.
"""

from __future__ import annotations

import numpy as np

NAMES = ("pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle",
         "spine3", "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder",
         "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand")
NUM_JOINTS = 24

# SMPL joint -> its mirror twin (L <-> R)
FLIP = tuple(NAMES.index(n.replace("l_", "#").replace("r_", "l_").replace("#", "r_")) for n in NAMES)

TLL_TO_BODY16 = (7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 13, 14, 19, 21)
ANATOMICAL_TO_BODY16 = tuple(FLIP[j] for j in TLL_TO_BODY16)


def to_body16(joints: np.ndarray, crossed: bool) -> np.ndarray:
    """SMPL-24 joints (..., 24, D) to Body16 (..., 16, D): TLL's crossed map for a
    mirroring camera (SURREAL), the anatomical one otherwise."""
    return np.asarray(joints)[..., list(TLL_TO_BODY16 if crossed else ANATOMICAL_TO_BODY16), :]


def chirality(joints: np.ndarray) -> np.ndarray:
    """Handedness of SMPL-24 bodies (..., 24, 3): ``right . (forward x up)`` with right =
    R-hip - L-hip, up = neck - pelvis, forward = mean foot - ankle direction. Positive for
    a real body in a right-handed frame, negative for its mirror image."""
    j = np.asarray(joints, dtype=np.float64)
    right = j[..., 2, :] - j[..., 1, :]
    up = j[..., 12, :] - j[..., 0, :]
    forward = (j[..., 10, :] - j[..., 7, :] + j[..., 11, :] - j[..., 8, :]) / 2
    return np.einsum("...i,...i->...", right, np.cross(forward, up))
