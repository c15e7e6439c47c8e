"""3D pseudo-labels: lift 2D keypoints to 3D, enforce kinematic constraints, project back.

The paper's integrated pseudo-labelling (supplementary §C) adds 3D pseudo-labels whose mask
M_3D says how well a kinematically valid 3D pose agrees with the 2D evidence. The main text
with its exact design is not available; our choices, each a config field:

* **Lifting network** (Martinez et al., "A simple yet effective baseline for 3d human pose
  estimation", ICCV 2017): an MLP with residual blocks from normalised 2D keypoints to
  normalised root-relative 3D keypoints in camera coordinates, trained on the *source*
  split's 3D ground truth (synthetic data has it; target data never provides it).
  Normalisation: 2D and 3D centred on the root joint and divided by their RMS distance to
  it, so neither image scale nor subject size matters; in-plane rotations augment training.
* **Kinematic constraints** on the lifted pose: every bone is rebuilt, root outwards, with
  the source skeleton's mean **bone-length ratios** along its predicted direction, and
  the bend between a bone and its parent bone is clamped to a **joint limit** (finger
  joints, elbows, knees).
* **Reprojection**: a weak-perspective camera (scale + translation) fitted by weighted
  least squares to the 2D keypoints projects the constrained pose back to 2D: the 3D
  pseudo-label. M_3D keeps the joints where it lands within ``agree`` cells of the 2D
  pseudo-label (see :mod:`srpose_lib.adapt.pseudo`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..skeletons import Skeleton

# Maximum bend (degrees) between a bone and its parent bone, by child joint name. Joints
# not listed are free. Hands: MCP, PIP and DIP flexion; bodies: elbows and knees.
JOINT_LIMITS = {
    "hand21": {**{f"{f}_{s}": a for f in ("index", "middle", "ring", "little")
                  for s, a in (("pip", 100.0), ("dip", 115.0), ("tip", 95.0))},
               "thumb_dip": 80.0, "thumb_tip": 95.0},
    "body16": {"r_wrist": 150.0, "l_wrist": 150.0, "r_ankle": 150.0, "l_ankle": 150.0},
}
ROOT = {"hand21": 0, "body16": 6}


@dataclass(frozen=True)
class LiftingConfig:
    hidden: int = 256  # Martinez et al.: 1024
    blocks: int = 2
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    input_noise: float = 0.03  # Gaussian noise on normalised 2D inputs (detections are noisy)
    rotation: float = 180.0  # in-plane rotation augmentation, ±degrees


class LiftingNet(nn.Module):
    """2D (B, K, 2) normalised keypoints -> 3D (B, K, 3) normalised root-relative pose."""

    def __init__(self, num_joints: int, cfg: LiftingConfig):
        super().__init__()
        h = cfg.hidden
        self.inp = nn.Sequential(nn.Linear(2 * num_joints, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(cfg.dropout))
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(cfg.dropout),
                          nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(cfg.dropout))
            for _ in range(cfg.blocks)])
        self.out = nn.Linear(h, 3 * num_joints)
        self.num_joints = num_joints

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        x = self.inp(xy.flatten(1))
        for block in self.blocks:
            x = x + block(x)
        return self.out(x).view(-1, self.num_joints, 3)


def normalise(points: torch.Tensor, root: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre points (B, K, D) on the root joint and divide by their RMS distance to it.
    Returns (normalised, centre (B, 1, D), scale (B, 1, 1))."""
    centre = points[:, root:root + 1]
    rel = points - centre
    scale = rel.pow(2).sum(-1).mean(-1, keepdim=True).sqrt().clamp_min(1e-6)[..., None]
    return rel / scale, centre, scale


