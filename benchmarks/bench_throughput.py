"""Throughput of the built-in benchmark's renderer and of quick-mode training.

Prints images per second for:
* the renderer at 64 px and 256 px, per task and domain, eager and fused with
  torch.compile (compile time reported separately, not counted);
* quick-mode training: batch building (augmentation + heatmap targets) plus the pose
  net's forward, backward and optimiser step, as the training loop runs them.

Run: ``make bench`` or ``python benchmarks/bench_throughput.py [--quick-only] [--seconds S]``.
Numbers depend on the machine and on what else runs on it; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from srpose_lib.data.datasets import KeypointDataset
from srpose_lib.models import build_pose_net, model_summary
from srpose_lib.presets import benchmark_for, config_for
from srpose_lib.synth.benchmark import Renderer, benchmark_config, render_split, sample_scene_table
from srpose_lib.train.losses import build_loss


def timed(fn, seconds: float) -> tuple[int, float]:
    """Call ``fn`` (which returns a count) until ``seconds`` have passed."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += fn()
    return n, time.perf_counter() - start


def bench_renderer(size: int, compile: bool, seconds: float) -> None:
    chunk = 128 if size == 64 else 16
    for task in ("hand", "body"):
        for domain in ("source", "target"):
            cfg = benchmark_config(task, image_size=size, num_val=4096)
            table = sample_scene_table(cfg, domain, "val")
            renderer = Renderer(cfg, domain, compile=compile, chunk=chunk)
            t0 = time.perf_counter()
            renderer.render(table, torch.arange(chunk))  # warm-up (and compilation)
            warm = time.perf_counter() - t0
            offset = [chunk]

            def step():
                idx = torch.arange(offset[0], offset[0] + chunk * 4) % 4096
                offset[0] += chunk * 4
                renderer.render(table, idx)
                return len(idx)

            n, dt = timed(step, seconds)
            print(f"render {size:3d} px  {task:4s} {domain:6s} {'compiled' if compile else 'eager   '}  "
                  f"{n / dt:7.0f} images/s   (first chunk {warm:5.1f} s, incl. compiling when compiled)", flush=True)


def bench_training(task: str, seconds: float) -> None:
    cfg = config_for("source_only", "quick", task)
    split = render_split(benchmark_for("quick", task, num_train=2048), "source", "train")
    ds = KeypointDataset(split, split.skeleton, cfg.data.target, cfg.data.augment)
    model = build_pose_net(cfg.model, split.skeleton.num_joints)
    summary = model_summary(model, cfg.benchmark.image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loss_fn = build_loss(cfg.train.loss)
    gen = torch.Generator().manual_seed(0)
    B = cfg.train.batch_size

    def step():
        batch = ds.get_batch(torch.randint(len(ds), (B,), generator=gen), gen)
        loss = loss_fn(model(batch["image"]), batch["heatmaps"], batch["weights"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return B

    for _ in range(3):
        step()
    n, dt = timed(step, seconds)
    print(f"train quick {task:4s}: {n / dt:6.0f} images/s  (batch {B}, {cfg.model.arch}, "
          f"{summary['params'] / 1e6:.2f} M params, {summary['mflops']:.0f} MFLOPs/image forward, "
          f"{cfg.benchmark.image_size} px)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per figure")
    parser.add_argument("--quick-only", action="store_true", help="skip the 256 px and eager figures")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_renderer(64, True, args.seconds)
    if not args.quick_only:
        bench_renderer(64, False, args.seconds)
        bench_renderer(256, True, args.seconds)
        bench_renderer(256, False, args.seconds)
    for task in ("hand", "body"):
        bench_training(task, args.seconds)


if __name__ == "__main__":
    main()
