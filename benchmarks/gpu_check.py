"""The GPU check: every training stage at full size, how fast, how much memory, and how the
library's loop compares with a loop in the style of the baselines' code.

    python benchmarks/gpu_check.py                  # on a CUDA machine (benchmarks/gpu_check.sh)
    python benchmarks/gpu_check.py --tiny --device cpu --stages supervised   # seconds, any machine

For each stage — ``supervised`` (f_kp on labelled images), ``baseline`` (mean-teacher step),
``pseudo`` (mean-teacher step plus 3D lifting and kinematic constraints of the pseudo-labels)
and ``rec`` (the +rec step of benchmarks/bench_reconstruction.py) — it times training steps
in fp32 and bf16 autocast, channels-last on and off, after warm-up steps, and reports images/s
(images through the student f_kp per second) and the peak memory (CUDA's max allocated).
The ``reference`` row runs the supervised step the way the baselines' code does it (TLL,
UniFrame): per-sample augmentation and heatmap targets in DataLoader worker processes on the
CPU, fp32, no channels-last; ``ratio`` is the library's best supervised configuration over it.
The ``renderer`` row renders the built-in benchmark on the GPU (torch's default device set
to CUDA), at full size.

The mean-teacher steps are built from the library's public pieces (``adapt.mean_teacher``,
``adapt.lifting``): the student's forward/backward on a view, the teacher's forward on a
second view, a masked consistency loss, the EMA update — the compute of UniFrame's step, not
the project's trainer itself (its step function is being extracted into ``adapt/step.py``;
time that one when it exists). The record goes to ``results/gpu_check-<time>.json`` (or
``--out``) with the machine, versions and git commit, and a short table is printed.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from srpose_lib import presets, utils  # noqa: E402
from srpose_lib.data.datasets import KeypointDataset  # noqa: E402
from srpose_lib.models import build_pose_net  # noqa: E402
from srpose_lib.synth.benchmark import render_split  # noqa: E402
from srpose_lib.train.losses import build_loss  # noqa: E402
from srpose_lib.train.precision import autocast  # noqa: E402

STAGES = ("supervised", "baseline", "pseudo", "rec")
VARIANTS = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step, images_per_step: int, device, warmup: int, steps: int) -> dict:
    """Median seconds per step after ``warmup`` steps, images/s and peak memory (MiB)."""
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    s = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"s_per_step": s, "images_per_s": images_per_step / s, "peak_mib": peak, "steps": steps}


def _sizes(tiny: bool, mode: str):
    return ("smoke", 4, 8) if tiny else (mode, 32, 128)  # mode, batch, images rendered


@functools.lru_cache(maxsize=None)
def _split(mode: str, task: str, n: int):
    return render_split(presets.benchmark_for(mode, task, num_train=n), "source", "train")


def supervised_setup(task: str, mode: str, tiny: bool, device, precision: str, channels_last: bool):
    mode, batch, n = _sizes(tiny, mode)
    cfg = presets.config_for("source_only", mode, task, **{"model.channels_last": channels_last})
    split = _split(mode, task, n)
    ds = KeypointDataset(split, split.skeleton, cfg.data.target, cfg.data.augment)
    model = build_pose_net(cfg.model, split.skeleton.num_joints).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loss_fn = build_loss(cfg.train.loss)
    return cfg, ds, model, opt, loss_fn, batch


def supervised_step(task, mode, tiny, device, precision, channels_last):
    """The library's loop: the batch built on the device (augmentation and targets as tensor
    ops), autocast per the precision, the optimiser step (as train_supervised)."""
    cfg, ds, model, opt, loss_fn, batch = supervised_setup(task, mode, tiny, device, precision, channels_last)
    gen = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        b = ds.get_batch(torch.randint(len(ds), (batch,), generator=gen), gen, device)
        images = b["image"].contiguous(memory_format=torch.channels_last) if channels_last else b["image"]
        with autocast(device, dtype):
            out = model(images)
        loss = loss_fn(out.float(), b["heatmaps"], b["weights"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, batch


class _PerSample(torch.utils.data.Dataset):
    """Per-sample augmentation and targets on the CPU, as the baselines' datasets do it."""

    def __init__(self, ds: KeypointDataset):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        b = self.ds.get_batch(torch.tensor([i]))
        return b["image"][0], b["heatmaps"][0], b["weights"][0]


