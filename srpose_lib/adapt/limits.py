"""Joint limits with direction for the kinematic constraints on lifted poses (supplementary §C.1:
"kinematic constraints on 3D pose").

Two kinds of limit, both derived from the source skeleton's joint-angle ranges
(:mod:`srpose_lib.synth.kinematics`), never from target data:

* **Hinges** (fingers' PIP and DIP, the thumb's MCP and IP, elbows, knees) bend one way. A
  hinge's bend is read as a *signed* flexion ``theta`` (positive = towards its flexion
  side ``d0``) and a lateral deviation ``psi`` out of its bending plane; ``theta`` is
  clamped to the model's range (PIP 0-105°, elbow 0-145°, ...) and ``psi`` to ``cone``: 10°
  for fingers (a true hinge, the tolerance covers the estimate of the axis) and the range
  of the parent's rotation about the bone for elbows (shoulder rotation ±70°) and knees
  (hip rotation ±35°). A finger bent backwards comes back straight.
* **Ball joints** (a finger's MCP, shoulders, hips, spine, neck) may point their bone
  within a region of directions, read in a frame built from the pose itself (the palm; the
  pelvis; the trunk). The region is the set of directions the kinematic model reaches over
  its joint-angle box (sampled once, deterministically); a bone pointing more than
  ``BALL_TOLERANCE`` degrees outside it is turned to the nearest reachable direction — an
  upper arm hanging across the chest (a left/right swap) swings back to its own side.

Frames are built from joints placed earlier (root outwards), so :func:`constrain
<srpose_lib.adapt.lifting.constrain>` applies every limit to an already-constrained parent.
Hands are left hands (the benchmark's convention and RHD's); a mirrored hand reads its
flexion side reversed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

BALL_TOLERANCE = 8.0  # degrees a ball-joint bone may leave its reachable region
_SAMPLES = 4096  # poses sampled to map each ball joint's reachable directions


@dataclass(frozen=True)
class Hinge:
    """Signed flexion range (degrees) and lateral tolerance (degrees); the flexion side
    comes from :func:`flexion_side`."""

    lo: float
    hi: float
    cone: float


def _norm(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def _perp(v: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """The unit component of ``v`` perpendicular to unit ``axis``."""
    return _norm(v - (v * axis).sum(-1, keepdim=True) * axis)


def _frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Right-handed frame (B, 3, 3) with columns x, y ⟂ x, z = x × y."""
    x = _norm(x)
    y = _perp(y, x)
    return torch.stack([x, y, torch.linalg.cross(x, y)], -1)


# ----------------------------------------------------------------------------- frames

def hand_frame(pose: torch.Tensor) -> torch.Tensor:
    """The palm: z the back-of-hand normal (index MCP, little MCP about the wrist), y towards
    the middle MCP, x = y × z (towards the thumb for a left hand)."""
    w, i, m, l = pose[:, 0], pose[:, 5], pose[:, 9], pose[:, 17]
    z = _norm(torch.linalg.cross(i - w, l - w))
    y = _perp(m - w, z)
    return torch.stack([torch.linalg.cross(y, z), y, z], -1)


