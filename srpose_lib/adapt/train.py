"""Adaptation training: the mean teacher with 2D or integrated 2D + 3D pseudo-labels.

One loop trains every pseudo-labelling method of the series (``baseline`` = UniFrame's
mean teacher, ``pseudo_m3d``, ``pseudo_union``, ``pseudo_indep``, ``pseudo`` = ours): they
differ only in the pseudo-label strategy (:mod:`srpose_lib.adapt.pseudo`). Student and
teacher start from the pre-trained source model (L_pre-train: source labels with style
augmentation). Per iteration: a source batch (optionally restyled towards the target, s2t)
gives the supervised loss; a target batch gives views, the teacher's pseudo-labels
(teacher inputs optionally restyled towards the source, t2s), occlusion and the masked
consistency loss; then the teacher follows the student by EMA.

**Instrumentation** (target ground truth is used for analysis only, never for training):
per epoch, the M_2D/M_3D overlap, the share of used pseudo-labels that are correct (within
PCK@0.05 of the truth), the coincidence of wrong labels between consecutive epochs
(|W_{t-1} ∩ W_t| / |W_{t-1} ∪ W_t|) and the cumulative share of training labels that were
correct at least once (saturation, supplementary §C.2).

**Model selection**: none — the teacher after the last epoch is the result (a target
validation split with labels would not exist in a real adaptation); the validation PCK is
recorded per epoch for the curves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import to_dict
from ..data.benchmark import BenchmarkData
from ..data.transforms import warp_keypoints
from ..errors import ConfigError, did_you_mean
from ..train.step import checked_step
from ..eval.evaluate import evaluate_pck
from ..models import build_pose_net
from ..synth.domains import task_skeleton
from ..train.cache import FORMAT_VERSION, TrainResult, load_checkpoint
from ..train.losses import build_loss
from ..train.supervised import StyleAugConfig, SupervisedConfig, TrainConfig, build_optimizer
from ..utils import atomic_torch_save, atomic_write_json, progress
from . import mean_teacher as mt
from .lifting import LiftingTrainConfig
from .pseudo import METHODS, PseudoConfig, make_pseudo_labels, overlap_counts, strategy_terms


@dataclass(frozen=True)
class AdaptConfig:
    """Everything that determines an adapted model (the pre-training config included)."""

    method: str = "baseline"
    seed: int = 0
    pretrain: SupervisedConfig = field(default_factory=SupervisedConfig)
    style: object = None  # StyleTrainConfig of the StyleNet, or None for no style augmentation
    style_aug: StyleAugConfig = StyleAugConfig()
    mean_teacher: mt.MeanTeacherConfig = mt.MeanTeacherConfig()
    pseudo: PseudoConfig = PseudoConfig()
    lifting: object = None  # LiftingTrainConfig, needed by every strategy but m2d
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, iters_per_epoch=0, lr=2e-4,
                                                                   milestones=(), loss="kl"))

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"unknown adaptation method {self.method!r}", did_you_mean(self.method, METHODS))
        if METHODS[self.method] != self.pseudo.strategy:
            raise ConfigError(f"method {self.method!r} trains with strategy {METHODS[self.method]!r}, "
                              f"not {self.pseudo.strategy!r}", "build the config with presets.config_for")
        if self.pseudo.strategy != "m2d" and not isinstance(self.lifting, LiftingTrainConfig):
            raise ConfigError(f"method {self.method!r} needs a lifting network config", "set lifting=LiftingTrainConfig(...)")

    @property
    def task(self) -> str:
        return self.pretrain.task


@dataclass
class _Analysis:
    """Per-(image, joint) state across epochs for the pseudo-label analyses."""

    wrong_prev: torch.Tensor  # (N, K) bool: a used label was wrong in the previous epoch
    ever_correct: torch.Tensor  # (N, K) bool
    combined: bool = False  # ours: have the masks been combined yet


def train_adaptation(cfg, run_dir: str | Path, data: BenchmarkData, pretrained: TrainResult,
                     style_net=None, lifting=None, recon=None, device: torch.device | str = "cpu",
                     log: Callable[[str], None] = print, show_progress: bool = True,
                     on_iteration: Callable[[int, int], None] | None = None) -> TrainResult:
    """Adapt the pre-trained model to the target domain; returns the final teacher.

    ``cfg`` is an :class:`AdaptConfig`, or a :class:`~srpose_lib.adapt.geometric.GeometricConfig`
    (methods ``rec``, ``pseudo_rec``) whose ``recon`` (the pre-trained W + G) adds
    λ_rec · L_rec to every iteration."""
    from .geometric import GeometricConfig, RecTerm, head_weight

    geometric = isinstance(cfg, GeometricConfig)
    acfg = cfg.adapt if geometric else cfg
    if geometric and recon is None:
        raise ConfigError(f"method {cfg.method!r} needs the pre-trained W + G", "pass recon=... (Stages.adapted does)")
    device = torch.device(device)
    run_dir = Path(run_dir)
    tag = f"[{cfg.method} {cfg.task}]"
    pcfg = acfg.pretrain
    sk = task_skeleton(cfg.task)
    K = sk.num_joints
    source = data.dataset(pcfg.benchmark, pcfg.data, "source", "train", augment=True)
    target_split = data.split(pcfg.benchmark, "target", "train")
    val = data.dataset(pcfg.benchmark, pcfg.data, "target", "val")
    S = pcfg.benchmark.image_size
    h = pcfg.data.target.heatmap_size
    stride = S / h
    sigma = pcfg.data.target.sigma
    loss_name = acfg.train.loss
    if loss_name != pcfg.train.loss:
        raise ConfigError(f"adaptation loss {loss_name!r} differs from the pre-training loss {pcfg.train.loss!r}",
                          "use the same heatmap loss in both stages (confidences depend on it)")

    torch.manual_seed(acfg.seed)
    student = build_pose_net(pcfg.model, K).to(device)
    teacher = build_pose_net(pcfg.model, K).to(device)
    student.load_state_dict(pretrained.state_dict)
    teacher.load_state_dict(pretrained.state_dict)
    for p in teacher.parameters():
        p.requires_grad_(False)
    optimizer = build_optimizer(student, acfg.train)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(acfg.train.milestones), acfg.train.lr_gamma)
    loss_fn = build_loss(loss_name)
    gen = torch.Generator().manual_seed(acfg.seed + 7)
    n_target = len(target_split)
    analysis = _Analysis(torch.zeros(n_target, K, dtype=torch.bool), torch.zeros(n_target, K, dtype=torch.bool))
    history: list[dict] = []
    start_epoch = 0
    progress_path = run_dir / "progress.pt"
    if progress_path.exists():
        ckpt = load_checkpoint(progress_path, cfg.method, cfg)
        student.load_state_dict(ckpt["student"])
        teacher.load_state_dict(ckpt["teacher"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        analysis = ckpt["analysis"]
        history = ckpt["history"]
        start_epoch = ckpt["epoch"] + 1
        log(f"{tag} resuming after epoch {start_epoch}/{acfg.train.epochs} from {progress_path}")

    rec = RecTerm(cfg, recon, target_split, acfg.train.lr, device) if geometric else None
    if rec is not None and progress_path.exists():
        rec.load_state(ckpt["recon"])
    B = acfg.train.batch_size
    iters = acfg.train.iters_per_epoch or max(1, n_target // B)
    mtc = acfg.mean_teacher
    occ_size = max(1, round(mtc.occlude_size * S / 256))
    stylize = None
    if style_net is not None:
        from ..train.style import stylize
    for epoch in range(start_epoch, acfg.train.epochs):
        t0 = time.perf_counter()
        student.train()
        teacher.train()  # UniFrame: the teacher's BatchNorm uses the statistics of its inputs
        stats = _EpochStats(K)
        src_batches = _endless(source, B, gen, device)
        passes = -(-iters * B // n_target)  # enough shuffled passes over the target split
        order = torch.cat([torch.randperm(n_target, generator=gen) for _ in range(passes)])
        bar = progress(range(iters), desc=f"{tag} epoch {epoch + 1}/{acfg.train.epochs}", leave=False,
                       disable=not show_progress)
        for it in bar:
            src = next(src_batches)
            idx = order[it * B:(it + 1) * B]
            x_s = src["image"]
            x_s_original = x_s
            images = target_split.images[idx].to(device).float().div_(255.0)
            views = mt.make_views(images, mtc, gen)
            teacher_inputs = views.teachers
            with torch.no_grad():
                if stylize is not None:
                    x_s, _ = stylize(style_net, x_s, views.teachers[0], acfg.style_aug.s2t_alpha,
                                     acfg.style_aug.s2t_prob, gen)
                    teacher_inputs = [stylize(style_net, v, x_s_original, acfg.style_aug.t2s_alpha,
                                              acfg.style_aug.t2s_prob, gen)[0] for v in teacher_inputs]
                base_hm = mt.teacher_in_base_frame([teacher(v) for v in teacher_inputs], views, stride)
                labels = make_pseudo_labels(base_hm, loss_name, sigma, mtc.mask_ratio, sk, lifting)
                terms = strategy_terms(labels, acfg.pseudo.strategy, analysis.combined)
                centres = warp_keypoints(labels.coords2d * stride, views.base_to_student)
                candidates = labels.conf2d >= mtc.occlude_thresh
                student_input, _ = mt.occlude(views.student, centres, candidates, mtc.occlude_rate, occ_size, gen)
            out_s = student(x_s).float()
            out_t = student(student_input).float()
            loss_src = loss_fn(out_s, src["heatmaps"], src["weights"])
            loss_cons = out_t.new_zeros(())
            for _, coords, mask in terms:
                pseudo_hm, weight = mt.student_targets(coords, views, h, sigma, stride)
                loss_cons = loss_cons + mt.consistency_loss(out_t, pseudo_hm, mask & (weight > 0), loss_name)
            loss = loss_src + mtc.lambda_c * loss_cons
            if rec is not None:  # + λ_rec L_rec (driving keypoints from the student, base from the teacher)
                lam = rec.weight(epoch * iters + it)
                loss_rec, _ = rec.loss(student, teacher, idx, gen)
                if it % rec.rc.grad_every == 0 and loss_cons.requires_grad:
                    w = head_weight(student)
                    g_rec = torch.autograd.grad(lam * loss_rec, w, retain_graph=True)[0].norm()
                    g_pl = torch.autograd.grad(mtc.lambda_c * loss_cons, w, retain_graph=True)[0].norm()
                    stats.grad_ratios.append(float(g_rec / g_pl.clamp_min(1e-12)))
                loss = loss + lam * loss_rec
                stats.loss_rec += loss_rec.item()
                stats.lam = lam
            checked_step(loss, optimizer, f"{tag} the loss", f"at epoch {epoch + 1}, iteration {it + 1}",
                         f"lower train.lr (now {acfg.train.lr}); finished epochs are kept in {progress_path}")
            if rec is not None:
                rec.step()
            mt.ema_update(teacher, student, mtc.ema)
            gt = warp_keypoints(target_split.keypoints[idx].to(device).float(), views.original_to_base) / stride
            stats.update(idx.cpu(), labels, terms, gt.cpu(), 0.05 * h, loss_src.item(), loss_cons.item())
            if on_iteration is not None:
                on_iteration(epoch, it)
        scheduler.step()
        seconds = time.perf_counter() - t0
        record = stats.finish(analysis, epoch + 1, seconds, iters * B)
        if (acfg.pseudo.strategy == "ours" and not analysis.combined
                and record["overlap"] is not None and record["overlap"] >= acfg.pseudo.combine_overlap):
            analysis.combined = True
            log(f"{tag} masks overlap {record['overlap']:.2f} >= {acfg.pseudo.combine_overlap}: combining them from now on")
        record["combined"] = analysis.combined
        record["val_pck"] = evaluate_pck(teacher, val, acfg.train.eval_batch_size, device).all
        if rec is not None:
            record["loss_rec"] = stats.loss_rec / stats.steps
            record["lambda_rec"] = stats.lam
            record["grad_ratio"] = sum(stats.grad_ratios) / len(stats.grad_ratios) if stats.grad_ratios else None
        history.append(record)
        log(f"{tag} epoch {epoch + 1}/{acfg.train.epochs}  loss {record['loss_src']:.3f} + {record['loss_cons']:.3f}  "
            f"val PCK {record['val_pck']:5.1f}  labels correct {100 * record['correct']:.0f}%  "
            + (f"overlap {record['overlap']:.2f}  " if record["overlap"] is not None else "")
            + (f"rec {record['loss_rec']:.4f} (λ {record['lambda_rec']:.2g}, keypoint-gradient ratio "
               f"{record['grad_ratio'] if record['grad_ratio'] is not None else float('nan'):.2f})  " if rec is not None else "")
            + f"{record['images_per_s']:.0f} img/s  {seconds:.0f}s")
        atomic_write_json(run_dir / "history.json", {"method": cfg.method, "history": history})
        atomic_torch_save({
            "format_version": FORMAT_VERSION, "stage": cfg.method, "config": to_dict(cfg), "epoch": epoch,
            "student": student.state_dict(), "teacher": teacher.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": gen.get_state(), "analysis": analysis, "history": history,
            **({"recon": rec.state()} if rec is not None else {}),
        }, progress_path)

    state = {k: v.detach().cpu().clone() for k, v in teacher.state_dict().items()}
    metrics = {"val_pck": history[-1]["val_pck"], "combined": analysis.combined}
    return TrainResult(cfg.method, cfg, state, history, metrics, run_dir)


class _EpochStats:
    """Accumulates one epoch's pseudo-label statistics."""

    def __init__(self, K: int):
        self.K = K
        self.inter = self.union = 0
        self.used = self.correct = 0
        self.m2d = self.m3d = self.total = 0
        self.wrong: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.right: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.loss_src = self.loss_cons = 0.0
        self.loss_rec = 0.0
        self.lam = 0.0
        self.grad_ratios: list[float] = []
        self.steps = 0

    def update(self, idx, labels, terms, gt_cells, thresh_cells, loss_src, loss_cons):
        m2d = labels.m2d.cpu()
        self.m2d += int(m2d.sum())
        self.total += m2d.numel()
        if labels.m3d is not None:
            i, u = overlap_counts(m2d, labels.m3d.cpu())
            self.inter, self.union = self.inter + i, self.union + u
            self.m3d += int(labels.m3d.sum())
        for _, coords, mask in terms:
            ok = (coords.cpu() - gt_cells).norm(dim=-1) < thresh_cells
            used = mask.cpu()
            self.used += int(used.sum())
            self.correct += int((used & ok).sum())
            rows = idx[:, None].expand_as(used)
            cols = torch.arange(self.K)[None].expand_as(used)
            self.wrong.append((rows[used & ~ok], cols[used & ~ok]))
            self.right.append((rows[used & ok], cols[used & ok]))
        self.loss_src += loss_src
        self.loss_cons += loss_cons
        self.steps += 1

    def finish(self, analysis: _Analysis, epoch: int, seconds: float, images: int) -> dict:
        wrong = torch.zeros_like(analysis.wrong_prev)
        for r, c in self.wrong:
            wrong[r, c] = True
        for r, c in self.right:
            analysis.ever_correct[r, c] = True
        inter = int((wrong & analysis.wrong_prev).sum())
        union = int((wrong | analysis.wrong_prev).sum())
        coincidence = inter / union if union and epoch > 1 else None  # needs two epochs
        analysis.wrong_prev = wrong
        return {
            "epoch": epoch, "loss_src": self.loss_src / self.steps, "loss_cons": self.loss_cons / self.steps,
            "overlap": self.inter / self.union if self.union else None,  # None without M_3D
            "m2d_share": self.m2d / max(1, self.total), "m3d_share": self.m3d / max(1, self.total),
            "correct": self.correct / max(1, self.used), "wrong_coincidence": coincidence,
            "saturation": float(analysis.ever_correct.float().mean()),
            "seconds": seconds, "images_per_s": images / seconds,
        }


def _endless(dataset, batch_size: int, gen: torch.Generator, device):
    while True:
        yield from dataset.batches(batch_size, gen, shuffle=True, drop_last=True, device=device)


def load_teacher(result: TrainResult, device="cpu") -> torch.nn.Module:
    """The adapted teacher of a :class:`TrainResult`, in eval mode."""
    cfg = result.config
    cfg = getattr(cfg, "adapt", None) or cfg  # GeometricConfig: its pseudo-labelling part
    model = build_pose_net(cfg.pretrain.model, task_skeleton(cfg.task).num_joints)
    model.load_state_dict(result.state_dict)
    return model.to(device).eval()