def reference_step(task, mode, tiny, device, workers: int):
    """The baselines' style: a DataLoader with ``workers`` processes (per-sample transforms),
    pinned memory, fp32, no channels-last, on the same model and batch."""
    cfg, ds, model, opt, loss_fn, batch = supervised_setup(task, mode, tiny, device, "fp32", False)
    loader = torch.utils.data.DataLoader(_PerSample(ds), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)

    def batches():
        while True:
            yield from loader

    it = batches()

    def step():
        images, heatmaps, weights = (t.to(device, non_blocking=True) for t in next(it))
        loss = loss_fn(model(images), heatmaps, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, batch


def mean_teacher_step(task, mode, tiny, device, precision, channels_last, lifting: bool):
    """UniFrame's mean-teacher step from public pieces: the teacher on one view (no grad),
    the student on another, a confidence-masked consistency loss, the optimiser step and the
    EMA update; ``lifting`` adds the +pseudo 3D pseudo-labels (lift, constrain, reproject)."""
    from srpose_lib.adapt.geometric import soft_keypoints
    from srpose_lib.adapt.lifting import LiftingNet, lift_and_constrain
    from srpose_lib.adapt.mean_teacher import ema_update

    mode, batch, _ = _sizes(tiny, mode)
    cfg = presets.config_for("pseudo" if lifting else "baseline", mode, task,
                             **{"pretrain.model.channels_last": channels_last})
    pcfg = cfg.pretrain
    model_cfg = pcfg.model
    batch = batch if tiny else cfg.train.batch_size
    K = 21 if task == "hand" else 16
    student = build_pose_net(model_cfg, K).to(device).train()
    teacher = build_pose_net(model_cfg, K).to(device).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.train.lr)
    S = pcfg.benchmark.image_size
    stride = S / pcfg.data.target.heatmap_size
    loss_fn = build_loss(cfg.train.loss, reduction="none")
    dtype = torch.bfloat16 if precision == "bf16" else None
    views = torch.rand(2, batch, 3, S, S, device=device)
    if channels_last:
        views = torch.stack([v.contiguous(memory_format=torch.channels_last) for v in views])
    if lifting:
        from srpose_lib.synth.domains import task_skeleton

        sk = task_skeleton(task)
        lift = LiftingNet(K, cfg.lifting.net).to(device)
        ratios = torch.ones(len(sk.bones), device=device)

    def step():
        with torch.no_grad(), autocast(device, dtype):
            t_out = teacher(views[0])
        t_out = t_out.float()
        conf = t_out.flatten(2).amax(-1)
        mask = (conf >= conf.median()).float()
        if lifting:
            xy = soft_keypoints(t_out, pcfg.train.loss, stride)
            lift_and_constrain(lift, xy, mask, sk, ratios)
        with autocast(device, dtype):
            s_out = student(views[1])
        loss = (loss_fn(s_out.float(), t_out, mask)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            ema_update(teacher, student, 0.999)

    return step, batch


def rec_step(task, mode, tiny, device, precision, channels_last):
    from bench_reconstruction import build_rec_step

    mode = "smoke" if tiny else mode
    cfg = presets.config_for("rec", mode, task, **{"adapt.pretrain.model.channels_last": channels_last})
    n = 2 if tiny else cfg.rec.batch_size
    step, _ = build_rec_step(cfg, task, n, device, torch.bfloat16 if precision == "bf16" else None)
    return step, 2 * n


def renderer_rate(task: str, tiny: bool, device, seconds: float) -> dict:
    """Images/s of the built-in benchmark's renderer with torch's default device set to ``device``."""
    size, n = (64, 16) if tiny else (256, 256)
    bench = presets.benchmark_for("smoke" if tiny else "full", task, num_train=n)
    try:
        with torch.device(device):
            render_split(bench, "target", "train")  # warm-up
            _sync(device)
            t = time.perf_counter()
            count = 0
            while time.perf_counter() - t < seconds or count == 0:
                count += len(render_split(bench, "target", "train").images)
                _sync(device)
            return {"images_per_s": count / (time.perf_counter() - t), "size": size}
    except Exception as e:  # the renderer may create tensors on the CPU: say so
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}", "size": size}


