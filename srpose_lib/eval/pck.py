"""PCK@0.05 exactly as the baselines compute it, and a whole-split accumulator.

Heatmap PCK follows TLL ``tllib/utils/metric/keypoint_detection.py`` (``accuracy``;
UniFrame's ``lib/keypoint_detection.py`` is the identical file):

* prediction = argmax of the predicted heatmap; a prediction whose max is <= 0 becomes
  (0, 0) (``get_max_preds``);
* ground truth = argmax of the **GT heatmap** (the rounded cell), again (0, 0) when empty;
* the x error is divided by ``h / 10`` and the y error by ``w / 10`` (TLL passes
  ``[h, w] / 10``; identical for square maps); a hit is a normalised distance < ``thr`` = 0.5,
  i.e. 3.2 cells on 64x64 maps = 12.8 px at 256 = 0.05 x crop side;
* a joint is ignored when its GT x <= 1 or y <= 1: empty GT maps (invisible / off-crop),
  and, as a side effect of the same rule, joints whose GT cell is in the first two rows or
  columns; srpose also ignores a GT map holding a non-finite value (TLL would not meet one).

:class:`PCKAccumulator` counts hits and valid joints over a whole split and groups them
like UniFrame (see its docstring).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError, DataError
from ..keypoints import argmax_2d
from ..skeletons import Skeleton, get_skeleton, metric_key


def _baseline_preds(heatmaps: torch.Tensor) -> torch.Tensor:
    """TLL ``get_max_preds``: argmax cell (x, y), zeroed where the map's max is <= 0."""
    coords, maxvals = argmax_2d(heatmaps)
    return coords * (maxvals > 0)[..., None]


def pck_from_heatmaps(pred_heatmaps: torch.Tensor, gt_heatmaps: torch.Tensor,
                      thr: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-joint PCK hits and validity ``(B, K)`` bool from ``(B, K, h, w)`` heatmaps (TLL ``accuracy``)."""
    if pred_heatmaps.dim() != 4 or pred_heatmaps.shape != gt_heatmaps.shape:
        raise DataError(f"pred and GT heatmaps must both be (B, K, h, w) of the same shape, got "
                        f"{tuple(pred_heatmaps.shape)} and {tuple(gt_heatmaps.shape)}",
                        "evaluate predictions at the heatmap size the targets were made for")
    h, w = gt_heatmaps.shape[-2:]
    pred = _baseline_preds(pred_heatmaps.detach()).double()
    gt = _baseline_preds(gt_heatmaps.detach()).double()
    norm = torch.tensor([h / 10, w / 10], dtype=torch.float64, device=gt.device)
    dist = torch.linalg.vector_norm(pred / norm - gt / norm, dim=-1)
    # a GT map with a NaN or inf cell (a keypoint without a finite position) is no ground truth
    valid = (gt[..., 0] > 1) & (gt[..., 1] > 1) & torch.isfinite(gt_heatmaps.detach()).flatten(-2).all(-1)
    return (dist < thr) & valid, valid


def pck_from_coords(pred_xy: torch.Tensor, gt_xy: torch.Tensor, valid: torch.Tensor,
                    threshold: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PCK on coordinates ``(B, K, 2)``: hit when the Euclidean distance < ``threshold``.

    ``threshold`` is in the coordinates' units (e.g. 0.05 x image side in px) and may be a
    tensor broadcastable to ``(B, K)`` (e.g. per-sample ``(B, 1)``). For maps too small for
    the heatmap rule (on 16x16 maps 0.05 x side is under one cell). Joints whose ground truth
    is not finite are not valid. Returns (hits, valid) bool."""
    if pred_xy.shape != gt_xy.shape or pred_xy.shape[-1:] != (2,) or valid.shape != pred_xy.shape[:-1]:
        raise DataError(f"expected pred/GT (B, K, 2) and valid (B, K); got {tuple(pred_xy.shape)}, "
                        f"{tuple(gt_xy.shape)}, {tuple(valid.shape)}", "pass matching keypoint tensors")
    dist = torch.linalg.vector_norm(pred_xy.detach() - gt_xy.detach(), dim=-1)
    # ground truth without a finite position is not ground truth: never valid, never a miss
    valid = valid.bool() & torch.isfinite(gt_xy.detach()).all(-1)
    return (dist < threshold) & valid, valid


class PCKAccumulator:
    """Per-joint hit / valid counts over a whole split, grouped like UniFrame.

    Per joint: pooled counts, ``100 * sum(hits) / sum(valid)`` over every sample seen, NaN if
    the joint was never valid. UniFrame (``train_human.py: validate``) keeps one meter per
    keypoint updated with each batch's accuracy weighted by *batch size* (batches where the
    joint was never valid skipped); that equals the pooled count whenever every sample of a
    batch is valid, and otherwise depends on how the split is batched, so we pool.
    Per group: the **mean of per-joint accuracies** (UniFrame/TLL
    ``KeypointDataset.group_accuracy``), not pooled counts over the group, so each joint
    weighs the same whatever its visibility rate; TLL's ``erm.py`` instead averages
    per-batch group numbers, which depends on batching. Unlike UniFrame (whose never-updated
    meter reads 0), a never-valid joint is NaN and left out of its groups' means.
    """

    def __init__(self, skeleton: Skeleton | str):
        self.skeleton = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
        self.reset()

    def reset(self) -> None:
        k = self.skeleton.num_joints
        self.hits = torch.zeros(k, dtype=torch.int64)
        self.valid = torch.zeros(k, dtype=torch.int64)

    def update(self, hits: torch.Tensor, valid: torch.Tensor) -> None:
        """Add a batch of ``(B, K)`` hits and validity (as from :func:`pck_from_heatmaps`)."""
        k = self.skeleton.num_joints
        if hits.shape != valid.shape or hits.dim() != 2 or hits.shape[1] != k:
            raise DataError(f"expected hits and valid of shape (B, {k}) for {self.skeleton.name}, "
                            f"got {tuple(hits.shape)} and {tuple(valid.shape)}",
                            "pass the outputs of pck_from_heatmaps / pck_from_coords")
        valid = valid.detach().bool().cpu()
        self.hits += (hits.detach().bool().cpu() & valid).sum(0)
        self.valid += valid.sum(0)

    def merge(self, other: "PCKAccumulator") -> "PCKAccumulator":
        """Add another accumulator's counts (e.g. from another worker); returns self."""
        if other.skeleton.name != self.skeleton.name:
            raise ConfigError(f"cannot merge {other.skeleton.name} counts into {self.skeleton.name}",
                              "merge accumulators of the same skeleton")
        self.hits += other.hits
        self.valid += other.valid
        return self

    def counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the per-joint ``(hits, valid)`` counts, int64 ``(K,)``."""
        return self.hits.clone(), self.valid.clone()

    def per_joint(self) -> torch.Tensor:
        """PCK in percent per joint, float64 ``(K,)``, NaN where never valid."""
        acc = 100.0 * self.hits.double() / self.valid.double().clamp_min(1)
        return torch.where(self.valid > 0, acc, torch.full_like(acc, math.nan))

    def per_group(self) -> dict[str, float]:
        """Display name -> mean of its joints' PCK (NaN joints skipped; NaN if none valid)."""
        acc = self.per_joint()
        return {name: float(acc[list(idx)].nanmean()) for name, idx in self.skeleton.groups.items()}

    def as_metrics(self, prefix: str) -> dict[str, float]:
        """``{f"{prefix}/{group}": pck}`` with lower-case group keys, e.g. ``pck/hand/ours/test/all``."""
        return {f"{prefix}/{metric_key(name)}": v for name, v in self.per_group().items()}
