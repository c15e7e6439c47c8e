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
  the source skeleton's mean **bone-length ratios** along its predicted direction, turned
  into the source skeleton's **joint limits with direction** (:mod:`srpose_lib.adapt.limits`):
  hinges (fingers' PIP/DIP, elbows, knees) bend one way within their range, ball joints
  (MCPs, shoulders, hips) point their bone where the source skeleton can.
* **Reprojection**: a weak-perspective camera (scale + translation) fitted by weighted
  least squares to the 2D keypoints projects the constrained pose back to 2D: the 3D
  pseudo-label. How far the constraints had to move each joint (:func:`kinematic_deviation`)
  is M_3D's evidence (see :mod:`srpose_lib.adapt.pseudo`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..data.real import RealTaskConfig
from ..skeletons import Skeleton
from ..synth.benchmark import BenchmarkConfig
from .limits import Hinge, clamp_ball, clamp_hinge, default_limits, flexion_side

# Joint limits by child joint name (:mod:`srpose_lib.adapt.limits`): signed hinges (fingers'
# PIP/DIP, elbows, knees) and reachable directions of ball joints (MCPs, shoulders, hips,
# spine, neck), from the source kinematic model's joint-angle ranges.
JOINT_LIMITS = {name: default_limits(name) for name in ("hand21", "body16")}
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
              limits: dict | None = None) -> torch.Tensor:
    """Kinematic constraints on (B, K, 3) poses: rebuild every bone from the root outwards
    with the reference length ratio (times the pose's own total bone length) along its
    predicted direction, turned into its joint limit (``limits``: by child joint name, a
    :class:`~srpose_lib.adapt.limits.Hinge` or ``"ball"``; default :data:`JOINT_LIMITS`,
    ``{}`` for bone lengths only)."""
    limits = JOINT_LIMITS.get(skeleton.name, {}) if limits is None else limits
    bones = skeleton.bones
    p_idx, c_idx = zip(*bones)
    total = (pose3d[:, list(c_idx)] - pose3d[:, list(p_idx)]).norm(dim=-1).sum(-1, keepdim=True)  # (B, 1)
    out = pose3d.clone()
    for p, c in _topological(bones, skeleton):
        d = pose3d[:, c] - pose3d[:, p]
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        name = skeleton.joint_names[c]
        limit = limits.get(name)
        if isinstance(limit, Hinge) and skeleton.parents[p] >= 0:
            u = out[:, p] - out[:, skeleton.parents[p]]
            u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            d = clamp_hinge(u, d, flexion_side(out, skeleton.name, p, name, skeleton.parents), limit)
        elif limit == "ball":
            d = clamp_ball(out, skeleton.name, name, d)
        elif isinstance(limit, (int, float)) and skeleton.parents[p] >= 0:  # a plain maximum bend
            u = out[:, p] - out[:, skeleton.parents[p]]
            d = _clamp_bend(u / u.norm(dim=-1, keepdim=True).clamp_min(1e-8), d, math.radians(limit))
        length = bone_ratios[bones.index((p, c))] * total[:, 0]
        out[:, c] = out[:, p] + d * length[:, None]
    return out


def kinematic_deviation(pose3d: torch.Tensor, constrained: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """How far the constraints moved each joint relative to its parent (B, K): the length of
    the change of the bone vector ending at the joint, in units of the constrained bone's
    length (0 = the lifted bone was already valid). The root takes its child bones' mean."""
    p_idx, c_idx = map(list, zip(*skeleton.bones))
    before = pose3d[:, c_idx] - pose3d[:, p_idx]
    after = constrained[:, c_idx] - constrained[:, p_idx]
    dev = (before - after).norm(dim=-1) / after.norm(dim=-1).clamp_min(1e-8)
    out = pose3d.new_zeros(pose3d.shape[:2])
    out[:, c_idx] = dev
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            kids = [i for i, c in enumerate(c_idx) if p_idx[i] == j]
            out[:, j] = dev[:, kids].mean(-1)
    return out


def _topological(bones, skeleton: Skeleton):
    """Bones ordered by depth from the root (then by joint), so frames built from a
    parent's siblings (the palm, the hips, the shoulders) are complete before they are used."""
    depth = {}
    for j in range(skeleton.num_joints):
        d, k = 0, j
        while skeleton.parents[k] >= 0:
            k, d = skeleton.parents[k], d + 1
        depth[j] = d
    return sorted(bones, key=lambda b: (depth[b[1]], b[1]))


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


def lift(net: LiftingNet, xy: torch.Tensor, skeleton: Skeleton, dropout: bool = False) -> torch.Tensor:
    """Lift 2D keypoints (B, K, 2) to a normalised 3D pose (B, K, 3), without gradients.
    ``dropout=True`` keeps the dropout layers sampling (BatchNorm stays in eval mode), for
    Monte-Carlo estimates of the network's uncertainty (Gal & Ghahramani, ICML 2016)."""
    norm, _, _ = normalise(xy, ROOT[skeleton.name])
    was_training = net.training
    net.eval()
    if dropout:
        for m in net.modules():
            if isinstance(m, nn.Dropout):
                m.train()
    with torch.no_grad():
        pose = net(norm.float())
    net.train(was_training)
    return pose


def lift_and_constrain(net: LiftingNet, xy: torch.Tensor, weights: torch.Tensor, skeleton: Skeleton,
                       bone_ratios: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3D pseudo-label pipeline: 2D keypoints (B, K, 2) -> lifted, constrained 3D pose
    (normalised) and its reprojection into the same 2D frame (B, K, 2)."""
    pose = constrain(lift(net, xy, skeleton), skeleton, bone_ratios)
    return pose, fit_weak_perspective(pose, xy, weights)


def relative_reprojection_error(net, bone_ratios: torch.Tensor, xy: torch.Tensor, skeleton: Skeleton) -> float:
    """Given 2D keypoints (B, K, 2), the mean distance of the lifted-constrained-reprojected
    pose to them, relative to each pose's size (the longer side of its 2D box)."""
    _, reproj = lift_and_constrain(net, xy, torch.ones(xy.shape[:2]), skeleton, bone_ratios)
    size = (xy.max(1).values - xy.min(1).values).max(-1).values.clamp_min(1e-8)
    return float(((reproj - xy).norm(dim=-1).mean(-1) / size).mean())


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class LiftingTrainConfig:
    """What determines a lifting network: the source data it learns from and its schedule."""

    benchmark: BenchmarkConfig | RealTaskConfig  # the task's data (its source train/val splits)
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
