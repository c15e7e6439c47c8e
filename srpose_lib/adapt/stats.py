"""Per-epoch instruments of the adaptation loop, as callbacks of :func:`..train.loop.run_epochs`.

* :class:`PseudoLabelStats` — the pseudo-label analyses (target ground truth is used here
  only, never for training): the M_2D/M_3D overlap (Jaccard, Table B(b)), the mask shares,
  the share of used pseudo-labels that are correct (within PCK@0.05 of the truth), the
  coincidence of wrong labels between consecutive epochs (|W_{t-1} ∩ W_t| / |W_{t-1} ∪ W_t|,
  Table B(b)) and the cumulative share of training labels correct at least once
  (saturation, supplementary §C.2). Counts stay on the device during an epoch (one
  synchronisation per epoch); under torchrun they are all-reduced at its end (counts: SUM,
  per-image flags: MAX), so every rank records the global batch's statistics. The mechanism
  instruments too: for each mask (M_2D, M_3D, the 2D labels M_3D removes, the 3D labels it
  adds) its precision (share of its labels correct at PCK@0.05) and coverage (share of all
  joints it selects), and the error taxonomy of the wrong labels the strategy used
  (jitter / inversion / swap / miss, after Ronchi & Perona, ICCV 2017,
  https://arxiv.org/abs/1707.05388), as record fields ``precision/<mask>``,
  ``coverage/<mask>``, ``errors/<type>`` (:func:`instrument_metrics` names them), and the
  number of pseudo-labels the loss used (``labels_used``).
* :class:`CombineMasks` — ours: combine M_2D and M_3D once their overlap reaches
  ``pseudo.combine_overlap`` (part of the method; resumable).
* :class:`GradientRatioProbe` — +rec: the norm of the keypoint gradient (at the pose net's
  last layer) of λ_rec · L_rec over that of λ_c · L_cons, every ``rec.grad_every`` iterations;
  and in the same iterations whether -∇L_rec at the student's driving keypoints points towards
  the ground truth (``grad_toward_gt/<group>``, ``grad_toward_gt/err_lt_2px`` ...: does L_rec
  carry correction signal in training, not only in notebook 04's demo?).
"""

from __future__ import annotations

import torch

from ..data.transforms import warp_keypoints
from ..eval import instruments as ins
from ..skeletons import Skeleton
from ..train import distributed
from ..train.loop import Callback
from .config import AdaptConfig

MASKS = ("m2d", "m3d", "m2d_not_m3d", "m3d_not_m2d")


