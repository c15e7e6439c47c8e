"""Integrated 2D + 3D pseudo-labels and the mask strategies of Table B(a) (supplementary §C.1).

For every target keypoint the teacher gives two candidate labels in the base frame:

* the **2D pseudo-label**: the argmax of its heatmap, trusted where the heatmap is
  confident — mask **M_2D** keeps the batch's top ``mask_ratio`` by heatmap confidence
  (UniFrame's rule);
* the **3D pseudo-label**: the 2D keypoints lifted to 3D, made kinematically valid and
  projected back (:mod:`srpose_lib.adapt.lifting`) — mask **M_3D** keeps the batch's top
  ``mask_ratio`` by a confidence from **3D evidence** (``PseudoConfig.m3d_evidence``):

  - ``kinematic`` (default): how far the kinematic constraints had to move the joint
    (:func:`~srpose_lib.adapt.lifting.kinematic_deviation`, in bone lengths), as
    ``exp(-deviation / kinematic_scale)``. Our choice, because supplementary §C.1 credits
    M_3D's gain over M_2D to "the kinematic constraints on 3D pose ... compared to the
    guidance from heatmap evidence", and reports the masks overlapping only about 40 % early
    and over 80 % late: the two masks must rank by different evidence, which converges
    as the teacher's 2D poses become plausible;
  - ``reprojection``: how far the constrained pose's reprojection lands from the 2D label
    (a kinematically valid pose explains the keypoint);
  - ``dropout``: the lifting network's own uncertainty, the spread of the reprojected
    label over ``dropout_samples`` Monte-Carlo dropout passes;
  - ``views``: agreement of the lifted, constrained 3D pose across the teacher's views
    (needs ``teacher_views >= 2`` and the per-view heatmaps);
  - ``heatmap``: the teacher heatmap's value at the reprojected position (the previous
    rule; it ranks by the same heatmap as M_2D, for comparison only).

  Every one is in (0, 1], 1 = fully confident.

Strategies (Table B(a)): ``m2d`` (2D labels under M_2D — UniFrame, our Baseline), ``m3d``
(3D labels under M_3D), ``union`` (both labels under M_2D ∪ M_3D), ``indep`` (2D labels
under M_2D and 3D labels under M_3D) and ``ours``: independent first, combined (``union``)
once the masks' overlap in the previous epoch passes ``combine_overlap``. Strategies with
two terms (a 2D and a 3D one) weight each by 1/2 (``equal_weight``), so every strategy's
consistency loss carries the same total weight λ_c and Table B(a) compares masks, not weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, did_you_mean
from ..keypoints import argmax_2d
from ..skeletons import Skeleton
from .lifting import LiftingNet, constrain, fit_weak_perspective, kinematic_deviation, lift
from .mean_teacher import confidence, confidence_mask

STRATEGIES = ("m2d", "m3d", "union", "indep", "ours")
EVIDENCE_3D = ("kinematic", "reprojection", "dropout", "views", "heatmap")
# Method names used in metrics, and the strategy each one trains with.
METHODS = {"baseline": "m2d", "pseudo_m2d": "m2d", "pseudo_m3d": "m3d", "pseudo_union": "union",
           "pseudo_indep": "indep", "pseudo": "ours"}


@dataclass(frozen=True)
class PseudoConfig:
    strategy: str = "m2d"
    combine_overlap: float = 0.7  # ours: combine once the masks' Jaccard overlap passes this
    m3d_evidence: str = "kinematic"  # what M_3D ranks by (module docstring)
    kinematic_scale: float = 0.25  # kinematic: deviation (bone lengths) where confidence is 1/e
    reprojection_scale: float = 0.05  # reprojection / dropout / views: distance (pose sizes) for 1/e
    dropout_samples: int = 8  # dropout: Monte-Carlo passes
    equal_weight: bool = True  # each strategy's consistency terms sum to weight 1

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown pseudo-label strategy {self.strategy!r}",
                              did_you_mean(self.strategy, STRATEGIES))
        if self.m3d_evidence not in EVIDENCE_3D:
            raise ConfigError(f"unknown M_3D evidence {self.m3d_evidence!r}",
                              did_you_mean(self.m3d_evidence, EVIDENCE_3D))
        if self.m3d_evidence == "dropout" and self.dropout_samples < 2:
            raise ConfigError(f"dropout evidence needs dropout_samples >= 2, not {self.dropout_samples}",
                              "set pseudo.dropout_samples to 8")

    def term_weight(self, terms: list) -> float:
        """The weight of each of a strategy's consistency terms: 1 / (number of terms) with
        ``equal_weight`` (so every strategy's terms sum to 1), else 1."""
        return 1.0 / max(1, len(terms)) if self.equal_weight else 1.0


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
    pose3d: torch.Tensor | None = None  # (B, K, 3) the constrained, normalised 3D pose
    deviation3d: torch.Tensor | None = None  # (B, K) kinematic deviation (bone lengths)


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
                       skeleton: Skeleton, lifting: tuple[LiftingNet, torch.Tensor] | None,
                       cfg: PseudoConfig | None = None,
                       view_heatmaps: list[torch.Tensor] | None = None) -> PseudoLabels:
    """2D (and, with a lifting network, 3D) pseudo-labels and masks from the teacher's
    heatmaps in the base frame. ``cfg`` chooses M_3D's evidence (default: kinematic);
    ``view_heatmaps``, the teacher's heatmaps of each view in the base frame, are needed by
    the ``views`` evidence only."""
    cfg = PseudoConfig() if cfg is None else cfg
    coords2d, _ = argmax_2d(base_heatmaps)
    conf2d = confidence(base_heatmaps, loss, sigma)
    m2d = confidence_mask(conf2d, mask_ratio)
    if lifting is None:
        return PseudoLabels(coords2d, None, m2d, None, conf2d, None)
    net, ratios = lifting
    raw = lift(net, coords2d, skeleton)
    pose = constrain(raw, skeleton, ratios)
    coords3d = fit_weak_perspective(pose, coords2d, conf2d)
    deviation = kinematic_deviation(raw, pose, skeleton)
    size = _pose_size(coords2d)
    ev = cfg.m3d_evidence
    if ev == "kinematic":
        conf3d = torch.exp(-deviation / cfg.kinematic_scale)
    elif ev == "reprojection":
        conf3d = torch.exp(-(coords3d - coords2d).norm(dim=-1) / size / cfg.reprojection_scale)
    elif ev == "dropout":
        samples = torch.stack([fit_weak_perspective(constrain(lift(net, coords2d, skeleton, dropout=True),
                                                              skeleton, ratios), coords2d, conf2d)
                               for _ in range(cfg.dropout_samples)])
        spread = (samples - samples.mean(0)).norm(dim=-1).pow(2).mean(0).sqrt()
        conf3d = torch.exp(-spread / size / cfg.reprojection_scale)
    elif ev == "views":
        if view_heatmaps is None or len(view_heatmaps) < 2:
            raise ConfigError("M_3D evidence 'views' needs the teacher's heatmaps of at least two views",
                              "set mean_teacher.teacher_views >= 2 and pass view_heatmaps to make_pseudo_labels")
        reproj = []
        for hm in view_heatmaps:
            xy, _ = argmax_2d(hm)
            reproj.append(fit_weak_perspective(constrain(lift(net, xy, skeleton), skeleton, ratios), coords2d, conf2d))
        reproj = torch.stack(reproj)
        spread = (reproj - reproj.mean(0)).norm(dim=-1).pow(2).mean(0).sqrt()
        conf3d = torch.exp(-spread / size / cfg.reprojection_scale)
    else:  # heatmap: the teacher's support at the reprojected position (shares M_2D's evidence)
        conf3d = heat_at(base_heatmaps, coords3d, loss, sigma)
    m3d = confidence_mask(conf3d, mask_ratio)
    return PseudoLabels(coords2d, coords3d, m2d, m3d, conf2d, conf3d, pose, deviation)


def _pose_size(xy: torch.Tensor) -> torch.Tensor:
    """Each pose's size (B, 1): the longer side of its 2D box."""
    return (xy.max(1).values - xy.min(1).values).max(-1).values.clamp_min(1e-6)[:, None]


def strategy_terms(labels: PseudoLabels, strategy: str, combined: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The (name, label coordinates, mask) terms of the consistency loss; weight each by
    :meth:`PseudoConfig.term_weight` so that every strategy's total weight is equal."""
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
