"""The two appearance domains of the built-in benchmark and their scene priors.

* **source** ("synthetic", like RHD and SURREAL): flat cartoon shading with outlines,
  plain backgrounds, clean images, a broad pose prior.
* **target** ("real", like H3D and Human3.6M): textured, directionally lit limbs, cluttered
  backgrounds, blur, sensor noise, occluders, a shifted pose prior (grasps and gestures for
  hands, everyday activities for bodies), other proportions and another camera.

Every knob is a field of :class:`DomainConfig`; :func:`domain_preset` gives the defaults.
Pixel quantities are given for a 64 px crop and scale with the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, did_you_mean
from .kinematics import BodyModel, HandModel, KinematicModel


@dataclass(frozen=True)
class DomainConfig:
    """One appearance domain of one task (see the module docstring)."""

    name: str = "source"
    # --- pose prior, subject and camera
    pose_prior: str = "broad"  # hand: broad | grasp; body: broad | activities
    shape_spread: float = 0.08  # max relative change of each proportion
    shape_bias: tuple[float, ...] = ()  # multiplicative bias per proportion (default none)
    radius_scale: tuple[float, float] = (0.95, 1.05)  # limb thickness factor
    yaw: tuple[float, float] = (-60.0, 60.0)  # degrees about the model's up axis
    pitch: tuple[float, float] = (-20.0, 20.0)  # degrees about the model's x axis
    roll: tuple[float, float] = (-35.0, 35.0)  # in-plane rotation, degrees
    distance: tuple[float, float] = (4.0, 6.0)  # camera distance in subject sizes
    focal: float = 600.0  # focal length of the virtual 320 x 240 camera, px
    motion: float = 1.0  # how far a sequence moves between its two key poses
    # --- appearance
    shading: str = "toon"  # toon | lit
    outline: float = 0.55  # darkening of silhouette and depth-edge outlines (toon)
    texture: float = 0.0  # amplitude of the surface texture
    light_spread: float = 0.3  # how far the light direction strays from the camera
    ambient: tuple[float, float] = (0.55, 0.7)
    background: str = "plain"  # plain | clutter
    clutter_shapes: int = 0
    clutter_size: tuple[float, float] = (0.05, 0.3)  # half-size, in subject extents
    occluder_prob: float = 0.0
    blur: tuple[float, float] = (0.0, 0.0)  # Gaussian sigma range, px at 64 px
    noise: tuple[float, float] = (0.0, 0.0)  # sensor noise sigma range (image in [0, 1])
    gamma: tuple[float, float] = (1.0, 1.0)
    white_balance: float = 0.0  # max per-channel gain change

    def __post_init__(self):
        if self.shading not in ("toon", "lit"):
            raise ConfigError(f"unknown shading {self.shading!r}", "use 'toon' or 'lit'")
        if self.background not in ("plain", "clutter"):
            raise ConfigError(f"unknown background {self.background!r}", "use 'plain' or 'clutter'")


_PRESETS = {
    ("hand", "source"): DomainConfig(
        name="source", pose_prior="broad", yaw=(-60.0, 60.0), pitch=(-25.0, 25.0),
        roll=(-40.0, 40.0), distance=(5.0, 7.0), focal=600.0,
    ),
    ("hand", "target"): DomainConfig(
        name="target", pose_prior="grasp", shape_spread=0.1,
        shape_bias=(1.0, 1.08, 0.95, 0.95, 0.95, 0.95, 0.95), radius_scale=(1.08, 1.25),
        yaw=(-30.0, 80.0), pitch=(-35.0, 20.0), roll=(-60.0, 25.0),
        distance=(2.5, 4.0), focal=480.0,
        shading="lit", outline=0.0, texture=0.35, light_spread=1.0, ambient=(0.2, 0.45),
        background="clutter", clutter_shapes=8, clutter_size=(0.03, 0.15), occluder_prob=0.25,
        blur=(0.0, 0.5), noise=(0.005, 0.02), gamma=(0.8, 1.25), white_balance=0.15,
    ),
    ("body", "source"): DomainConfig(
        name="source", pose_prior="broad", yaw=(-70.0, 70.0), pitch=(-10.0, 10.0),
        roll=(-8.0, 8.0), distance=(3.0, 4.5), focal=600.0,
    ),
    ("body", "target"): DomainConfig(
        name="target", pose_prior="activities", shape_spread=0.1,
        shape_bias=(1.0, 1.08, 1.1, 0.96, 1.0, 1.05, 1.0), radius_scale=(1.1, 1.3),
        yaw=(-50.0, 95.0), pitch=(5.0, 25.0), roll=(-5.0, 5.0),
        distance=(2.2, 3.2), focal=480.0,
        shading="lit", outline=0.0, texture=0.35, light_spread=1.0, ambient=(0.2, 0.45),
        background="clutter", clutter_shapes=8, clutter_size=(0.03, 0.15), occluder_prob=0.25,
        blur=(0.0, 0.5), noise=(0.005, 0.02), gamma=(0.8, 1.25), white_balance=0.15,
    ),
}

TASKS = ("hand", "body")
DOMAINS = ("source", "target")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}",
                          did_you_mean(task, TASKS) + " (real-dataset tasks come with the "
                          "real-dataset readers)")
    return task


def domain_preset(task: str, domain: str, **overrides) -> DomainConfig:
    """The default :class:`DomainConfig` of ``task`` ('hand' or 'body') and ``domain``
    ('source' or 'target'), with field overrides."""
    check_task(task)
    if domain not in DOMAINS:
        raise ConfigError(f"unknown domain {domain!r}", did_you_mean(domain, DOMAINS))
    from ..config import override

    return override(_PRESETS[(task, domain)], **overrides) if overrides else _PRESETS[(task, domain)]


def task_skeleton(task: str):
    """The keypoint skeleton of a task: a built-in one or a real-data task."""
    from ..data.real import REAL_TASKS
    from ..skeletons import get_skeleton

    if task in REAL_TASKS:
        return get_skeleton(REAL_TASKS[task][2])
    return kinematic_model(task).skeleton


def kinematic_model(task: str) -> KinematicModel:
    check_task(task)
    return HandModel() if task == "hand" else BodyModel()


# ----------------------------------------------------------------------------- pose priors


def _uniform(n, lo, hi, gen):
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _kumaraswamy(gen, shape, a, b):
    """Samples on [0, 1] shaped like Beta(a, b), drawn from the seeded generator."""
    u = torch.rand(shape, generator=gen).clamp(1e-6, 1 - 1e-6)
    return (1 - (1 - u) ** (1 / b)) ** (1 / a)


def sample_keyposes(model: KinematicModel, prior: str, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` joint-angle vectors (degrees) from a named pose prior, within the limits."""
    if isinstance(model, HandModel):
        if prior == "broad":
            pose = _hand_broad(model, n, gen)
        elif prior == "grasp":
            pose = _hand_grasp(model, n, gen)
        else:
            raise ConfigError(f"unknown hand pose prior {prior!r}", "use 'broad' or 'grasp'")
    else:
        if prior == "broad":
            pose = _body_broad(model, n, gen)
        elif prior == "activities":
            pose = _body_activities(model, n, gen)
        else:
            raise ConfigError(f"unknown body pose prior {prior!r}", "use 'broad' or 'activities'")
    return model.clamp(pose)


