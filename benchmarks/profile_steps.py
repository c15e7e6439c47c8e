"""Where a quick-mode training step spends its time, per part.

For the supervised pre-training step (source + s2t style) and the adaptation steps of the
Baseline, +pseudo and +rec, runs a handful of iterations with freshly initialised networks
(time does not depend on the weights) and prints the exclusive time of each part: data
(augmentation, heatmap targets), style (StyleNet), views, teacher forward, pseudo-labels,
lifting (+ kinematic constraints), occlusion, student forward, losses, backward + optimiser
step, W + G (reconstruction term), EMA, statistics; and the per-epoch evaluation's share of
an epoch.

Run: ``python benchmarks/profile_steps.py [--iters N] [--task hand] [--precision auto]``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import adaptation_context, quick_splits  # noqa: E402

from srpose_lib.adapt import mean_teacher as mt  # noqa: E402
from srpose_lib.adapt import pseudo, step as astep  # noqa: E402
from srpose_lib.train import step as tstep, style  # noqa: E402


class Parts:
    """Exclusive wall time per named part (nested parts are subtracted from their parent)."""

    def __init__(self):
        self.total: dict[str, float] = {}
        self.stack: list[list] = []  # [name, start, child time]

    def wrap(self, fn, name):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            label = name(self) if callable(name) else name
            self.stack.append([label, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                label, start, child = self.stack.pop()
                spent = time.perf_counter() - start
                self.total[label] = self.total.get(label, 0.0) + spent - child
                if self.stack:
                    self.stack[-1][2] += spent
        return inner

    def patch(self, obj, attr, name):
        setattr(obj, attr, self.wrap(getattr(obj, attr), name))

    def inside(self, label: str) -> bool:
        return any(s[0] == label for s in self.stack)


def _forward_name(role: str):
    return lambda parts: "W + G: pose-net forwards" if parts.inside("W + G") else role


def profile_adaptation(method: str, task: str, iters: int, precision: str, splits, parts: Parts) -> float:
    cfg, p, step = adaptation_context(method, task, precision, splits)
    for _ in range(2):
        step()
    for obj, attr in ((p["source"], "get_batch"),):
        parts.patch(obj, attr, "data (augmentation + targets)")
    parts.patch(p["student"], "forward", _forward_name("student forward"))
    parts.patch(p["teacher"], "forward", _forward_name("teacher forward"))
    if p["style_net"] is not None:
        for attr in ("encode", "transfer_features", "decode"):
            parts.patch(p["style_net"], attr, "style (StyleNet)")
    if p["rec"] is not None:
        parts.patch(p["rec"], "loss", "W + G")
        parts.patch(p["rec"], "step", "W + G")
    parts.patch(p["stats"], "on_step", "statistics")
    parts.total.clear()  # the warm-up iterations do not count
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return time.perf_counter() - t0


def install_global_wrappers(parts: Parts) -> None:
    parts.patch(mt, "make_views", "views")
    parts.patch(mt, "teacher_in_base_frame", "pseudo-labels")
    parts.patch(astep, "make_pseudo_labels", "pseudo-labels")
    parts.patch(pseudo, "lift_and_constrain", "lifting + constraints")
    parts.patch(mt, "occlude", "occlusion")
    parts.patch(mt, "student_targets", "losses")
    parts.patch(mt, "consistency_loss", "losses")
    parts.patch(mt, "ema_update", "EMA")
    parts.patch(tstep, "checked_step", "backward + optimiser step")


def profile_supervised(task: str, iters: int, precision: str, parts: Parts) -> tuple[float, float]:
    """The pre-training step (source batch restyled towards the target with p = 0.5)."""
    from srpose_lib.models import build_pose_net
    from srpose_lib.models.style_net import StyleNet
    from srpose_lib.presets import config_for
    from srpose_lib.data.datasets import KeypointDataset
    from srpose_lib.train.losses import build_loss
    from srpose_lib.train.precision import autocast, resolve_precision
    from srpose_lib.eval.evaluate import evaluate_pck

    cfg = config_for("pretrain", "quick", task, **{"train.precision": precision})
    src, tgt = quick_splits(task)
    ds = KeypointDataset(src, src.skeleton, cfg.data.target, cfg.data.augment)
    model = build_pose_net(cfg.model, src.skeleton.num_joints)
    net = StyleNet(cfg.style.net).eval()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loss_fn = build_loss(cfg.train.loss)
    gen = torch.Generator().manual_seed(0)
    dtype = resolve_precision(cfg.train.precision, "cpu")
    B = cfg.train.batch_size

    def one():
        batch = ds.get_batch(torch.randint(len(ds), (B,), generator=gen), gen)
        refs = tgt.images[torch.randint(len(tgt), (B,), generator=gen)].float().div_(255.0)
        images, _ = style.stylize(net, batch["image"], refs, cfg.style_aug.s2t_alpha, cfg.style_aug.s2t_prob, gen)
        with autocast("cpu", dtype):
            out = model(images)
        loss = parts.wrap(loss_fn, "losses")(out.float(), batch["heatmaps"], batch["weights"])
        tstep.checked_step(loss, opt, "", "", "")

    for _ in range(2):
        one()
    t0 = time.perf_counter()  # the per-epoch validation: cfg.benchmark.num_val images (timed on source images)
    n_val = cfg.benchmark.num_val
    reps = max(1, n_val // len(ds))
    for _ in range(reps):
        evaluate_pck(model, ds, cfg.train.eval_batch_size, "cpu")
    eval_time = (time.perf_counter() - t0) * n_val / (reps * len(ds))
    parts.patch(ds, "get_batch", "data (augmentation + targets)")
    parts.patch(model, "forward", "student forward")
    for attr in ("encode", "transfer_features", "decode"):
        parts.patch(net, attr, "style (StyleNet)")
    parts.total.clear()  # the warm-up iterations and the evaluation do not count
    t0 = time.perf_counter()
    for _ in range(iters):
        one()
    step_time = (time.perf_counter() - t0) / iters
    return step_time, eval_time


def show(title: str, parts: Parts, seconds: float, iters: int, images: int) -> None:
    total = sum(parts.total.values())
    print(f"\n{title}: {1000 * seconds / iters:.0f} ms/iteration, {iters * images / seconds:.0f} images/s "
          f"({iters} iterations)")
    print("| part | ms/iteration | share |\n|---|---:|---:|")
    for name, t in sorted(parts.total.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {1000 * t / iters:.1f} | {100 * t / total:.0f}% |")
    rest = seconds - total
    print(f"| (other: batching glue, indexing) | {1000 * rest / iters:.1f} | {100 * rest / seconds:.0f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--task", default="hand")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    torch.manual_seed(0)
    parts = Parts()
    install_global_wrappers(parts)
    step_time, eval_time = profile_supervised(args.task, args.iters, args.precision, parts)
    show(f"supervised pre-training step ({args.task}, source + s2t style, {args.precision})", parts,
         step_time * args.iters, args.iters, 32)
    iters_per_epoch = 12000 // 32
    share = 100 * eval_time / (eval_time + iters_per_epoch * step_time)
    print(f"per-epoch validation (512 images): {eval_time:.1f} s = {share:.1f}% of a quick epoch "
          f"({iters_per_epoch} iterations)")
    splits = quick_splits(args.task)
    for method in ("baseline", "pseudo", "rec"):
        parts.total.clear()
        seconds = profile_adaptation(method, args.task, args.iters, args.precision, splits, parts)
        show(f"adaptation step {method} ({args.task}, {args.precision})", parts, seconds, args.iters, 32)


if __name__ == "__main__":
    main()
