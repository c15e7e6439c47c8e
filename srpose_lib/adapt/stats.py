"""Per-epoch instruments of the adaptation loop, as callbacks of :func:`..train.loop.run_epochs`.

* :class:`PseudoLabelStats` — the pseudo-label analyses (target ground truth is used here
  only, never for training): the M_2D/M_3D overlap (Jaccard, Table B(b)), the mask shares,
  the share of used pseudo-labels that are correct (within PCK@0.05 of the truth), the
  coincidence of wrong labels between consecutive epochs (|W_{t-1} ∩ W_t| / |W_{t-1} ∪ W_t|,
  Table B(b)) and the cumulative share of training labels correct at least once
  (saturation, supplementary §C.2). Counts stay on the device during an epoch (one
  synchronisation per epoch).
* :class:`CombineMasks` — ours: combine M_2D and M_3D once their overlap reaches
  ``pseudo.combine_overlap`` (part of the method; resumable).
* :class:`GradientRatioProbe` — +rec: the norm of the keypoint gradient (at the pose net's
  last layer) of λ_rec · L_rec over that of λ_c · L_cons, every ``rec.grad_every`` iterations.
"""

from __future__ import annotations

import torch

from ..data.transforms import warp_keypoints
from ..train.loop import Callback
from .config import AdaptConfig


class PseudoLabelStats(Callback):
    """The pseudo-label analyses of every epoch (fields of the epoch's record)."""

    def __init__(self, split, cfg: AdaptConfig, device: torch.device | str = "cpu"):
        self.split = split
        self.device = torch.device(device)
        pcfg = cfg.pretrain
        self.h = pcfg.data.target.heatmap_size
        self.stride = pcfg.benchmark.image_size / self.h
        n, K = len(split), split.keypoints.shape[1]
        self.wrong_prev = torch.zeros(n, K, dtype=torch.bool)  # a used label was wrong in the previous epoch
        self.ever_correct = torch.zeros(n, K, dtype=torch.bool)

    def state_dict(self) -> dict:
        return {"wrong_prev": self.wrong_prev, "ever_correct": self.ever_correct}

    def load_state_dict(self, state: dict) -> None:
        self.wrong_prev, self.ever_correct = state["wrong_prev"].clone(), state["ever_correct"].clone()

    def on_epoch_start(self, epoch: int) -> None:
        zero = lambda: torch.zeros((), dtype=torch.long, device=self.device)  # noqa: E731
        self.counts = {k: zero() for k in ("inter", "union", "used", "correct", "m2d", "m3d")}
        self.total = 0
        self.has_m3d = False
        self.wrong = torch.zeros_like(self.wrong_prev, device=self.device)
        self.right = torch.zeros_like(self.ever_correct, device=self.device)

    def on_step(self, epoch: int, it: int, out: dict) -> None:
        pb, idx = out["pseudo"], out["idx"].to(self.device)
        labels, c = pb.labels, self.counts
        gt = warp_keypoints(self.split.keypoints[idx.cpu()].to(self.device).float(), pb.views.original_to_base)
        gt = gt / self.stride
        c["m2d"] += labels.m2d.sum()
        self.total += labels.m2d.numel()
        if labels.m3d is not None:
            self.has_m3d = True
            c["inter"] += (labels.m2d & labels.m3d).sum()
            c["union"] += (labels.m2d | labels.m3d).sum()
            c["m3d"] += labels.m3d.sum()
        cols = torch.arange(labels.m2d.shape[1], device=self.device)[None].expand_as(labels.m2d)
        rows = idx[:, None].expand_as(labels.m2d)
        for _, coords, mask in pb.terms:
            ok = (coords - gt).norm(dim=-1) < 0.05 * self.h
            c["used"] += mask.sum()
            c["correct"] += (mask & ok).sum()
            self.wrong[rows[mask & ~ok], cols[mask & ~ok]] = True
            self.right[rows[mask & ok], cols[mask & ok]] = True

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        c = {k: int(v) for k, v in self.counts.items()}
        wrong = self.wrong.cpu()
        self.ever_correct |= self.right.cpu()
        inter, union = int((wrong & self.wrong_prev).sum()), int((wrong | self.wrong_prev).sum())
        self.wrong_prev = wrong
        record.update({
            "overlap": c["inter"] / c["union"] if c["union"] else None,  # None without M_3D
            "m2d_share": c["m2d"] / max(1, self.total), "m3d_share": c["m3d"] / max(1, self.total),
            "correct": c["correct"] / max(1, c["used"]),
            "wrong_coincidence": inter / union if union and epoch > 0 else None,  # needs two epochs
            "saturation": float(self.ever_correct.float().mean()),
        })


