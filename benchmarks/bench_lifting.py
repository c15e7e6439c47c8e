"""How much the 3D pseudo-label adds, measured on benchmark keypoints (no images, no pose net).

1. Given ground-truth 2D keypoints, the relative reprojection error (mean joint distance /
   the pose's 2D box side) of lifted -> constrained -> reprojected, against two trivial
   lifting stand-ins through the same constraints and reprojection: "copy 2D, depth 0" and
   the mean source pose; and the normalised 3D error before and after the constraints.
2. Teacher-like corrupted 2D labels (Gaussian jitter on every joint; a share of joints moved
   onto another joint or anywhere in the box): the share of 3D labels correct at PCK@0.05 of
   the image, overall and under M_3D for each ``PseudoConfig.m3d_evidence``. The simulated
   heatmaps all peak at 1 on the 2D label, so ``heatmap`` here reads how close the 3D label
   lands to the 2D label (like ``reprojection``), not a teacher's confidence.

    python benchmarks/bench_lifting.py [--mode quick|smoke] [--tasks hand,body] [--split val]

The lifting network is the mode's configuration trained on the source split (seconds to a
minute on a CPU); the evaluation uses the target split named by --split (never tune on test).
"""

from __future__ import annotations

import argparse

import torch

from srpose_lib import presets
from srpose_lib.adapt import lifting as lf
from srpose_lib.adapt.pseudo import PseudoConfig, make_pseudo_labels
from srpose_lib.data.heatmaps import gaussian_targets
from srpose_lib.eval.instruments import correct
from srpose_lib.synth.benchmark import sample_keypoints
from srpose_lib.adapt.lifting_baselines import CopyXY, KeypointSplits, MeanPose


def corrupt(gt: torch.Tensor, rate: float, jitter: float, gen: torch.Generator) -> torch.Tensor:
    B, K, _ = gt.shape
    size = (gt.max(1).values - gt.min(1).values).max(-1).values[:, None, None]
    pred = gt + jitter * size * torch.randn(B, K, 2, generator=gen)
    big = torch.rand(B, K, generator=gen) < rate
    onto = gt[torch.arange(B)[:, None], torch.randint(0, K, (B, K), generator=gen)]
    anywhere = gt.min(1, keepdim=True).values + torch.rand(B, K, 2, generator=gen) * size
    half = torch.rand(B, K, generator=gen) < 0.5
    return torch.where((big & half)[..., None], onto, torch.where((big & ~half)[..., None], anywhere, pred))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="quick", choices=["quick", "smoke"])
    ap.add_argument("--tasks", default="hand,body")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    args = ap.parse_args()
    for task in args.tasks.split(","):
        cfg = presets.config_for("lifting", args.mode, task)
        bench = cfg.benchmark
        net, ratios = lf.load_lifting(lf.train_lifting(cfg, None, KeypointSplits(), log=lambda *_: None, show_progress=False))
        ev = sample_keypoints(bench, "target", args.split)
        sk, xy = ev.skeleton, ev.keypoints
        mean = MeanPose(lf.normalise(sample_keypoints(bench, "source", "train").keypoints3d, lf.ROOT[sk.name])[0])
        rel = {name: lf.relative_reprojection_error(n, ratios, xy, sk) for name, n in
               (("lifted", net), ("copy_2d_depth_0", CopyXY()), ("mean_pose", mean))}
        err = lf.lifting_errors(net, ratios, xy, ev.keypoints3d, sk)
        print(f"{task} ({args.mode}, target {args.split}, n={len(xy)}): relative reprojection error given ground-truth 2D "
              + "  ".join(f"{k} {v:.4f}" for k, v in rel.items())
              + f"; 3D error (normalised) {err['mpjpe']:.3f} -> constrained {err['mpjpe_constrained']:.3f}")
        gt = xy[:256]
        h = bench.image_size  # heatmap cells = pixels here
        for rate, jitter in ((0.05, 0.01), (0.25, 0.02)):
            pred = corrupt(gt, rate, jitter, torch.Generator().manual_seed(0))
            heat, _ = gaussian_targets(pred.clamp(0, h - 1), torch.ones(gt.shape[:2]), h, h, 1.0)
            line = f"  corrupted {rate:.0%} of joints: 2D labels correct {correct(pred, gt, 0.05 * h).float().mean():.2f}"
            for evidence in ("kinematic", "reprojection", "dropout", "heatmap"):
                lab = make_pseudo_labels(heat, "mse", 1.0, 0.5, sk, (net, ratios), PseudoConfig(m3d_evidence=evidence))
                ok3 = correct(lab.coords3d, gt, 0.05 * h)
                line += f" | {evidence}: 3D correct {ok3.float().mean():.2f}, under M_3D {ok3[lab.m3d].float().mean():.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
