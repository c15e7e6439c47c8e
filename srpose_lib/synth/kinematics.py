"""3D kinematic skeletons of the built-in benchmark: a hand (Hand21) and a body (Body16).

Each model has a vector of joint angles with limits (degrees), per-subject proportions,
batched forward kinematics to 3D joint positions, and the list of render primitives
(capsules between points) that make up its surface.

Frames. Model-local coordinates are right-handed with +y up. The hand is a *left* hand
(RHD flips right hands so that all look left-handed) with the palm normal at -z and the
thumb at +x; the body faces +z with its left side at +x. Metres for the body, centimetres
for the hand (only ratios matter to the renderer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..skeletons import BODY16, HAND21, Skeleton

# ----------------------------------------------------------------------------- rotations


def rot_x(a: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) about x by angle ``a`` (radians)."""
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def rot_y(a: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def rot_z(a: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def deg(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32) * (math.pi / 180.0)


# Model-local (+y up, facing -z for the palm / +z for the body's front) to camera
# coordinates (x right, y down, z forward): a 180 degree turn about x.
LOCAL_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class Primitives:
    """Render primitives: capsule ``p`` runs from point ``a[p]`` to ``b[p]`` of the
    points tensor with radii ``radius[p] = (r_a, r_b)`` (fractions of the model's unit).
    ``material[p]`` indexes the model's material names (skin, shirt, ...)."""

    a: tuple[int, ...]
    b: tuple[int, ...]
    radius: tuple[tuple[float, float], ...]
    material: tuple[int, ...]
    material_names: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.a)


class KinematicModel:
    """Interface shared by :class:`HandModel` and :class:`BodyModel`."""

    skeleton: Skeleton
    param_names: tuple[str, ...]
    lower: torch.Tensor  # (D,) degrees
    upper: torch.Tensor  # (D,) degrees
    primitives: Primitives
    unit: float  # a typical limb radius, used for depth tolerances
    num_shape: int  # length of the per-subject shape vector

    @property
    def num_params(self) -> int:
        return len(self.param_names)

    def clamp(self, pose: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(pose, self.upper), self.lower)

    def within_limits(self, pose: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
        return ((pose >= self.lower - tol) & (pose <= self.upper + tol)).all(-1)

    def sample_shape(self, n: int, gen: torch.Generator, spread: float) -> torch.Tensor:
        """Per-subject proportion factors around 1 (``spread`` = max relative change)."""
        u = torch.rand(n, self.num_shape, generator=gen) * 2 - 1
        return 1.0 + spread * u

    def forward(self, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """All points (B, N, 3): the skeleton's joints first, then helper points."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- hand

# Palm layout of a left hand (cm): MCP positions in the palm plane and finger splay.
_MCP = {"index": (2.5, 8.6), "middle": (0.6, 9.0), "ring": (-1.3, 8.5), "little": (-3.0, 7.6)}
_SPLAY = {"index": -8.0, "middle": 0.0, "ring": 7.0, "little": 15.0}
_BONES = {  # proximal, middle, distal phalanx (cm)
    "thumb": (3.9, 3.2, 2.7),
    "index": (4.4, 2.6, 2.1),
    "middle": (4.8, 2.9, 2.2),
    "ring": (4.5, 2.8, 2.1),
    "little": (3.6, 2.1, 1.9),
}
_THUMB_BASE = (2.3, 2.2)


class HandModel(KinematicModel):
    """A left hand with 4 angles per finger (MCP flexion, MCP abduction, PIP and DIP
    flexion; for the thumb CMC flexion/abduction, MCP and IP flexion): 20 angles.

    Shape vector: global scale, palm width, then one length factor per finger (7).
    Helper points after the 21 joints: forearm end (21), palm edge points (22, 23).
    """

    skeleton = HAND21
    fingers = ("thumb", "index", "middle", "ring", "little")
    unit = 0.8
    num_shape = 7

    def __init__(self):
        names, lo, hi = [], [], []
        for f in self.fingers:
            if f == "thumb":
                limits = [(-15, 55), (-25, 35), (-5, 65), (-10, 80)]
            else:
                limits = [(-15, 90), (-15, 15), (0, 105), (0, 80)]
            for part, (a, b) in zip(("flex1", "abd", "flex2", "flex3"), limits):
                names.append(f"{f}_{part}")
                lo.append(a)
                hi.append(b)
        self.param_names = tuple(names)
        self.lower = torch.tensor(lo, dtype=torch.float32)
        self.upper = torch.tensor(hi, dtype=torch.float32)
        self.primitives = self._primitives()

    def _primitives(self) -> Primitives:
        mats = ("skin", "palm", "sleeve")
        a, b, r, m = [], [], [], []

        def cap(i, j, ri, rj, mat):
            a.append(i), b.append(j), r.append((ri, rj)), m.append(mats.index(mat))

        # forearm stub and palm: a fan of capsules from the wrist, plus the MCP line
        cap(21, 0, 2.3, 2.1, "sleeve")
        cap(0, 5, 1.5, 1.05, "palm")
        cap(0, 9, 1.7, 1.05, "palm")
        cap(0, 13, 1.6, 1.0, "palm")
        cap(0, 17, 1.45, 0.95, "palm")
        cap(22, 23, 1.5, 1.3, "palm")
        cap(5, 17, 1.0, 0.9, "palm")
        cap(0, 1, 1.5, 1.15, "palm")
        cap(1, 5, 1.0, 1.0, "palm")
        for f in range(5):
            base = 1 + 4 * f
            radii = (1.1, 0.95, 0.85, 0.72) if f == 0 else (0.92, 0.82, 0.72, 0.62)
            if f == 4:
                radii = tuple(0.85 * x for x in radii)
            for k in range(3):
                cap(base + k, base + k + 1, radii[k], radii[k + 1], "skin")
        return Primitives(tuple(a), tuple(b), tuple(r), tuple(m), mats)

    def forward(self, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        B = pose.shape[0]
        ang = pose.reshape(B, 5, 4) * (math.pi / 180.0)
        scale, palm_w, finger_len = shape[:, 0], shape[:, 1], shape[:, 2:7]
        pts = pose.new_zeros(B, 24, 3)
        for f_idx, f in enumerate(self.fingers):
            base = 1 + 4 * f_idx
            if f == "thumb":
                origin = pose.new_tensor([_THUMB_BASE[0], _THUMB_BASE[1], 0.0])
                # the thumb leaves the palm plane and points up-outward
                frame = rot_z(deg(-48.0)) @ rot_y(deg(-35.0)) @ rot_x(deg(-15.0))
                lengths = _BONES["thumb"]
            else:
                origin = pose.new_tensor([_MCP[f][0], _MCP[f][1], 0.0])
                frame = rot_z(deg(_SPLAY[f]))
                lengths = _BONES[f]
            origin = origin.expand(B, 3).clone()
            origin[:, 0] = origin[:, 0] * palm_w
            frame = frame.expand(B, 3, 3)
            flex1, abd, flex2, flex3 = ang[:, f_idx].unbind(-1)
            # flexion turns +y toward the palm normal (-z): a rotation about -x
            r1 = frame @ rot_z(abd) @ rot_x(-flex1)
            r2 = r1 @ rot_x(-flex2)
            r3 = r2 @ rot_x(-flex3)
            p = origin
            pts[:, base] = p  # the finger's first joint (MCP; CMC for the thumb)
            up = pose.new_tensor([0.0, 1.0, 0.0])
            for k, r in enumerate((r1, r2, r3)):
                p = p + (r @ up) * (lengths[k] * finger_len[:, f_idx])[:, None]
                pts[:, base + k + 1] = p
        pts[:, 21] = pose.new_tensor([0.3, -6.0, 0.4])
        pts[:, 22] = pose.new_tensor([1.6, 4.2, 0.0])
        pts[:, 23] = pose.new_tensor([-2.2, 4.0, 0.0])
        pts[:, 22:24, 0] *= palm_w[:, None]
        return pts * scale[:, None, None]


# ----------------------------------------------------------------------------- body

_BODY_DIMS = {  # metres
    "hip_half": 0.095, "hip_drop": 0.06, "spine": 0.50, "neck": 0.13, "head": 0.22,
    "shoulder_half": 0.175, "shoulder_drop": 0.03, "upper_arm": 0.29, "forearm": 0.26,
    "thigh": 0.43, "shin": 0.42, "foot": 0.15, "hand": 0.08,
}


class BodyModel(KinematicModel):
    """A human body with 21 angles: spine flexion, side bend and twist (3), neck flexion
    and side bend (2), per arm shoulder flexion, abduction, rotation and elbow flexion
    (4 × 2), per leg hip flexion, abduction, rotation and knee flexion (4 × 2).

    Shape vector: height scale, shoulder width, hip width, arm length, leg length,
    torso length, head size (7). Helper points after the 16 joints: toes (16, 17),
    hand ends (18, 19), head centre (20).
    """

    skeleton = BODY16
    unit = 0.06
    num_shape = 7

    def __init__(self):
        spec = [
            ("spine_flex", -15, 45), ("spine_side", -20, 20), ("spine_twist", -35, 35),
            ("neck_flex", -30, 40), ("neck_side", -25, 25),
        ]
        for side in ("l", "r"):
            spec += [
                (f"{side}_shoulder_flex", -50, 170), (f"{side}_shoulder_abd", -10, 150),
                (f"{side}_shoulder_rot", -70, 70), (f"{side}_elbow", 0, 145),
            ]
        for side in ("l", "r"):
            spec += [
                (f"{side}_hip_flex", -25, 115), (f"{side}_hip_abd", -15, 45),
                (f"{side}_hip_rot", -35, 35), (f"{side}_knee", 0, 140),
            ]
        self.param_names = tuple(s[0] for s in spec)
        self.lower = torch.tensor([s[1] for s in spec], dtype=torch.float32)
        self.upper = torch.tensor([s[2] for s in spec], dtype=torch.float32)
        self.primitives = self._primitives()

    def _primitives(self) -> Primitives:
        mats = ("skin", "shirt", "pants", "shoes", "hair")
        a, b, r, m = [], [], [], []
        S = BODY16.index

        def cap(i, j, ri, rj, mat):
            a.append(i), b.append(j), r.append((ri, rj)), m.append(mats.index(mat))

        cap(S("pelvis"), S("thorax"), 0.135, 0.15, "shirt")
        cap(S("l_hip"), S("l_shoulder"), 0.085, 0.075, "shirt")
        cap(S("r_hip"), S("r_shoulder"), 0.085, 0.075, "shirt")
        cap(S("l_shoulder"), S("r_shoulder"), 0.065, 0.065, "shirt")
        cap(S("l_hip"), S("r_hip"), 0.10, 0.10, "pants")
        cap(S("thorax"), S("upper_neck"), 0.055, 0.05, "skin")
        cap(20, 20, 0.105, 0.105, "skin")  # head sphere
        for side in ("l", "r"):
            cap(S(f"{side}_shoulder"), S(f"{side}_elbow"), 0.055, 0.045, "shirt")
            cap(S(f"{side}_elbow"), S(f"{side}_wrist"), 0.042, 0.034, "skin")
            cap(S(f"{side}_hip"), S(f"{side}_knee"), 0.08, 0.06, "pants")
            cap(S(f"{side}_knee"), S(f"{side}_ankle"), 0.058, 0.045, "pants")
        cap(S("l_wrist"), 18, 0.036, 0.03, "skin")
        cap(S("r_wrist"), 19, 0.036, 0.03, "skin")
        cap(S("l_ankle"), 16, 0.045, 0.04, "shoes")
        cap(S("r_ankle"), 17, 0.045, 0.04, "shoes")
        return Primitives(tuple(a), tuple(b), tuple(r), tuple(m), mats)

    def forward(self, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        B = pose.shape[0]
        P = {n: pose[:, i] * (math.pi / 180.0) for i, n in enumerate(self.param_names)}
        height, sh_w, hip_w, arm_l, leg_l, torso_l, head_s = shape.unbind(-1)
        d = _BODY_DIMS
        S = BODY16.index
        pts = pose.new_zeros(B, 21, 3)
        up = pose.new_tensor([0.0, 1.0, 0.0])
        down = -up
        fwd = pose.new_tensor([0.0, 0.0, 1.0])

        def vec(x, y, z):
            return pose.new_tensor([x, y, z]).expand(B, 3)

        # spine: forward bend about x (front is +z), side bend about z, twist about y
        r_spine = rot_y(P["spine_twist"]) @ rot_z(P["spine_side"]) @ rot_x(P["spine_flex"])
        thorax = (r_spine @ up) * (d["spine"] * torso_l)[:, None]
        pts[:, S("thorax")] = thorax
        r_neck = r_spine @ rot_z(P["neck_side"]) @ rot_x(P["neck_flex"])
        neck = thorax + (r_neck @ up) * (d["neck"] * torso_l)[:, None]
        pts[:, S("upper_neck")] = neck
        pts[:, S("head_top")] = neck + (r_neck @ up) * (d["head"] * head_s)[:, None]
        pts[:, 20] = neck + (r_neck @ (up + 0.25 * fwd)) * (0.5 * d["head"] * head_s)[:, None]

        for side, sign in (("l", 1.0), ("r", -1.0)):
            # shoulders hang off the thorax, turning with the spine
            offset = vec(sign * d["shoulder_half"], -d["shoulder_drop"], 0.0) * sh_w[:, None]
            shoulder = thorax + (r_spine @ offset[..., None])[..., 0]
            # arm: abduction raises it sideways (about z), flexion forward (about x)
            r_arm = (r_spine @ rot_z(sign * P[f"{side}_shoulder_abd"])
                     @ rot_x(-P[f"{side}_shoulder_flex"]) @ rot_y(sign * P[f"{side}_shoulder_rot"]))
            elbow = shoulder + (r_arm @ down) * (d["upper_arm"] * arm_l)[:, None]
            r_fore = r_arm @ rot_x(-P[f"{side}_elbow"])  # the forearm folds forward
            wrist = elbow + (r_fore @ down) * (d["forearm"] * arm_l)[:, None]
            pts[:, S(f"{side}_shoulder")] = shoulder
            pts[:, S(f"{side}_elbow")] = elbow
            pts[:, S(f"{side}_wrist")] = wrist
            pts[:, 18 if side == "l" else 19] = wrist + (r_fore @ down) * (d["hand"] * arm_l)[:, None]

            hip = vec(sign * d["hip_half"], -d["hip_drop"], 0.0) * hip_w[:, None]
            r_leg = (rot_z(sign * P[f"{side}_hip_abd"]) @ rot_x(-P[f"{side}_hip_flex"])
                     @ rot_y(sign * P[f"{side}_hip_rot"]))
            knee = hip + (r_leg @ down) * (d["thigh"] * leg_l)[:, None]
            r_shin = r_leg @ rot_x(P[f"{side}_knee"])  # the shin folds backward
            ankle = knee + (r_shin @ down) * (d["shin"] * leg_l)[:, None]
            toe_dir = r_leg @ (fwd - 0.3 * up)  # the ankle keeps the foot near level
            pts[:, S(f"{side}_hip")] = hip
            pts[:, S(f"{side}_knee")] = knee
            pts[:, S(f"{side}_ankle")] = ankle
            pts[:, 16 if side == "l" else 17] = ankle + toe_dir * (d["foot"] * leg_l)[:, None]
        return pts * height[:, None, None]


MODELS = {"hand": HandModel, "body": BodyModel}
