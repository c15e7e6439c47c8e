"""Evaluate a pose network on a whole split: PCK@0.05 per joint and per group.

The headline number is the baselines' heatmap PCK (:func:`~srpose_lib.eval.pck.pck_from_heatmaps`),
aggregated over the whole split. Beside it: the coordinate variant (local soft-argmax
against the continuous ground truth, hit within 0.05 × the image side), and the heatmap PCK
restricted to visible and to occluded joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..keypoints import heatmap_to_image, local_soft_argmax
from ..skeletons import metric_key
from .pck import PCKAccumulator, pck_from_coords, pck_from_heatmaps


@dataclass
class PCKResult:
    """Accumulators of one evaluation: ``heatmap`` (the baselines' PCK), ``coords``
    (sub-pixel variant), ``visible`` / ``occluded`` (heatmap PCK on those joints only)."""

    heatmap: PCKAccumulator
    coords: PCKAccumulator
    visible: PCKAccumulator
    occluded: PCKAccumulator

    @property
    def groups(self) -> dict[str, float]:
        return self.heatmap.per_group()

    @property
    def all(self) -> float:
        return self.groups["All"]

    def metrics(self, task: str, method: str, split: str) -> dict[str, float]:
        """Metric names ``pck/<task>/<method>/<split>/<group>`` (the runner's naming)."""
        return {f"pck/{task}/{method}/{split}/{metric_key(g)}": v for g, v in self.groups.items()}


@torch.no_grad()
def predict_heatmaps(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = model(images).float()
    model.train(was_training)
    return out


@torch.no_grad()
def evaluate_pck(model: torch.nn.Module, dataset, batch_size: int = 256,
                 device: torch.device | str = "cpu", threshold: float = 0.05) -> PCKResult:
    """PCK of ``model`` on every sample of ``dataset`` (a :class:`KeypointDataset`
    without augmentation), in eval mode."""
    sk = dataset.skeleton
    res = PCKResult(*(PCKAccumulator(sk) for _ in range(4)))
    for batch in dataset.batches(batch_size, shuffle=False, device=device):
        pred = predict_heatmaps(model, batch["image"])
        hits, valid = pck_from_heatmaps(pred, batch["heatmaps"])
        res.heatmap.update(hits, valid)
        vis = batch["visible"] > 0.5
        res.visible.update(hits, valid & vis)
        res.occluded.update(hits, valid & ~vis)
        stride = dataset.image_size / pred.shape[-1]
        xy = heatmap_to_image(local_soft_argmax(pred), stride)
        c_hits, c_valid = pck_from_coords(xy, batch["keypoints"], batch["weights"] > 0,
                                          threshold * dataset.image_size)
        res.coords.update(c_hits, c_valid)
    return res
