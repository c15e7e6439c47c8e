"""Throughput of the built-in benchmark's renderer and of quick-mode training.

Prints images per second for:
* the renderer at 64 px per task and domain (``--all``: also 256 px, and fused with
  torch.compile, compile time reported separately, not counted);
* the quick training step — batch building (augmentation + heatmap targets) plus the pose
  net's forward, backward and optimiser step, as the training loop runs them — at fp32 and
  at the ``auto`` precision (bf16 autocast where the CPU runs bf16 natively), as lines
  ``train quick <task> fp32: N images/s`` and ``train quick <task> auto: N images/s (<dtype>)``;
* the quick adaptation step of the Baseline, +pseudo and +rec (hand), at ``auto``.

Run: ``make bench`` (about 1-2 minutes) or ``python benchmarks/bench_throughput.py [--all] [--seconds S]``.
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
from srpose_lib.train.precision import autocast, native_bf16, precision_name, resolve_precision


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


def bench_training(task: str, seconds: float, rounds: int = 4) -> dict[str, float]:
    """The quick training step (augmented batch, forward under the precision policy,
    fp32 loss, backward, Adam step), as :func:`srpose_lib.train.supervised.train_supervised`
    runs it, at fp32 and at ``auto``. The two alternate in ``rounds`` short windows, so
    that load from other processes on a shared machine hits both alike; each figure is the
    median over its windows. Returns images/s per precision."""
    cfg = config_for("source_only", "quick", task)
    split = render_split(benchmark_for("quick", task, num_train=512), "source", "train")
    ds = KeypointDataset(split, split.skeleton, cfg.data.target, cfg.data.augment)
    B = cfg.train.batch_size
    loss_fn = build_loss(cfg.train.loss)
    steps, dtypes = {}, {}
    for precision in ("fp32", "auto"):
        torch.manual_seed(0)
        model = build_pose_net(cfg.model, split.skeleton.num_joints)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        gen = torch.Generator().manual_seed(0)
        dtypes[precision] = dtype = resolve_precision(precision, "cpu")

        def step(model=model, optimizer=optimizer, gen=gen, dtype=dtype):
            batch = ds.get_batch(torch.randint(len(ds), (B,), generator=gen), gen)
            with autocast("cpu", dtype):
                out = model(batch["image"])
            loss = loss_fn(out.float(), batch["heatmaps"], batch["weights"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return B

        for _ in range(3):
            step()
        steps[precision] = step
    summary = model_summary(build_pose_net(cfg.model, split.skeleton.num_joints), cfg.benchmark.image_size)
    rates: dict[str, list[float]] = {p: [] for p in steps}
    for _ in range(rounds):
        for precision, step in steps.items():
            n, dt = timed(step, seconds / rounds)
            rates[precision].append(n / dt)
    out = {p: sorted(r)[len(r) // 2] for p, r in rates.items()}
    print(f"train quick {task}: batch {B}, {cfg.model.arch}, {summary['params'] / 1e6:.2f} M params, "
          f"{summary['mflops']:.0f} MFLOPs/image forward, {cfg.benchmark.image_size} px", flush=True)
    print(f"train quick {task} fp32: {out['fp32']:.0f} images/s", flush=True)
    print(f"train quick {task} auto: {out['auto']:.0f} images/s ({precision_name(dtypes['auto'])})", flush=True)
    print(f"train quick {task} auto/fp32: {out['auto'] / out['fp32']:.2f}x", flush=True)
    return out


def quick_splits(task: str, num_images: int = 256):
    """Small quick-mode source and target training splits (rendered once per task)."""
    bench = benchmark_for("quick", task, num_train=num_images)
    return render_split(bench, "source", "train"), render_split(bench, "target", "train")


def adaptation_context(method: str, task: str, precision: str = "auto", splits=None, device="cpu"):
    """Everything one quick-mode adaptation iteration needs, with freshly initialised
    networks (throughput does not depend on the weights): returns (cfg, parts, step) where
    ``step()`` runs one iteration as :func:`srpose_lib.adapt.train.train_adaptation` does
    (pseudo-label batch, losses, optimiser step, W + G step, EMA, statistics)."""
    from srpose_lib.adapt import mean_teacher as mt
    from srpose_lib.adapt.geometric import RecTerm
    from srpose_lib.adapt.lifting import LiftingNet, reference_bone_ratios
    from srpose_lib.adapt.stats import PseudoLabelStats
    from srpose_lib.adapt.step import adaptation_losses, add_reconstruction, pseudo_label_batch
    from srpose_lib.config import override
    from srpose_lib.models.reconstruction import Reconstructor
    from srpose_lib.models.style_net import StyleNet
    from srpose_lib.train.step import checked_step
    from srpose_lib.train.supervised import build_optimizer

    cfg = override(config_for(method, "quick", task), **{"train.precision": precision})
    pcfg = cfg.pretrain
    src_split, target = splits or quick_splits(task)
    sk = src_split.skeleton
    source = KeypointDataset(src_split, sk, pcfg.data.target, pcfg.data.augment)
    torch.manual_seed(0)
    student, teacher = build_pose_net(pcfg.model, sk.num_joints), build_pose_net(pcfg.model, sk.num_joints)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)
    style_net = None
    if cfg.style is not None:
        style_net = StyleNet(cfg.style.net).eval()
        for p in style_net.parameters():
            p.requires_grad_(False)
    lifting = None
    if cfg.lifting is not None:
        lifting = (LiftingNet(sk.num_joints, cfg.lifting.net).eval(), reference_bone_ratios(src_split.keypoints3d, sk))
    dtype = resolve_precision(cfg.train.precision, device)
    rec = RecTerm(cfg, Reconstructor(cfg.generator.net, sk), target, cfg.train.lr, device, dtype) if cfg.rec else None
    optimizer, loss_fn = build_optimizer(student, cfg.train), build_loss(cfg.train.loss)
    gen = torch.Generator().manual_seed(0)
    stats = PseudoLabelStats(target, cfg, device)
    stats.on_epoch_start(0)
    B = cfg.train.batch_size
    parts = {"cfg": cfg, "source": source, "target": target, "student": student, "teacher": teacher,
             "style_net": style_net, "lifting": lifting, "rec": rec, "stats": stats, "dtype": dtype, "B": B}
    count = [0]

    def step() -> int:
        student.train()
        teacher.train()
        src = source.get_batch(torch.randint(len(source), (B,), generator=gen), gen, device)
        idx = torch.randint(len(target), (B,), generator=gen)
        images = target.images[idx].to(device).float().div_(255.0)
        pb = pseudo_label_batch(cfg, teacher, images, sk, gen, lifting, False, style_net, src["image"], dtype)
        terms = adaptation_losses(cfg, student, src, pb, loss_fn, dtype)
        if rec is not None:
            terms = add_reconstruction(terms, rec, student, teacher, idx, gen, count[0])
        checked_step(terms.total, optimizer, "bench", "", "")
        if rec is not None:
            rec.step()
        mt.ema_update(teacher, student, cfg.mean_teacher.ema)
        stats.on_step(0, count[0], {"idx": idx, "pseudo": pb})
        count[0] += 1
        return B

    return cfg, parts, step


ADAPT_NAMES = {"baseline": "Baseline", "pseudo": "+pseudo", "rec": "+rec"}


def bench_adaptation(task: str, seconds: float, precision: str = "auto") -> None:
    """The quick adaptation step of the Baseline, +pseudo and +rec, in target images/s."""
    splits = quick_splits(task)
    for method, name in ADAPT_NAMES.items():
        cfg, parts, step = adaptation_context(method, task, precision, splits)
        for _ in range(2):
            step()
        n, dt = timed(step, seconds)
        print(f"adapt quick {task} {name} {precision}: {n / dt:.0f} images/s ({precision_name(parts['dtype'])})   "
              f"[batch {parts['B']} target + {parts['B']} source images]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per figure")
    parser.add_argument("--all", action="store_true", help="also the compiled and 256 px renderer figures")
    parser.add_argument("--quick-only", action="store_true", help=argparse.SUPPRESS)  # the old default, kept
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {native_bf16('cpu')}")
    bench_renderer(64, False, args.seconds / 2)
    if args.all:
        bench_renderer(64, True, args.seconds)
        bench_renderer(256, True, args.seconds)
        bench_renderer(256, False, args.seconds)
    for task in ("hand", "body"):
        bench_training(task, 2 * args.seconds)
    bench_adaptation("hand", args.seconds)


if __name__ == "__main__":
    main()
