"""The reconstruction loss as a keypoint signal, with nothing learned: the mechanism test.

With analytic masks (:func:`~srpose_lib.recon.geometry.analytic_warp`) and an **oracle
inpainting map** — the pixels that the warp with the *true* keypoints explains (the rest,
disocclusions and lighting changes, is filled from the driving image itself) — gradient
steps on noisy driving keypoints through L_rec should pull them back towards the truth.
If they do not, no learned W + G can do better; if they do, the learned model's job is to
come close to this oracle (diagnostics in :mod:`srpose_lib.adapt.geometric`).
"""

from __future__ import annotations

import torch

from ..skeletons import Skeleton
from . import geometry as geo
from .losses import RecLossConfig, reconstruction_loss


@torch.no_grad()
def oracle_inpainting(base: torch.Tensor, driving: torch.Tensor, p_base: torch.Tensor, p_driving_true: torch.Tensor,
                      skeleton: Skeleton, background: torch.Tensor | None = None, threshold: float = 0.1,
                      sigma: float = 0.12) -> torch.Tensor:
    """C (B, 1, S, S): 1 where the analytic warp with the true keypoints reproduces the
    driving pixel to within ``threshold`` (mean over channels), else 0."""
    warped = geo.analytic_warp(base, p_base, p_driving_true, skeleton, sigma=sigma, background_affine=background)["warped"]
    return ((warped - driving).abs().mean(1, keepdim=True) < threshold).float()


def refine_driving_keypoints(base: torch.Tensor, driving: torch.Tensor, p_base: torch.Tensor, p_driving: torch.Tensor,
                             skeleton: Skeleton, occlusion: torch.Tensor, background: torch.Tensor | None = None,
                             steps: int = 200, lr: float = 0.1, sigma: float = 0.12,
                             loss: RecLossConfig = RecLossConfig(), record_every: int = 0) -> tuple[torch.Tensor, list]:
    """Adam on the driving keypoints (B, K, 2), pixels, through L_rec of the analytic warp
    blended with ``occlusion``: Î = C ⊙ warp(I_b, D(p_b, p_d)) + (1 − C) ⊙ I_d. Returns the
    refined keypoints and, every ``record_every`` steps, ``(step, loss, keypoints)``."""
    p = p_driving.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)
    trace = []
    for step in range(steps):
        warped = geo.analytic_warp(base, p_base, p, skeleton, sigma=sigma, background_affine=background)["warped"]
        pred = occlusion * warped + (1 - occlusion) * driving
        value = reconstruction_loss(pred, driving, loss)
        if record_every and step % record_every == 0:
            trace.append((step, value.item(), p.detach().clone()))
        opt.zero_grad()
        value.backward()
        opt.step()
    return p.detach(), trace
