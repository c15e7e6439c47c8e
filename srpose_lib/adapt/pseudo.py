"""Integrated 2D + 3D pseudo-labels and the mask strategies of Table B(a) (supplementary §C.1).

For every target keypoint the teacher gives two candidate labels in the base frame:

* the **2D pseudo-label**: the argmax of its heatmap, trusted where the heatmap is
  confident — mask **M_2D** keeps the batch's top ``mask_ratio`` by heatmap confidence
  (UniFrame's rule);
* the **3D pseudo-label**: the 2D keypoints lifted to 3D, made kinematically valid and
  projected back (:mod:`srpose_lib.adapt.lifting`) — mask **M_3D** keeps the batch's top
  ``mask_ratio`` by the heatmap's support *at the reprojected position*: a kinematically
  valid position the image also supports. Our choice where the main text is unavailable:
  it mirrors M_2D (same ratio, same confidence units), so the two masks coincide exactly
  when the 2D predictions are already kinematically consistent.

Strategies (Table B(a)): ``m2d`` (2D labels under M_2D — UniFrame, our Baseline), ``m3d``
(3D labels under M_3D), ``union`` (both labels under M_2D ∪ M_3D), ``indep`` (2D labels
under M_2D and 3D labels under M_3D) and ``ours``: independent first, combined (``union``)
once the masks' overlap in the previous epoch passes ``combine_overlap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, did_you_mean
from ..keypoints import argmax_2d
from ..skeletons import Skeleton
from .lifting import LiftingNet, lift_and_constrain
from .mean_teacher import confidence, confidence_mask

STRATEGIES = ("m2d", "m3d", "union", "indep", "ours")
# Method names used in metrics, and the strategy each one trains with.
METHODS = {"baseline": "m2d", "pseudo_m2d": "m2d", "pseudo_m3d": "m3d", "pseudo_union": "union",
           "pseudo_indep": "indep", "pseudo": "ours"}


@dataclass(frozen=True)
class PseudoConfig:
    strategy: str = "m2d"
    combine_overlap: float = 0.7  # ours: combine once the masks' Jaccard overlap passes this

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown pseudo-label strategy {self.strategy!r}",
                              did_you_mean(self.strategy, STRATEGIES))


@dataclass
class PseudoLabels:
    """Candidate labels (B, K, 2) in base-frame heatmap cells, masks (B, K) bool and the
    confidences they were ranked by."""

    coords2d: torch.Tensor
    coords3d: torch.Tensor | None
    m2d: torch.Tensor
    m3d: torch.Tensor | None
    conf2d: torch.Tensor
    conf3d: torch.Tensor | None


def heat_at(heatmaps: torch.Tensor, coords_cells: torch.Tensor, loss: str, sigma: float) -> torch.Tensor:
    """The heatmaps' confidence (units of :func:`confidence`) at sub-cell positions (B, K, 2)."""
    B, K, h, w = heatmaps.shape
    maps = heatmaps.float()
    if loss != "mse":
        from .mean_teacher import _gaussian_mass

        maps = F.softmax(maps.flatten(2), -1).view(B, K, h, w) * _gaussian_mass(sigma)
    grid = torch.stack([coords_cells[..., 0] / (w - 1) * 2 - 1, coords_cells[..., 1] / (h - 1) * 2 - 1], -1)
    out = F.grid_sample(maps.view(B * K, 1, h, w), grid.view(B * K, 1, 1, 2), mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return out.view(B, K)


def make_pseudo_labels(base_heatmaps: torch.Tensor, loss: str, sigma: float, mask_ratio: float,
                       skeleton: Skeleton, lifting: tuple[LiftingNet, torch.Tensor] | None) -> PseudoLabels:
    """2D (and, with a lifting network, 3D) pseudo-labels and masks from the teacher's
    heatmaps in the base frame."""
    coords2d, _ = argmax_2d(base_heatmaps)
    conf2d = confidence(base_heatmaps, loss, sigma)
    m2d = confidence_mask(conf2d, mask_ratio)
    if lifting is None:
        return PseudoLabels(coords2d, None, m2d, None, conf2d, None)
    net, ratios = lifting
    _, coords3d = lift_and_constrain(net, coords2d, conf2d, skeleton, ratios)
    conf3d = heat_at(base_heatmaps, coords3d, loss, sigma)
    m3d = confidence_mask(conf3d, mask_ratio)
    return PseudoLabels(coords2d, coords3d, m2d, m3d, conf2d, conf3d)


def strategy_terms(labels: PseudoLabels, strategy: str, combined: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The (name, label coordinates, mask) terms of the consistency loss."""
    if strategy == "m2d":
        return [("2d", labels.coords2d, labels.m2d)]
    if labels.coords3d is None:
        raise ConfigError(f"strategy {strategy!r} needs 3D pseudo-labels", "pass a lifting network")
    if strategy == "m3d":
        return [("3d", labels.coords3d, labels.m3d)]
    if strategy == "union" or (strategy == "ours" and combined):
        both = labels.m2d | labels.m3d
        return [("2d", labels.coords2d, both), ("3d", labels.coords3d, both)]
    return [("2d", labels.coords2d, labels.m2d), ("3d", labels.coords3d, labels.m3d)]


def overlap_counts(m2d: torch.Tensor, m3d: torch.Tensor) -> tuple[int, int]:
    """|M_2D ∩ M_3D| and |M_2D ∪ M_3D| (their ratio is the Jaccard overlap of Table B(b))."""
    return int((m2d & m3d).sum()), int((m2d | m3d).sum())
