"""Trivial lifting baselines a trained lifting network must beat (supervised by tests/test_pseudo.py
and reported by benchmarks/bench_lifting.py), and benchmark annotations without pixels."""

from __future__ import annotations

import torch

from ..synth.benchmark import sample_keypoints


class KeypointSplits:
    """Benchmark annotations without images (the lifting network needs no pixels): a stand-in for
    :class:`..data.benchmark.BenchmarkData` in ``train_lifting``."""

    def split(self, bench, domain, split):
        return sample_keypoints(bench, domain, split)


class CopyXY(torch.nn.Module):
    """The 2D keypoints with depth 0."""

    def forward(self, xy):
        return torch.cat([xy, torch.zeros_like(xy[..., :1])], -1)


class MeanPose(torch.nn.Module):
    """The mean source pose, whatever the input."""

    def __init__(self, poses):
        super().__init__()
        self.pose = poses.mean(0)

    def forward(self, xy):
        return self.pose.expand(xy.shape[0], -1, -1)