def _hand_broad(model: HandModel, n, gen):
    """Independent finger angles over most of their range, mostly open hands (RHD-like)."""
    pose = torch.empty(n, 5, 4)
    pose[:, :, 0] = _uniform((n, 5), -10.0, 75.0, gen)
    pose[:, :, 1] = _uniform((n, 5), -12.0, 12.0, gen)
    pose[:, :, 2] = _uniform((n, 5), 0.0, 85.0, gen)
    pose[:, :, 3] = 0.7 * pose[:, :, 2] + _uniform((n, 5), -10.0, 10.0, gen)
    pose[:, 0, 0] = _uniform(n, -10.0, 45.0, gen)
    pose[:, 0, 1] = _uniform(n, -20.0, 30.0, gen)
    pose[:, 0, 2] = _uniform(n, 0.0, 55.0, gen)
    pose[:, 0, 3] = _uniform(n, -5.0, 65.0, gen)
    return pose.reshape(n, 20)


def _hand_grasp(model: HandModel, n, gen):
    """Correlated curls (fists, grasps, pinches) with some fingers pointing: gestures and
    hand-object poses, more self-occlusion than the source prior (H3D-like)."""
    curl = _kumaraswamy(gen, (n, 1), 2.0, 1.6)
    per_finger = (curl + 0.18 * torch.randn(n, 5, generator=gen)).clamp(0.0, 1.0)
    extended = torch.rand(n, 5, generator=gen) < 0.25
    per_finger = torch.where(extended, 0.08 * torch.rand(n, 5, generator=gen), per_finger)
    pose = torch.empty(n, 5, 4)
    pose[:, :, 0] = -5.0 + 90.0 * per_finger
    pose[:, :, 1] = _uniform((n, 5), -8.0, 8.0, gen) * (1.0 - per_finger)
    pose[:, :, 2] = 100.0 * per_finger
    pose[:, :, 3] = 0.7 * pose[:, :, 2] + _uniform((n, 5), -5.0, 5.0, gen)
    pose[:, 0, 0] = 50.0 * per_finger[:, 0]
    pose[:, 0, 1] = 30.0 - 45.0 * per_finger[:, 0]
    pose[:, 0, 2] = 55.0 * per_finger[:, 0]
    pose[:, 0, 3] = 70.0 * per_finger[:, 0]
    return pose.reshape(n, 20)


