"""Keypoint skeletons: joint names, parents, bones, evaluation groups and flip pairs.

Joint orders and groups follow the baselines (Transfer-Learning-Library, UniFrame) so that
per-group PCK is comparable with their tables:

* **Hand21**: 0 wrist; 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 little finger,
  each MCP -> PIP -> DIP -> tip. Groups MCP, PIP, DIP, Fin(gertip) and All (all 21).
* **Body16** (MPII order): 0 r_ankle ... 15 l_wrist. Groups Head, Sld, Elb, Wrist, Hip,
  Knee, Ankle and All, where All is the 12 limb joints (Head, pelvis, thorax and neck are
  not in All).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout. ``parents[j]`` is -1 for the root."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    groups: dict[str, tuple[int, ...]] = field(hash=False)
    flip_pairs: tuple[tuple[int, int], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) for every non-root joint, in joint order."""
        return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)

    @property
    def group_names(self) -> tuple[str, ...]:
        """Display names of the evaluation groups, ``All`` last."""
        return tuple(self.groups)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """``perm[j]`` is the joint that takes slot ``j`` after a horizontal flip."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    def index(self, joint_name: str) -> int:
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise ConfigError(f"{self.name} has no joint {joint_name!r}",
                              did_you_mean(joint_name, self.joint_names)) from None


def metric_key(group_name: str) -> str:
    """The lower-case name a group takes in metric names (``Fin`` -> ``fin``)."""
    return group_name.lower()


def _hand21() -> Skeleton:
    fingers = ("thumb", "index", "middle", "ring", "little")
    segments = ("mcp", "pip", "dip", "tip")
    names = ["wrist"] + [f"{f}_{s}" for f in fingers for s in segments]
    parents = [-1]
    for f in range(5):
        base = 1 + 4 * f
        parents += [0, base, base + 1, base + 2]
    groups = {
        "MCP": (1, 5, 9, 13, 17),
        "PIP": (2, 6, 10, 14, 18),
        "DIP": (3, 7, 11, 15, 19),
        "Fin": (4, 8, 12, 16, 20),
        "All": tuple(range(21)),
    }
    return Skeleton("hand21", tuple(names), tuple(parents), groups, ())


def _body16() -> Skeleton:
    names = (
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
        "l_elbow", "l_wrist",
    )
    parents = (1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 7, 7, 13, 14)
    groups = {
        "Head": (9,),
        "Sld": (12, 13),
        "Elb": (11, 14),
        "Wrist": (10, 15),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
        "All": (12, 13, 11, 14, 10, 15, 2, 3, 1, 4, 0, 5),
    }
    flips = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    return Skeleton("body16", names, parents, groups, flips)


HAND21 = _hand21()
BODY16 = _body16()
SKELETONS = {"hand21": HAND21, "body16": BODY16}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise ConfigError(f"unknown skeleton {name!r}", did_you_mean(name, SKELETONS)) from None