def run(args) -> dict:
    device = utils.resolve_device(args.device)
    if device.type != "cuda" and not args.tiny:
        raise SystemExit("gpu_check: no CUDA device here. The full-size check needs a GPU "
                         "(run benchmarks/gpu_check.sh on a GPU machine); --tiny --device cpu checks the script.")
    warmup, steps = (1, 2) if args.tiny else (args.warmup, args.steps)
    rows = []
    for stage in args.stages:
        for precision, cl in VARIANTS:
            if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                continue
            if stage == "supervised":
                step, n = supervised_step(args.task, args.mode, args.tiny, device, precision, cl)
            elif stage in ("baseline", "pseudo"):
                step, n = mean_teacher_step(args.task, args.mode, args.tiny, device, precision, cl, stage == "pseudo")
            else:
                step, n = rec_step(args.task, args.mode, args.tiny, device, precision, cl)
            try:
                row = measure(step, n, device, warmup, steps)
            except torch.OutOfMemoryError as e:
                row = {"error": f"out of memory: {str(e).splitlines()[0][:160]}"}
            rows.append({"stage": stage, "precision": precision, "channels_last": cl, "batch": n, **row})
            print(_fmt(rows[-1]), flush=True)
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    record = {"rows": rows}
    if "supervised" in args.stages:
        step, n = reference_step(args.task, args.mode, args.tiny, device, args.workers)
        ref = {"stage": "reference", "precision": "fp32", "channels_last": False, "batch": n,
               "workers": args.workers, **measure(step, n, device, warmup, steps)}
        del step
        rows.append(ref)
        print(_fmt(ref), flush=True)
        best = max((r for r in rows if r["stage"] == "supervised" and "images_per_s" in r),
                   key=lambda r: r["images_per_s"])
        record["ratio_vs_reference"] = {"best": f"{best['precision']}, channels_last {best['channels_last']}",
                                        "ratio": best["images_per_s"] / ref["images_per_s"]}
        print(f"library supervised step ({record['ratio_vs_reference']['best']}) / reference loop: "
              f"{record['ratio_vs_reference']['ratio']:.2f}x (goal at full size: >= 2x)")
    if not args.no_renderer:
        record["renderer"] = renderer_rate(args.task, args.tiny, device, 2.0 if args.tiny else 10.0)
        print(f"renderer on {device}: {record['renderer']}")
    return record


def _fmt(r: dict) -> str:
    head = f"{r['stage']:10s} {r['precision']:5s} channels_last={str(r['channels_last']):5s} batch {r['batch']:3d}"
    if "error" in r:
        return f"{head}  {r['error']}"
    peak = f"{r['peak_mib']:8.0f} MiB" if r.get("peak_mib") is not None else "        n/a"
    return f"{head}  {r['images_per_s']:9.1f} images/s  {r['s_per_step'] * 1000:8.1f} ms/step  peak {peak}"


def table(record: dict) -> str:
    """A Markdown table of the record's rows."""
    lines = ["| stage | precision | channels-last | batch | images/s | peak MiB |", "|---|---|---|---|---|---|"]
    for r in record["rows"]:
        ips = f"{r['images_per_s']:.1f}" if "images_per_s" in r else r.get("error", "")
        peak = f"{r['peak_mib']:.0f}" if r.get("peak_mib") is not None else "n/a"
        lines.append(f"| {r['stage']} | {r['precision']} | {'on' if r['channels_last'] else 'off'} | {r['batch']} | "
                     f"{ips} | {peak} |")
    if "ratio_vs_reference" in record:
        lines.append(f"\nlibrary / reference loop: {record['ratio_vs_reference']['ratio']:.2f}x "
                     f"({record['ratio_vs_reference']['best']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="hand", choices=("hand", "body"))
    p.add_argument("--mode", default="full", choices=("full", "quick"))
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated: {', '.join(STAGES)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers of the reference loop")
    p.add_argument("--tiny", action="store_true", help="smoke-size models and batches: checks the script in seconds")
    p.add_argument("--no-renderer", action="store_true")
    p.add_argument("--out", help="the JSON record (default results/gpu_check-<UTC time>.json)")
    args = p.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        from srpose_lib.errors import did_you_mean

        p.error(f"unknown stage {bad[0]!r}: {did_you_mean(bad[0], STAGES)}")
    t0 = time.time()
    record = run(args)
    device = utils.resolve_device(args.device)
    record.update({
        "task": args.task, "mode": "smoke (--tiny)" if args.tiny else args.mode, "tiny": args.tiny,
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "git_sha": utils.git_sha(), "versions": utils.versions(), "wall_s": time.time() - t0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    out = Path(args.out) if args.out else utils.repo_root() / "results" / \
        f"gpu_check-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    utils.atomic_write_json(out, record)
    print(table(record))
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