class CombineMasks(Callback):
    """Ours: from the epoch after the M_2D/M_3D overlap reaches ``pseudo.combine_overlap``
    on, both label sets are guided by M_2D ∪ M_3D. Runs after :class:`PseudoLabelStats`."""

    def __init__(self, cfg: AdaptConfig, log=print, tag: str = ""):
        self.active = cfg.pseudo.strategy == "ours"
        self.threshold = cfg.pseudo.combine_overlap
        self.log, self.tag = log, tag
        self.combined = False

    def state_dict(self) -> bool:
        return self.combined

    def load_state_dict(self, state: bool) -> None:
        self.combined = bool(state)

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        overlap = record.get("overlap")
        if self.active and not self.combined and overlap is not None and overlap >= self.threshold:
            self.combined = True
            self.log(f"{self.tag} masks overlap {overlap:.2f} >= {self.threshold}: combining them from now on")
        record["combined"] = self.combined


class GradientRatioProbe(Callback):
    """+rec: the keypoint-gradient ratio ‖∇_w λ_rec L_rec‖ / ‖∇_w λ_c L_cons‖ at the pose
    net's last layer ``w``, measured before the optimiser step (so the step calls
    :meth:`measure`); per epoch its mean (``grad_ratio``), the last λ_rec (``lambda_rec``).
    Nothing to keep across epochs, so no state."""

    def __init__(self, cfg: AdaptConfig, rec=None):
        self.rec = rec
        self.every = cfg.rec.grad_every if cfg.rec is not None else 0
        self.lambda_c = cfg.mean_teacher.lambda_c

    def on_epoch_start(self, epoch: int) -> None:
        self.ratios: list[float] = []
        self.lam = 0.0

    def measure(self, it: int, student: torch.nn.Module, terms) -> None:
        if self.rec is None or it % self.every or not terms.cons.requires_grad:
            return
        from .geometric import head_weight

        w = head_weight(student)
        g_rec = torch.autograd.grad(terms.lambda_rec * terms.rec, w, retain_graph=True)[0].norm()
        g_pl = torch.autograd.grad(self.lambda_c * terms.cons, w, retain_graph=True)[0].norm()
        self.ratios.append(float(g_rec / g_pl.clamp_min(1e-12)))

    def on_step(self, epoch: int, it: int, out: dict) -> None:
        self.lam = out.get("lambda_rec", 0.0)

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        if self.rec is not None:
            record["lambda_rec"] = self.lam
            record["grad_ratio"] = sum(self.ratios) / len(self.ratios) if self.ratios else None


def describe_epoch(r: dict) -> str:
    """The middle of an adaptation epoch's log line."""
    text = (f"loss {r['loss_src']:.3f} + {r['loss_cons']:.3f}  val PCK {r['val_pck']:5.1f}  "
            f"labels correct {100 * r['correct']:.0f}%")
    if r.get("overlap") is not None:
        text += f"  overlap {r['overlap']:.2f}"
    if "loss_rec" in r:
        ratio = r["grad_ratio"] if r.get("grad_ratio") is not None else float("nan")
        text += f"  rec {r['loss_rec']:.4f} (λ {r['lambda_rec']:.2g}, keypoint-gradient ratio {ratio:.2f})"
    return text
