"""One optimiser step that refuses a non-finite loss, shared by every training loop."""

from __future__ import annotations

import torch

from ..errors import TrainingError


def checked_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, what: str, where: str, fix: str) -> None:
    """``zero_grad``, ``backward``, ``step``; a NaN/inf loss raises a TrainingError
    "<what> became <value> <where>" with ``fix`` before any weight changes."""
    if not torch.isfinite(loss):
        raise TrainingError(f"{what} became {loss.item()} {where}", fix)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
