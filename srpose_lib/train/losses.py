"""Heatmap losses of the baselines (TLL ``tllib/vision/models/keypoint_detection/loss.py``,
copied by UniFrame as ``lib/models/loss.py``).

Both take predictions and targets ``(B, K, h, w)`` and optional weights ``(B, K)`` (or
``(B, K, 1)`` as TLL datasets return them; ``None`` = all ones). ``reduction='mean'`` gives
TLL's scalar exactly; ``'none'`` gives per-joint values ``(B, K)`` for both losses (TLL's
KL ``'none'`` also averages over K; we keep K so callers can mask joints).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError, did_you_mean

_REDUCTIONS = ("mean", "none")


def _flatten(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None):
    """(B, K, h, w) pair -> (B, K, h*w) pair and weights (B, K) in the output's dtype."""
    if output.dim() != 4 or output.shape != target.shape:
        raise DataError(f"output and target must both be (B, K, h, w) of the same shape, got "
                        f"{tuple(output.shape)} and {tuple(target.shape)}",
                        "make targets at the network's heatmap size")
    b, k = output.shape[:2]
    if weight is None:
        weight = output.new_ones(b, k)
    elif weight.numel() != b * k:
        raise DataError(f"target_weight must be (B, K) = ({b}, {k}), got {tuple(weight.shape)}",
                        "pass one weight per keypoint")
    return output.flatten(2), target.flatten(2), weight.reshape(b, k).to(output.dtype)


def _reduce(per_joint: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_joint.mean() if reduction == "mean" else per_joint


class _JointsLoss(nn.Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"unknown reduction {reduction!r}", f"use one of {_REDUCTIONS}")
        self.reduction = reduction


class JointsMSELoss(_JointsLoss):
    """``0.5 * (pred - target)^2 * weight``, averaged over pixels, joints and batch (TLL)."""

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        pred, gt, weight = _flatten(output, target, target_weight)
        per_joint = 0.5 * (pred - gt).pow(2).mean(-1) * weight
        return _reduce(per_joint, self.reduction)


class JointsKLLoss(_JointsLoss):
    """KL(target || softmax(pred)) over pixels per joint, x weight, averaged over joints and batch.

    As TLL/RegDA: log-softmax of the prediction over the h*w pixels; the target plus
    ``epsilon`` is L1-normalised; KL summed over pixels. An empty target map (sum 0, e.g. an
    invisible joint) gives 0 here where TLL would give NaN (0/0)."""

    def __init__(self, reduction: str = "mean", epsilon: float = 0.0):
        super().__init__(reduction)
        self.epsilon = epsilon

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        pred, gt, weight = _flatten(output, target, target_weight)
        log_p = F.log_softmax(pred, dim=-1)
        gt = gt + self.epsilon
        q = gt / gt.sum(-1, keepdim=True).clamp_min(torch.finfo(gt.dtype).tiny)
        positive = q > 0
        q_log_q = torch.where(positive, q * torch.log(torch.where(positive, q, torch.ones_like(q))),
                              torch.zeros_like(q))
        per_joint = (q_log_q - q * log_p).sum(-1) * weight
        return _reduce(per_joint, self.reduction)


LOSSES = {"mse": JointsMSELoss, "kl": JointsKLLoss}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Heatmap loss by name: ``"mse"`` (:class:`JointsMSELoss`) or ``"kl"`` (:class:`JointsKLLoss`)."""
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}", did_you_mean(name, LOSSES)) from None
    return cls(**kwargs)
