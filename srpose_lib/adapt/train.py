"""Adaptation training: the mean teacher with 2D or integrated 2D + 3D pseudo-labels, and
optionally the reconstruction term (+rec).

One loop trains every adaptation method of the series (``baseline`` = UniFrame's mean
teacher, ``pseudo_m3d``, ``pseudo_union``, ``pseudo_indep``, ``pseudo`` = ours, and
``rec`` / ``pseudo_rec`` with λ_rec · L_rec): they differ only in the pseudo-label strategy
(:mod:`srpose_lib.adapt.pseudo`) and in whether :class:`AdaptConfig` has a ``rec`` term.
Student and teacher start from the pre-trained source model (L_pre-train: source labels with
style augmentation). One iteration is :mod:`srpose_lib.adapt.step` (views -> pseudo-labels
-> masks -> loss terms), then the optimiser step and the EMA update of the teacher; the epochs
run on :func:`srpose_lib.train.loop.run_epochs` (resume, checkpoint, history, log line).

**Instrumentation** (:mod:`srpose_lib.adapt.stats`, callbacks of the loop; target ground
truth is used for analysis only, never for training): per epoch, the M_2D/M_3D overlap, the
share of used pseudo-labels that are correct (within PCK@0.05 of the truth), the coincidence
of wrong labels between consecutive epochs and the cumulative share of training labels that
were correct at least once (saturation, supplementary §C.2); for +rec, the keypoint-gradient
ratio of λ_rec · L_rec to the pseudo-label loss.

**Model selection**: none — the teacher after the last epoch is the result (a target
validation split with labels would not exist in a real adaptation); the validation PCK is
recorded per epoch for the curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..data.benchmark import BenchmarkData
from ..errors import ConfigError
from ..eval.evaluate import evaluate_pck
from ..models import build_pose_net
from ..synth.domains import task_skeleton
from ..train import distributed
from ..train.cache import TrainResult
from ..train.loop import Box, LoopSpec, lr_of, run_epochs
from ..train.losses import build_loss
from ..train.precision import precision_name, resolve_precision
from ..train.step import checked_step
from ..train.supervised import build_optimizer
from . import mean_teacher as mt
from .config import AdaptConfig  # noqa: F401  (re-exported: the adaptation config)
from .stats import CombineMasks, GradientRatioProbe, PseudoLabelStats, describe_epoch
from .step import adaptation_losses, add_reconstruction, pseudo_label_batch


@distributed.aware
def train_adaptation(cfg: AdaptConfig, run_dir: str | Path, data: BenchmarkData, pretrained: TrainResult,
                     style_net=None, lifting=None, recon=None, device: torch.device | str = "cpu",
                     log: Callable[[str], None] = print, show_progress: bool = True,
                     on_iteration: Callable[[int, int], None] | None = None) -> TrainResult:
    """Adapt the pre-trained model to the target domain; returns the final teacher. With
    ``cfg.rec`` (methods ``rec``, ``pseudo_rec``), ``recon`` (the pre-trained W + G) adds
    λ_rec · L_rec to every iteration.

    Under ``torchrun`` (train/distributed.py, "mean teacher"): the student trains in
    DistributedDataParallel; the EMA teacher is a plain copy on every rank, updated from the
    synchronised student; every random draw is made for the global batch and each rank keeps
    its ``batch_size / N`` rows; the statistics are all-reduced; rank 0 evaluates and alone
    writes. +rec is refused there (:func:`check_distributed`)."""
    device, run_dir, pcfg = torch.device(device), Path(run_dir), cfg.pretrain
    tag, sk, dtype = f"[{cfg.method} {cfg.task}]", task_skeleton(cfg.task), _check(cfg, recon, device)
    dctx = distributed.context()
    check_distributed(cfg)
    B, world = cfg.train.batch_size, dctx.world_size
    rows = dctx.rows(B)  # fails early when the batch does not split
    shard = dctx.rows_of(B) if dctx.distributed else None  # one process: the code path of one process
    if not dctx.is_main:
        log = lambda s: None  # noqa: E731 - rank 0 alone logs
    source = data.dataset(pcfg.benchmark, pcfg.data, "source", "train", augment=True)
    target = data.split(pcfg.benchmark, "target", "train")
    val = data.dataset(pcfg.benchmark, pcfg.data, "target", "val")
    torch.manual_seed(cfg.seed)
    student, teacher = _student_and_teacher(cfg, pretrained, sk.num_joints, device)
    net = distributed.wrap(student)  # DDP under torchrun (gradients averaged), the student itself otherwise
    optimizer = build_optimizer(student, cfg.train)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.train.milestones), cfg.train.lr_gamma)
    loss_fn, gen = build_loss(cfg.train.loss), torch.Generator().manual_seed(cfg.seed + 7)
    iters = cfg.train.iters_per_epoch or max(1, len(target) // cfg.train.batch_size)
    rec = _rec_term(cfg, recon, target, device, dtype)
    stats, probe = PseudoLabelStats(target, cfg, device, sk), GradientRatioProbe(cfg, rec)
    masks = CombineMasks(cfg, log, tag)
    epoch_data = Box()  # this epoch's source batches and target order (drawn at its start)
    pos = torch.arange(B, device=device)[rows] + 1  # positions in the global batch (data checksums)

    def begin_epoch(epoch: int) -> None:
        student.train()
        teacher.train()  # UniFrame: the teacher's BatchNorm uses the statistics of its inputs
        epoch_data.value = _epoch_order(source, len(target), iters, B, gen, device)

    def step(epoch: int, it: int) -> dict:
        src_batches, order = epoch_data.value
        src, idx_all = dctx.shard(next(src_batches), B), order[it * B:(it + 1) * B]  # global, then the rows
        idx = idx_all[rows]
        # the views are drawn for the global batch (one process: the batch itself)
        images = target.images[idx_all if shard is not None else idx].to(device).float().div_(255.0)
        pb = pseudo_label_batch(cfg, teacher, images, sk, gen, lifting, masks.combined, style_net, src["image"], dtype,
                                rows=shard)
        terms = adaptation_losses(cfg, net, src, pb, loss_fn, dtype)
        if rec is not None:
            terms = add_reconstruction(terms, rec, student, teacher, idx, gen, epoch * iters + it)
            probe.measure(it, student, terms)
        # the global batch's losses (the same on every rank) and checksums of the data it saw:
        # sum of (index + 1) x (position in the global batch + 1) of the target and source
        # images, and of the pixels of the source batch and of the student's views (before occlusion)
        sums = dctx.sum(torch.stack([
            terms.total.detach().double() / world, terms.src.detach().double() / world,
            terms.cons.detach().double() / world, ((idx.to(device) + 1) * pos).sum().double(),
            ((src["index"] + 1) * pos).sum().double(), src["image"].detach().double().sum(),
            pb.views.student.detach().double().sum()]))
        args = (optimizer, f"{tag} the loss", f"at epoch {epoch + 1}, iteration {it + 1}",
                f"lower train.lr (now {cfg.train.lr}); finished epochs are kept in {run_dir / 'progress.pt'}")
        if not torch.isfinite(sums[0]):  # every rank stops at the same iteration
            checked_step(sums[0], *args)
        checked_step(terms.total, *args)
        if rec is not None:
            rec.step()
        mt.ema_update(teacher, student, cfg.mean_teacher.ema)  # from the synchronised student: the same everywhere
        _, loss_src, loss_cons, t_idx, s_idx, s_pix, t_pix = sums.tolist()  # one device sync
        return {"loss_src": loss_src, "loss_cons": loss_cons, "idx": idx, "pseudo": pb,
                "data_index_sum": t_idx, "data_source_index_sum": s_idx, "data_pixel_sum": s_pix + t_pix,
                **({"loss_rec": terms.rec.item(), "lambda_rec": terms.lambda_rec} if rec is not None else {})}

    def end_epoch(epoch: int, record: dict) -> dict:
        scheduler.step()
        distributed.check_in_sync(student, f"{tag} student")
        distributed.check_in_sync(teacher, f"{tag} EMA teacher")
        distributed.broadcast_buffers(teacher)  # rank 0's BN statistics: one teacher evaluated and saved
        val_pck = evaluate_pck(teacher, val, cfg.train.eval_batch_size, device).all if dctx.is_main else None
        return {"val_pck": dctx.broadcast(val_pck), "lr": lr_of(optimizer)}

    spec = LoopSpec(tag, cfg.method, cfg, run_dir, cfg.train.epochs, iters, B,
                    header={"method": cfg.method, "precision": precision_name(dtype), "world_size": world,
                            **({"sync_batchnorm": dctx.sync_bn} if dctx.distributed else {})})
    state = {"student": student, "teacher": teacher, "optimizer": optimizer, "scheduler": scheduler,
             "generator": gen, **({"recon": rec} if rec is not None else {})}
    history = run_epochs(spec, state, step, end_epoch, begin_epoch, [stats, probe, masks], describe_epoch, log,
                         show_progress, on_iteration, is_main=dctx.is_main, barrier=distributed.barrier)
    result_state = {k: v.detach().cpu().clone() for k, v in teacher.state_dict().items()}
    return TrainResult(cfg.method, cfg, result_state, history,
                       {"val_pck": history[-1]["val_pck"], "combined": masks.combined}, run_dir)


def check_distributed(cfg: AdaptConfig) -> None:
    """Refuse +rec under torchrun: its RecTerm (W + G and the pair images through the
    student) is not data-parallel yet, and running it per rank would silently mis-train."""
    if cfg.rec is not None and distributed.context().distributed:
        raise ConfigError(f"method {cfg.method!r} (+rec) does not train under torchrun yet: its reconstruction "
                          f"term is not data-parallel",
                          "train it in one process (python -m srpose_lib.train ... without torchrun, or a notebook); "
                          "Baseline and the +pseudo methods train data-parallel")


def _check(cfg: AdaptConfig, recon, device) -> torch.dtype | None:
    """Refuse an inconsistent run; returns the autocast dtype of the precision policy."""
    if cfg.rec is not None and recon is None:
        raise ConfigError(f"method {cfg.method!r} needs the pre-trained W + G", "pass recon=... (Stages.adapted does)")
    if cfg.train.loss != cfg.pretrain.train.loss:
        raise ConfigError(f"adaptation loss {cfg.train.loss!r} differs from the pre-training loss "
                          f"{cfg.pretrain.train.loss!r}",
                          "use the same heatmap loss in both stages (confidences depend on it)")
    return resolve_precision(cfg.train.precision, device)


def _student_and_teacher(cfg: AdaptConfig, pretrained: TrainResult, K: int, device):
    """Student and teacher, both the pre-trained model; the teacher takes no gradient."""
    student = build_pose_net(cfg.pretrain.model, K).to(device)
    teacher = build_pose_net(cfg.pretrain.model, K).to(device)
    student.load_state_dict(pretrained.state_dict)
    teacher.load_state_dict(pretrained.state_dict)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return student, teacher


def _rec_term(cfg: AdaptConfig, recon, target, device, dtype):
    if cfg.rec is None:
        return None
    from .geometric import RecTerm

    return RecTerm(cfg, recon, target, cfg.train.lr, device, dtype)


def _epoch_order(source, n_target: int, iters: int, B: int, gen: torch.Generator, device):
    """An epoch's source batches (drawn lazily) and its order of target images: enough
    shuffled passes over the target split for ``iters`` batches of ``B``."""
    src_batches = _endless(source, B, gen, device)
    passes = -(-iters * B // n_target)
    return src_batches, torch.cat([torch.randperm(n_target, generator=gen) for _ in range(passes)])


def _endless(dataset, batch_size: int, gen: torch.Generator, device):
    while True:
        yield from dataset.batches(batch_size, gen, shuffle=True, drop_last=True, device=device)


def load_teacher(result: TrainResult, device="cpu") -> torch.nn.Module:
    """The adapted teacher of a :class:`TrainResult`, in eval mode."""
    cfg = result.config
    model = build_pose_net(cfg.pretrain.model, task_skeleton(cfg.task).num_joints)
    model.load_state_dict(result.state_dict)
    return model.to(device).eval()