def rotate_inplane(points: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate the x, y coordinates of (B, K, 2 or 3) points by ``angle`` (B,) radians."""
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x, y = points[..., 0], points[..., 1]
    out = points.clone()
    out[..., 0] = c * x - s * y
    out[..., 1] = s * x + c * y
    return out


def reference_bone_ratios(poses3d: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Mean bone lengths of (N, K, 3) poses divided by their total: (num_bones,)."""
    p, c = zip(*skeleton.bones)
    lengths = (poses3d[:, list(c)] - poses3d[:, list(p)]).norm(dim=-1)
    ratios = lengths / lengths.sum(-1, keepdim=True)
    return ratios.mean(0)


def constrain(pose3d: torch.Tensor, skeleton: Skeleton, bone_ratios: torch.Tensor,
              limits: dict[str, float] | None = None) -> torch.Tensor:
    """Kinematic constraints on (B, K, 3) poses: rebuild every bone from the root outwards
    with the reference length ratio (times the pose's own total bone length) along its
    predicted direction, clamping the bend against the parent bone to ``limits``."""
    limits = JOINT_LIMITS.get(skeleton.name, {}) if limits is None else limits
    bones = skeleton.bones
    p_idx, c_idx = zip(*bones)
    total = (pose3d[:, list(c_idx)] - pose3d[:, list(p_idx)]).norm(dim=-1).sum(-1, keepdim=True)  # (B, 1)
    out = pose3d.clone()
    new_dir = {}
    for b, (p, c) in enumerate(_topological(bones, skeleton)):
        d = pose3d[:, c] - pose3d[:, p]
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        gp = skeleton.parents[p]
        name = skeleton.joint_names[c]
        if gp >= 0 and name in limits and p in new_dir:
            d = _clamp_bend(new_dir[p], d, math.radians(limits[name]))
        new_dir[c] = d
        length = bone_ratios[bones.index((p, c))] * total[:, 0]
        out[:, c] = out[:, p] + d * length[:, None]
    return out


def _topological(bones, skeleton: Skeleton):
    order, done = [], {i for i, p in enumerate(skeleton.parents) if p < 0}
    remaining = list(bones)
    while remaining:
        for bone in list(remaining):
            if bone[0] in done:
                order.append(bone)
                done.add(bone[1])
                remaining.remove(bone)
    return order


def _clamp_bend(parent_dir: torch.Tensor, child_dir: torch.Tensor, max_angle: float) -> torch.Tensor:
    """Rotate ``child_dir`` towards ``parent_dir`` (both unit, (B, 3)) until the angle
    between them is at most ``max_angle``."""
    cos = (parent_dir * child_dir).sum(-1).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    too_far = angle > max_angle
    # unit vector perpendicular to the parent direction in the plane of both
    perp = child_dir - cos[:, None] * parent_dir
    perp_norm = perp.norm(dim=-1, keepdim=True)
    fallback = torch.linalg.cross(parent_dir, torch.tensor([0.0, 0.0, 1.0], device=parent_dir.device).expand_as(parent_dir))
    perp = torch.where(perp_norm > 1e-6, perp / perp_norm.clamp_min(1e-8), fallback / fallback.norm(dim=-1, keepdim=True).clamp_min(1e-8))
    clamped = math.cos(max_angle) * parent_dir + math.sin(max_angle) * perp
    return torch.where(too_far[:, None], clamped, child_dir)


def fit_weak_perspective(pose3d: torch.Tensor, xy: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Project (B, K, 3) poses with the scale + translation that best fit the 2D points
    (B, K, 2) in weighted least squares (weights (B, K) >= 0). Returns (B, K, 2)."""
    w = weights.clamp_min(0) + 1e-6
    wn = w / w.sum(-1, keepdim=True)
    X = pose3d[..., :2]
    mx = (wn[..., None] * X).sum(1, keepdim=True)
    my = (wn[..., None] * xy).sum(1, keepdim=True)
    Xc, yc = X - mx, xy - my
    s = (wn * (Xc * yc).sum(-1)).sum(-1) / (wn * Xc.pow(2).sum(-1)).sum(-1).clamp_min(1e-8)
    s = s.clamp_min(1e-6)
    return s[:, None, None] * Xc + my


def lift_and_constrain(net: LiftingNet, xy: torch.Tensor, weights: torch.Tensor, skeleton: Skeleton,
                       bone_ratios: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3D pseudo-label pipeline: 2D keypoints (B, K, 2) -> lifted, constrained 3D pose
    (normalised) and its reprojection into the same 2D frame (B, K, 2)."""
    root = ROOT[skeleton.name]
    norm, _, _ = normalise(xy, root)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        pose = net(norm.float())
    net.train(was_training)
    pose = constrain(pose, skeleton, bone_ratios)
    return pose, fit_weak_perspective(pose, xy, weights)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class LiftingTrainConfig:
    """What determines a lifting network: the source data it learns from and its schedule."""

    benchmark: object  # BenchmarkConfig of the task (its source train/val splits)
    net: LiftingConfig = LiftingConfig()
    seed: int = 0


def train_lifting(cfg: LiftingTrainConfig, run_dir, data, device="cpu", log=print, show_progress: bool = True,
                  on_iteration=None):
    """Train the lifting network on source 2D/3D ground truth (seconds on a CPU; resumable per
    epoch like every stage, :func:`..train.loop.run_epochs`; fp32: a small MLP on keypoint
    coordinates gains nothing from bf16). Returns a TrainResult whose state holds the
    network and the source skeleton's bone-length ratios; metrics report the validation
    error (mean per-joint error in normalised units) before and after the constraints."""
    from pathlib import Path

    from ..train.cache import TrainResult
    from ..train.loop import Box, LoopSpec, run_epochs
    from ..train.rng import GlobalRNG
    from ..train.step import checked_step

    device = torch.device(device)
    train = data.split(cfg.benchmark, "source", "train")
    val = data.split(cfg.benchmark, "source", "val")
    sk = train.skeleton
    root = ROOT[sk.name]
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = LiftingNet(sk.num_joints, cfg.net).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.net.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.net.epochs)
    x_all, _, _ = normalise(train.keypoints.float(), root)
    y_all, _, _ = normalise(train.keypoints3d.float(), root)
    ratios = reference_bone_ratios(train.keypoints3d.float(), sk)
    bs = min(cfg.net.batch_size, len(x_all))  # small splits: one batch of everything
    order = Box()
    tag = f"[lifting {cfg.benchmark.task}]"

    def begin_epoch(epoch: int) -> None:
        net.train()
        order.value = torch.randperm(len(x_all), generator=gen)

    def step(epoch: int, it: int) -> dict:
        idx = order.value[it * bs:(it + 1) * bs]
        angle = (torch.rand(len(idx), generator=gen) * 2 - 1) * math.radians(cfg.net.rotation)
        x = rotate_inplane(x_all[idx], angle) + cfg.net.input_noise * torch.randn(len(idx), sk.num_joints, 2,
                                                                                  generator=gen)
        y = rotate_inplane(y_all[idx], angle)
        loss = (net(x.to(device)) - y.to(device)).norm(dim=-1).mean()
        checked_step(loss, opt, f"{tag} the lifting loss", f"at epoch {epoch + 1}", "lower lifting.lr")
        return {"loss": loss.item()}

    spec = LoopSpec(tag, "lifting", cfg, Path(run_dir), cfg.net.epochs, len(x_all) // bs, bs)
    state = {"net": net, "optimizer": opt, "scheduler": sched, "generator": gen, "rng": GlobalRNG()}  # rng: dropout
    history = run_epochs(spec, state, step,
                         end_epoch=lambda e, r: sched.step(), begin_epoch=begin_epoch,
                         describe=lambda r: f"loss {r['loss']:.4f}", log=log, show_progress=show_progress,
                         on_iteration=on_iteration)
    metrics = lifting_errors(net, ratios, val.keypoints.float(), val.keypoints3d.float(), sk)
    log(f"{tag} {cfg.net.epochs} epochs  val error {metrics['mpjpe']:.3f} "
        f"(constrained {metrics['mpjpe_constrained']:.3f}) normalised units")
    state = {"net": {k: v.cpu() for k, v in net.state_dict().items()}, "bone_ratios": ratios}
    return TrainResult("lifting", cfg, state, history, metrics, run_dir)


@torch.no_grad()
def lifting_errors(net: LiftingNet, ratios: torch.Tensor, xy: torch.Tensor, xyz: torch.Tensor,
                   skeleton: Skeleton) -> dict:
    """Mean per-joint 3D error (normalised units, after a best global scale) of the lifted
    pose, before and after the kinematic constraints."""
    root = ROOT[skeleton.name]
    net.eval()
    pred = net(normalise(xy, root)[0])
    truth = normalise(xyz, root)[0]
    cons = normalise(constrain(pred, skeleton, ratios), root)[0]
    return {"mpjpe": float((pred - truth).norm(dim=-1).mean()),
            "mpjpe_constrained": float((cons - truth).norm(dim=-1).mean())}


def load_lifting(result, device="cpu") -> tuple[LiftingNet, torch.Tensor]:
    """The lifting network (eval mode) and bone ratios of a lifting TrainResult."""
    cfg = result.config
    K = result.state_dict["bone_ratios"].shape[0] + 1
    net = LiftingNet(K, cfg.net)
    net.load_state_dict(result.state_dict["net"])
    return net.to(device).eval(), result.state_dict["bone_ratios"].to(device)
