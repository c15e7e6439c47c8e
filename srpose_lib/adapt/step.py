"""The adaptation step: views -> pseudo-labels -> masks -> loss terms.

One iteration of every adaptation method of the series (UniFrame's mean teacher, the
paper's Baseline; the integrated 2D + 3D pseudo-labels of +pseudo, supplementary §C; the
reconstruction term of +rec, supplementary §A), as plain functions that the training loop
(:func:`srpose_lib.adapt.train.train_adaptation`) and notebook 03 both call:

1. :func:`pseudo_label_batch` — a target batch gets its base frame and random views; the
   teacher predicts on its views (restyled towards the source, t2s, when a StyleNet is
   given; the source batch is restyled towards the target, s2t, at the same time); its
   heatmaps are warped back to the base frame and become rectified pseudo-labels with their
   masks (M_2D, and M_3D with a lifting network); confident keypoints are occluded in the
   student's view.
2. :func:`adaptation_losses` — the student's supervised loss on the source batch, the
   masked consistency loss on its view of the target batch, and (``rec``) λ_rec · L_rec.

The optimiser step, the EMA update of the teacher and the statistics stay in the loop.
Forward passes run under the precision policy's autocast (``dtype``); every loss is
computed in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.transforms import warp_keypoints
from ..skeletons import Skeleton
from ..train.distributed import Rows
from ..train.precision import autocast
from . import mean_teacher as mt
from .config import AdaptConfig
from .pseudo import PseudoLabels, make_pseudo_labels, strategy_terms


@dataclass
class PseudoBatch:
    """A target batch after step 1: everything the losses and the statistics need."""

    views: mt.TargetViews
    teacher_heatmaps: list[torch.Tensor]  # the teacher's heatmaps in each of its views, fp32
    base_heatmaps: torch.Tensor  # (B, K, h, h) the teacher's heatmaps in the base frame, fp32
    labels: PseudoLabels  # coordinates (heatmap cells, base frame), confidences, masks
    terms: list[tuple[str, torch.Tensor, torch.Tensor]]  # (name, coordinates, mask) of the consistency loss
    centres: torch.Tensor  # (B, K, 2) the labels in the student's view, pixels
    student_input: torch.Tensor  # the student's view, occluded
    occluded: torch.Tensor  # (B,) which images had a keypoint hidden
    source: torch.Tensor | None  # the source images, restyled towards the target (s2t) or as given


def pseudo_label_batch(cfg: AdaptConfig, teacher: torch.nn.Module, images: torch.Tensor, skeleton: Skeleton,
                       generator: torch.Generator, lifting=None, combined: bool = False, style_net=None,
                       source: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                       rows: Rows | None = None) -> PseudoBatch:
    """Views, the teacher's pseudo-labels, their masks and the occluded student view of
    target ``images`` (B, 3, S, S) in [0, 1]. ``lifting``: (net, bone ratios) for 3D labels;
    ``combined``: ours, after the masks' overlap passed its threshold; ``style_net`` with
    ``source``: UniFrame's s2t / t2s style augmentation. Random draws, in this order, from
    ``generator``: views, s2t, t2s per teacher view, occlusion.

    ``rows`` (under torchrun, train/distributed.py): ``images`` is the *global* batch, whose
    views are drawn (and warped) whole so that the generator advances as on one process; the
    rank keeps its rows of them, and ``source`` is already its rows. The teacher, the
    pseudo-labels, their masks (the confidence quantile of the rank's rows) and the occlusion
    see the rank's rows only; the returned batch holds them."""
    pcfg, mtc = cfg.pretrain, cfg.mean_teacher
    S, h = pcfg.benchmark.image_size, pcfg.data.target.heatmap_size
    stride = S / h
    views = mt.make_views(images, mtc, generator)
    if rows is not None:
        views = views.select(rows.rows)
    teacher_inputs = views.teachers
    with torch.no_grad():
        if style_net is not None:
            from ..train.style import stylize

            original, features = source, {}  # s2t and t2s encode the same two batches: once each
            source, _ = stylize(style_net, source, views.teachers[0], cfg.style_aug.s2t_alpha,
                                cfg.style_aug.s2t_prob, generator, dtype, features)
            teacher_inputs = [stylize(style_net, v, original, cfg.style_aug.t2s_alpha, cfg.style_aug.t2s_prob,
                                      generator, dtype, features)[0] for v in teacher_inputs]
        with autocast(images.device, dtype):
            heatmaps = [teacher(v).float() for v in teacher_inputs]
        loss = pcfg.train.loss
        base_hm = mt.teacher_in_base_frame(heatmaps, views, stride, loss)  # KL logits: -inf outside a view
        per_view = ([mt.teacher_in_base_frame([hm], views, stride, loss) for hm in heatmaps]
                    if cfg.pseudo.m3d_evidence == "views" and lifting is not None else None)
        labels = make_pseudo_labels(base_hm, loss, pcfg.data.target.sigma, mtc.mask_ratio, skeleton,
                                    lifting, cfg.pseudo, per_view)
        terms = strategy_terms(labels, cfg.pseudo.strategy, combined)
        centres = warp_keypoints(labels.coords2d * stride, views.base_to_student)
        candidates = labels.conf2d >= mtc.occlude_thresh
        occ_size = max(1, round(mtc.occlude_size * S / 256))
        student_input, occluded = mt.occlude(views.student, centres, candidates, mtc.occlude_rate, occ_size, generator,
                                             rows)
    return PseudoBatch(views, heatmaps, base_hm, labels, terms, centres, student_input, occluded, source)


@dataclass
class LossTerms:
    """The loss of one adaptation iteration and its parts (fp32 scalars)."""

    total: torch.Tensor  # L_src + λ_c L_cons (+ λ_rec L_rec)
    src: torch.Tensor
    cons: torch.Tensor  # unweighted L_cons
    rec: torch.Tensor | None = None  # unweighted L_rec (+rec)
    lambda_rec: float = 0.0


def adaptation_losses(cfg: AdaptConfig, student: torch.nn.Module, source_batch: dict, pb: PseudoBatch,
                      loss_fn, dtype: torch.dtype | None = None) -> LossTerms:
    """L_src on the (restyled) source batch and the masked consistency loss of the student's
    view against every pseudo-label term (:func:`pseudo_label_batch`)."""
    pcfg, mtc = cfg.pretrain, cfg.mean_teacher
    h, sigma = pcfg.data.target.heatmap_size, pcfg.data.target.sigma
    stride = pcfg.benchmark.image_size / h
    with autocast(pb.student_input.device, dtype):
        out_s = student(pb.source).float()
        out_t = student(pb.student_input).float()
    loss_src = loss_fn(out_s, source_batch["heatmaps"], source_batch["weights"])
    loss_cons = out_t.new_zeros(())
    w = cfg.pseudo.term_weight(pb.terms)  # equal total weight for one- and two-term strategies
    for _, coords, mask in pb.terms:
        pseudo_hm, weight = mt.student_targets(coords, pb.views, h, sigma, stride)
        loss_cons = loss_cons + w * mt.consistency_loss(out_t, pseudo_hm, mask & (weight > 0), pcfg.train.loss)
    return LossTerms(loss_src + mtc.lambda_c * loss_cons, loss_src, loss_cons)


def add_reconstruction(terms: LossTerms, rec, student, teacher, idx: torch.Tensor, generator: torch.Generator,
                       step: int) -> LossTerms:
    """+rec: λ_rec · L_rec on target pairs of the batch's images ``idx`` (driving keypoints
    from the student, base keypoints from the teacher; :class:`.geometric.RecTerm`); λ_rec
    follows its ramp at global iteration ``step``."""
    lam = rec.weight(step)
    loss_rec, _ = rec.loss(student, teacher, idx, generator)
    return LossTerms(terms.total + lam * loss_rec, terms.src, terms.cons, loss_rec, lam)