def body_frames(pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pelvis frame (x hips right-to-left, y pelvis above the hips), spine frame (x hips,
    y along the spine) and trunk frame (x shoulders right-to-left, y along the spine)."""
    r_hip, l_hip, pelvis, thorax = pose[:, 2], pose[:, 3], pose[:, 6], pose[:, 7]
    return {"pelvis": _frame(l_hip - r_hip, pelvis - (l_hip + r_hip) / 2),
            "spine": _frame(l_hip - r_hip, thorax - pelvis),
            "trunk": _frame(pose[:, 13] - pose[:, 12], thorax - pelvis)}


# Ball joints: child joint -> frame it is read in. Hinges: child joint -> (its Hinge).
_BALL_FRAMES = {
    "hand21": {f"{f}_pip": "palm" for f in ("thumb", "index", "middle", "ring", "little")},
    "body16": {"thorax": "pelvis", "upper_neck": "spine", "head_top": "spine", "l_shoulder": "spine",
               "r_shoulder": "spine", "l_elbow": "trunk", "r_elbow": "trunk", "l_knee": "pelvis",
               "r_knee": "pelvis"},
}


def _frames(pose: torch.Tensor, skeleton_name: str) -> dict[str, torch.Tensor]:
    return {"palm": hand_frame(pose)} if skeleton_name == "hand21" else body_frames(pose)


@lru_cache(maxsize=None)
def default_limits(skeleton_name: str) -> dict[str, object]:
    """Limits by child joint name: a :class:`Hinge`, or ``"ball"`` (reachable directions),
    with the hinge ranges read from the source kinematic model's joint-angle limits."""
    from ..synth.kinematics import MODELS

    if skeleton_name not in _BALL_FRAMES:
        return {}
    model = MODELS["hand" if skeleton_name == "hand21" else "body"]()
    rng = {n: (float(lo), float(hi)) for n, lo, hi in zip(model.param_names, model.lower, model.upper)}
    out: dict[str, object] = {name: "ball" for name in _BALL_FRAMES[skeleton_name]}
    if skeleton_name == "hand21":
        for f in ("thumb", "index", "middle", "ring", "little"):
            out[f"{f}_dip"] = Hinge(*rng[f"{f}_flex2"], 10.0)  # bend at the PIP (thumb: MCP)
            out[f"{f}_tip"] = Hinge(*rng[f"{f}_flex3"], 10.0)  # bend at the DIP (thumb: IP)
    else:
        for s in ("l", "r"):
            out[f"{s}_wrist"] = Hinge(*rng[f"{s}_elbow"], rng[f"{s}_shoulder_rot"][1])
            out[f"{s}_ankle"] = Hinge(*rng[f"{s}_knee"], rng[f"{s}_hip_rot"][1])
    return out


@lru_cache(maxsize=None)
def _reference(skeleton_name: str) -> dict:
    """Reachable ball-joint directions (in their frames) and the fingers' hinge-axis helper
    vectors (in the palm frame), from the kinematic model over its joint-angle box."""
    from ..skeletons import get_skeleton
    from ..synth.kinematics import MODELS

    sk = get_skeleton(skeleton_name)
    model = MODELS["hand" if skeleton_name == "hand21" else "body"]()
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(_SAMPLES, model.num_params, generator=gen)
    pose = model.lower + (model.upper - model.lower) * u
    pts = model.forward(pose, torch.ones(len(pose), model.num_shape))[:, :sk.num_joints]
    frames = _frames(pts, skeleton_name)
    dirs = {}
    for child, frame in _BALL_FRAMES[skeleton_name].items():
        c = sk.index(child)
        d = _norm(pts[:, c] - pts[:, sk.parents[c]])
        local = torch.einsum("bij,bi->bj", frames[frame], d)  # frame coordinates
        if child in ("l_elbow", "r_elbow"):
            # The model's Euler angles (flexion past 90° then abduction) also swing an arm
            # over the head and down the other side; a real upper arm crosses the body's
            # midline only in front of the chest: keep those directions only.
            across = local[:, 0] * (1.0 if child == "l_elbow" else -1.0)
            local = local[(across >= 0) | (local[:, 2] > -across)]
        dirs[child] = local
    ref = {"dirs": dirs}
    if skeleton_name == "hand21":
        # the finger's frame z in palm coordinates (rest pose): its hinge axis is
        # first-bone × this vector (exact for the model's MCP flexion/abduction)
        rest = model.forward(torch.zeros(1, model.num_params), torch.ones(1, model.num_shape))[:, :21]
        palm = hand_frame(rest)[0]
        from ..synth.kinematics import deg, rot_x, rot_y, rot_z

        thumb_z = (rot_z(deg(-48.0)) @ rot_y(deg(-35.0)) @ rot_x(deg(-15.0)))[:, 2]
        ref["axis_helper"] = {"thumb": palm.T @ thumb_z, **{f: torch.tensor([0.0, 0.0, 1.0])
                                                            for f in ("index", "middle", "ring", "little")}}
    return ref


# ----------------------------------------------------------------------------- limits


def flexion_side(out: torch.Tensor, skeleton_name: str, joint: int, child_name: str,
                 parents: tuple[int, ...]) -> torch.Tensor:
    """The unit direction (B, 3), perpendicular to the parent bone, that the hinge at
    ``joint`` flexes towards, from the already-placed joints of ``out``."""
    p = parents[joint]
    u = _norm(out[:, joint] - out[:, p])
    if skeleton_name == "hand21":
        finger = child_name.split("_")[0]
        base = 1 + 4 * ("thumb", "index", "middle", "ring", "little").index(finger)
        first = _norm(out[:, base + 1] - out[:, base])
        palm = hand_frame(out)
        w = palm @ _reference(skeleton_name)["axis_helper"][finger].to(out)
        axis = _norm(torch.linalg.cross(first, w))
        return _perp(torch.linalg.cross(u, axis), u)
    frames = body_frames(out)
    frame = frames["trunk" if child_name.endswith("wrist") else "pelvis"]
    rest_dir, rest_side = -frame[..., 1], (frame[..., 2] if child_name.endswith("wrist") else -frame[..., 2])
    return _perp(_swing(rest_dir, u, rest_side, frame[..., 0]), u)


def _swing(a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, fallback_axis: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` by the smallest rotation taking unit ``a`` to unit ``b`` (all (B, 3));
    about ``fallback_axis`` when a and b are opposite."""
    k = torch.linalg.cross(a, b)
    s = k.norm(dim=-1, keepdim=True)
    c = (a * b).sum(-1, keepdim=True)
    k = torch.where(s > 1e-6, k / s.clamp_min(1e-8), fallback_axis)
    s = torch.where(s > 1e-6, s, torch.zeros_like(s))
    return v * c + torch.linalg.cross(k, v) * s + k * (k * v).sum(-1, keepdim=True) * (1 - c)


def read_hinge(u: torch.Tensor, v: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A hinge's signed flexion and lateral deviation (radians, (B,)) from the parent and
    child bone directions and the flexion side (all unit, (B, 3))."""
    lat = torch.linalg.cross(u, side)
    cu, cd, cl = (v * u).sum(-1), (v * side).sum(-1), (v * lat).sum(-1)
    sign = torch.where(cd < 0, -torch.ones_like(cd), torch.ones_like(cd))
    theta = torch.atan2(sign * torch.sqrt(cd**2 + cl**2), cu)
    psi = torch.atan2(sign * cl, sign * cd)  # in (-90°, 90°]
    return theta, psi


def limit_violations(pose: torch.Tensor, skeleton) -> torch.Tensor:
    """Degrees (B, K) by which each joint's bone leaves its limit (0 inside): a hinge's
    flexion outside [lo, hi] or lateral deviation beyond ``cone``; a ball joint's angle to
    its nearest reachable direction beyond :data:`BALL_TOLERANCE`."""
    out = pose.new_zeros(pose.shape[:2])
    for name, limit in default_limits(skeleton.name).items():
        c = skeleton.index(name)
        p = skeleton.parents[c]
        v = _norm(pose[:, c] - pose[:, p])
        if isinstance(limit, Hinge):
            u = _norm(pose[:, p] - pose[:, skeleton.parents[p]])
            theta, psi = map(torch.rad2deg, read_hinge(u, v, flexion_side(pose, skeleton.name, p, name, skeleton.parents)))
            out[:, c] = (limit.lo - theta).clamp_min(0) + (theta - limit.hi).clamp_min(0) \
                + (psi.abs() - limit.cone).clamp_min(0) * (theta.abs() > 5).float()  # ψ is moot when straight
        else:
            frame = _frames(pose, skeleton.name)[_BALL_FRAMES[skeleton.name][name]]
            local = torch.einsum("bij,bi->bj", frame, v)
            best = (local @ _reference(skeleton.name)["dirs"][name].to(v).T).max(-1).values
            out[:, c] = (torch.rad2deg(torch.acos(best.clamp(-1, 1))) - BALL_TOLERANCE).clamp_min(0)
    return out


def clamp_hinge(u: torch.Tensor, v: torch.Tensor, side: torch.Tensor, hinge: Hinge) -> torch.Tensor:
    """Child direction ``v`` (B, 3, unit) after a hinge with parent direction ``u`` and
    flexion side ``side`` (unit, ⟂ u): signed flexion clamped to [lo, hi], lateral
    deviation to ±cone."""
    theta, psi = read_hinge(u, v, side)
    lat = torch.linalg.cross(u, side)
    theta = theta.clamp(math.radians(hinge.lo), math.radians(hinge.hi))
    psi = psi.clamp(-math.radians(hinge.cone), math.radians(hinge.cone))
    bend = torch.cos(psi)[:, None] * side + torch.sin(psi)[:, None] * lat
    return torch.cos(theta)[:, None] * u + torch.sin(theta)[:, None] * bend


def clamp_ball(out: torch.Tensor, skeleton_name: str, child_name: str, v: torch.Tensor) -> torch.Tensor:
    """Bone direction ``v`` (B, 3, unit) turned to the nearest direction the model reaches
    when it is more than :data:`BALL_TOLERANCE` degrees outside that region."""
    frame = _frames(out, skeleton_name)[_BALL_FRAMES[skeleton_name][child_name]]
    local = torch.einsum("bij,bi->bj", frame, v)
    ref = _reference(skeleton_name)["dirs"][child_name].to(v)
    cos = local @ ref.T  # (B, N)
    best, idx = cos.max(-1)
    outside = best < math.cos(math.radians(BALL_TOLERANCE))
    # the nearest reachable direction, tilted back towards v by the tolerance
    near = ref[idx]
    tilt = _perp(local, near)
    t = math.radians(BALL_TOLERANCE)
    edge = math.cos(t) * near + math.sin(t) * tilt
    local = torch.where(outside[:, None], edge, local)
    return torch.einsum("bij,bj->bi", frame, local)