class PseudoLabelStats(Callback):
    """The pseudo-label analyses of every epoch (fields of the epoch's record)."""

    def __init__(self, split, cfg: AdaptConfig, device: torch.device | str = "cpu", skeleton: Skeleton | None = None):
        self.split = split
        self.skeleton = skeleton if skeleton is not None else split.skeleton
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
        self.counts = {k: zero() for k in ("inter", "union", "used", "correct", "m2d", "m3d", "joints")}
        for m in MASKS:
            self.counts[f"sel/{m}"], self.counts[f"ok/{m}"] = zero(), zero()
        for t in ins.ERROR_TYPES:
            self.counts[f"err/{t}"] = zero()
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
        thresh = 0.05 * self.h
        c["joints"] += labels.m2d.numel()
        ok2 = ins.correct(labels.coords2d, gt, thresh)
        sets = {"m2d": (labels.m2d, ok2)}
        if labels.m3d is not None:
            ok3 = ins.correct(labels.coords3d, gt, thresh)
            sets.update({"m3d": (labels.m3d, ok3), "m2d_not_m3d": (labels.m2d & ~labels.m3d, ok2),
                         "m3d_not_m2d": (labels.m3d & ~labels.m2d, ok3)})
        for name, (sel, ok) in sets.items():
            c[f"sel/{name}"] += sel.sum()
            c[f"ok/{name}"] += (sel & ok).sum()
        cols = torch.arange(labels.m2d.shape[1], device=self.device)[None].expand_as(labels.m2d)
        rows = idx[:, None].expand_as(labels.m2d)
        for _, coords, mask in pb.terms:
            code = ins.classify_errors(coords, gt, thresh, self.skeleton)
            for i, t in enumerate(ins.ERROR_TYPES):
                c[f"err/{t}"] += ((code == i + 1) & mask).sum()
            ok = (coords - gt).norm(dim=-1) < thresh
            c["used"] += mask.sum()
            c["correct"] += (mask & ok).sum()
            self.wrong[rows[mask & ~ok], cols[mask & ~ok]] = True
            self.right[rows[mask & ok], cols[mask & ok]] = True

    def _all_reduce(self) -> None:
        """Under torchrun each rank counted its rows: the counts are summed and the per-image
        flags OR-ed (MAX) over the ranks, so every rank records (and keeps, for the next
        epoch and a resume) the global batch's statistics."""
        ctx = distributed.context()
        if not ctx.distributed:
            return
        keys = list(self.counts)
        extra = torch.tensor([self.total, int(self.has_m3d)], dtype=torch.long, device=self.device)
        summed = ctx.sum(torch.cat([torch.stack([self.counts[k] for k in keys]), extra]))
        self.counts = dict(zip(keys, summed[:len(keys)]))
        self.total, self.has_m3d = int(summed[-2]), bool(summed[-1] > 0)
        flags = ctx.max(torch.stack([self.wrong, self.right]).to(torch.uint8)).bool()
        self.wrong, self.right = flags[0], flags[1]

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        self._all_reduce()
        c = {k: int(v) for k, v in self.counts.items()}
        wrong = self.wrong.cpu()
        self.ever_correct |= self.right.cpu()
        inter, union = int((wrong & self.wrong_prev).sum()), int((wrong | self.wrong_prev).sum())
        self.wrong_prev = wrong
        record.update({
            "overlap": c["inter"] / c["union"] if c["union"] else None,  # None without M_3D
            "m2d_share": c["m2d"] / max(1, self.total), "m3d_share": c["m3d"] / max(1, self.total),
            "correct": c["correct"] / max(1, c["used"]),
            "labels_used": c["used"],  # pseudo-labels the loss used in the epoch (all ranks together)
            "wrong_coincidence": inter / union if union and epoch > 0 else None,  # needs two epochs
            "saturation": float(self.ever_correct.float().mean()),
        })
        wrong_used = sum(c[f"err/{t}"] for t in ins.ERROR_TYPES)
        for m in MASKS:
            if m == "m2d" or self.has_m3d:
                record[f"precision/{m}"] = c[f"ok/{m}"] / c[f"sel/{m}"] if c[f"sel/{m}"] else None
                record[f"coverage/{m}"] = c[f"sel/{m}"] / max(1, c["joints"])
        for t in ins.ERROR_TYPES:
            record[f"errors/{t}"] = c[f"err/{t}"] / wrong_used if wrong_used else None


def instrument_metrics(history: list[dict], task: str, strategy: str) -> dict:
    """The per-epoch instruments of an adaptation history under the metric names
    ``pl/<task>/<strategy>/{precision,coverage}/<mask>/epoch_<N>`` and
    ``pl/<task>/<strategy>/errors/<type>/epoch_<N>`` (plus ``overlap``)."""
    out = {}
    for r in history:
        parts = {k: v for k, v in r.items() if k.split("/")[0] in ("precision", "coverage", "errors")}
        if r.get("overlap") is not None:
            parts["overlap"] = r["overlap"]
        out.update(ins.named(parts, f"pl/{task}/{strategy}", r["epoch"]))
    return out


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
        self.toward: list[dict] = []  # grad-toward-truth shares of the probed iterations
        self.lam = 0.0
        if self.rec is not None:
            self.rec.probe = True  # the epoch's first iteration is probed too

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
        if self.rec is not None:
            if self.rec.last_probe is not None:
                self.toward.append(self.rec.last_probe)
                self.rec.last_probe = None
            self.rec.probe = (it + 1) % self.every == 0  # measure in the next iteration's L_rec

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        if self.rec is not None:
            record["lambda_rec"] = self.lam
            record["grad_ratio"] = sum(self.ratios) / len(self.ratios) if self.ratios else None
            for key in sorted({k for d in self.toward for k in d}):
                vals = [d[key] for d in self.toward if d.get(key) is not None]
                record[f"grad_toward_gt/{key}"] = sum(vals) / len(vals) if vals else None


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


def rec_instrument_metrics(history: list[dict], task: str) -> dict:
    """+rec's grad-toward-truth shares under ``rec/<task>/grad_toward_gt/<part>/epoch_<N>``."""
    out = {}
    for r in history:
        parts = {k: v for k, v in r.items() if k.startswith("grad_toward_gt/")}
        out.update(ins.named(parts, f"rec/{task}", r["epoch"]))
    return out
