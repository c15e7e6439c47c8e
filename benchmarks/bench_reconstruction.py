"""Time and peak memory of one +rec training step at a given size: the pose net f_kp on the
base and driving images, the teacher's keypoints, W + G, L_rec, backward and optimiser steps.

Default: the full-size configuration (ResNet-101 f_kp, 256 px, 64 px heatmaps, K = 21, W and
G as the supplementary describes them, batch 16 pairs used both ways as in training), on CUDA
when available (bfloat16 autocast for f_kp and channels-last, as the training loop does).

    python benchmarks/bench_reconstruction.py [--mode full|quick] [--task hand|body] [--batch 16]
                                              [--steps 5] [--device auto|cpu|cuda]

It prints the parameter counts, the seconds per step (median of ``--steps`` after one warm-up
step) and the peak memory: CUDA's max allocated memory on a GPU, the process's peak resident
set size on a CPU. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from srpose_lib import presets
from srpose_lib.adapt.geometric import soft_keypoints
from srpose_lib.models import build_pose_net
from srpose_lib.models.reconstruction import Reconstructor
from srpose_lib.recon.losses import reconstruction_loss
from srpose_lib.synth.domains import task_skeleton
from srpose_lib.train.precision import autocast
from srpose_lib.utils import resolve_device


def build_rec_step(cfg, task: str, n: int, device, dtype=None):
    """One +rec training step of ``cfg`` (a ``presets.config_for("rec", ...)`` config) on
    random images: ``n`` pairs both ways through f_kp (student and frozen teacher), W + G,
    L_rec, backward and the optimiser step; ``dtype`` is the f_kp autocast (None = fp32).
    Returns ``(step, parts)``; also used by benchmarks/gpu_check.py."""
    pcfg = cfg.pretrain
    sk = task_skeleton(task)
    S, h = pcfg.benchmark.image_size, pcfg.data.target.heatmap_size
    stride = S / h
    student = build_pose_net(pcfg.model, sk.num_joints).to(device)
    teacher = build_pose_net(pcfg.model, sk.num_joints).to(device).eval()
    recon = Reconstructor(cfg.generator.net, sk).to(device)
    opt = torch.optim.Adam(list(student.parameters()) + list(recon.parameters()), lr=1e-4)
    base = torch.rand(n, 3, S, S, device=device)
    driving = torch.rand(n, 3, S, S, device=device)

    def step():
        images = torch.cat([base, driving])
        with autocast(device, dtype):
            heat = student(images)
            with torch.no_grad():
                theat = teacher(images)
        p_s = soft_keypoints(heat.float(), pcfg.train.loss, stride)
        p_t = soft_keypoints(theat.float(), pcfg.train.loss, stride)
        out = recon(torch.cat([base, driving]), torch.cat([p_t[:n], p_t[n:]]), torch.cat([p_s[n:], p_s[:n]]))
        loss = reconstruction_loss(out["prediction"], torch.cat([driving, base]), cfg.generator.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step, {"student": student, "recon": recon, "pcfg": pcfg, "skeleton": sk}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", default="full", choices=("full", "quick"))
    p.add_argument("--task", default="hand", choices=("hand", "body"))
    p.add_argument("--batch", type=int, default=16, help="pairs per step (each used in both directions)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cfg = presets.config_for("rec", args.mode, args.task)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    step, meta = build_rec_step(cfg, args.task, args.batch, device, dtype)
    student, recon, pcfg, sk = meta["student"], meta["recon"], meta["pcfg"], meta["skeleton"]
    n = args.batch
    S, h = pcfg.benchmark.image_size, pcfg.data.target.heatmap_size

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    count = lambda m: sum(q.numel() for q in m.parameters()) / 1e6  # noqa: E731
    print(f"mode {args.mode}, task {args.task} (K={sk.num_joints}), {S} px images, {h} px heatmaps, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"))
    print(f"parameters: f_kp {count(student):.1f} M ({pcfg.model.arch}), W {count(recon.warping):.1f} M, "
          f"G {count(recon.generator):.1f} M ({cfg.generator.net.g_arch})")
    print(f"one step, {n} pairs both ways ({2 * n} images through f_kp, W and G): "
          f"median {statistics.median(times):.3f} s over {args.steps} steps")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    else:
        print(f"peak resident memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