def _body_broad(model: BodyModel, n, gen):
    """Independent angles over the central part of every range (SURREAL-like variety)."""
    lo, hi = model.lower, model.upper
    frac = torch.rand(n, model.num_params, generator=gen)
    pose = lo + (hi - lo) * (0.05 + 0.55 * frac)
    idx = {k: i for i, k in enumerate(model.param_names)}
    for side in ("l", "r"):  # legs mostly support the body
        pose[:, idx[f"{side}_hip_flex"]] = _uniform(n, -20.0, 70.0, gen)
        pose[:, idx[f"{side}_knee"]] = _uniform(n, 0.0, 90.0, gen)
        pose[:, idx[f"{side}_hip_abd"]] = _uniform(n, -10.0, 30.0, gen)
    pose[:, idx["spine_flex"]] = _uniform(n, -10.0, 30.0, gen)
    return pose


# Everyday activities (Human3.6M-like): name -> angles (degrees) that differ from zero.
_ACTIVITIES = {
    "stand": {"l_shoulder_abd": 10, "r_shoulder_abd": 10, "l_elbow": 15, "r_elbow": 15},
    "walk_l": {"l_hip_flex": 25, "r_hip_flex": -15, "r_knee": 30, "l_knee": 10,
               "l_shoulder_flex": -25, "r_shoulder_flex": 30, "l_elbow": 20, "r_elbow": 30},
    "walk_r": {"r_hip_flex": 25, "l_hip_flex": -15, "l_knee": 30, "r_knee": 10,
               "r_shoulder_flex": -25, "l_shoulder_flex": 30, "l_elbow": 30, "r_elbow": 20},
    "sit": {"l_hip_flex": 90, "r_hip_flex": 90, "l_knee": 90, "r_knee": 90,
            "l_shoulder_flex": 30, "r_shoulder_flex": 30, "l_elbow": 70, "r_elbow": 70,
            "spine_flex": 10},
    "crouch": {"l_hip_flex": 100, "r_hip_flex": 100, "l_knee": 125, "r_knee": 125,
               "spine_flex": 35, "l_shoulder_flex": 45, "r_shoulder_flex": 45,
               "l_elbow": 40, "r_elbow": 40},
    "phone": {"r_shoulder_flex": 30, "r_elbow": 140, "r_shoulder_abd": 20,
              "neck_flex": 15, "l_elbow": 20},
    "point": {"r_shoulder_flex": 90, "r_elbow": 5, "l_shoulder_abd": 10, "l_elbow": 15},
    "wave": {"l_shoulder_abd": 120, "l_elbow": 80, "r_shoulder_abd": 10, "r_elbow": 15},
    "arms_up": {"l_shoulder_flex": 160, "r_shoulder_flex": 160, "l_elbow": 10, "r_elbow": 10},
    "bend": {"spine_flex": 40, "neck_flex": 20, "l_shoulder_flex": 70, "r_shoulder_flex": 70,
             "l_elbow": 20, "r_elbow": 20, "l_knee": 15, "r_knee": 15},
}


def _body_activities(model: BodyModel, n, gen):
    names = list(_ACTIVITIES)
    idx = {k: i for i, k in enumerate(model.param_names)}
    table = torch.zeros(len(names), model.num_params)
    for a, name in enumerate(names):
        for k, v in _ACTIVITIES[name].items():
            table[a, idx[k]] = float(v)
    which = torch.randint(len(names), (n,), generator=gen)
    return table[which] + 10.0 * torch.randn(n, model.num_params, generator=gen)

