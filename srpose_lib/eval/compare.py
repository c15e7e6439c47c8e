"""Comparing systems image by image (Fig A of the supplementary): per-image keypoint
errors and the rule that picks the images to show."""

from __future__ import annotations

from typing import Mapping

import torch


def per_image_error(pred_px: torch.Tensor, gt_px: torch.Tensor, valid: torch.Tensor,
                    joints: list[int] | tuple[int, ...] | None = None) -> torch.Tensor:
    """Mean keypoint distance (N,) in pixels over the ``valid`` (N, K) joints (optionally
    only ``joints``); NaN for an image without a valid joint."""
    d = (pred_px.float() - gt_px.float()).norm(dim=-1)
    v = valid.bool().clone()
    if joints is not None:
        keep = torch.zeros(v.shape[1], dtype=torch.bool)
        keep[list(joints)] = True
        v &= keep
    total = (d * v).sum(1)
    count = v.sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def pick_by_spread(errors: Mapping[str, torch.Tensor], n: int, pool: int = 256, seed: int = 0) -> torch.Tensor:
    """Fig A's selection rule, never by hand: among ``pool`` images drawn with ``seed``
    (all of them when there are fewer), the ``n`` with the largest spread of the systems'
    per-image errors (max − min over the systems), largest first; ties go to the lower index."""
    err = torch.stack([e.float() for e in errors.values()])  # (systems, N)
    N = err.shape[1]
    cand = torch.randperm(N, generator=torch.Generator().manual_seed(seed))[:pool].sort().values
    spread = (err[:, cand].amax(0) - err[:, cand].amin(0)).nan_to_num(-1.0)
    order = torch.argsort(-spread, stable=True)  # stable: equal spreads keep index order
    return cand[order[:n]]
