"""Mechanism instruments: what the pseudo-label masks select and what the reconstruction
gradient does, as pure functions of tensors (no training state), returning plain dicts.

* :func:`mask_metrics` — per mask, **precision** (share of the selected labels that are
  correct at PCK@0.05, the supplementary §C.2 rule) and **coverage** (share selected), and
  what M_3D removes that M_2D keeps (``m2d_not_m3d``) or adds (``m3d_not_m2d``).
* :func:`error_taxonomy` — the wrong selected labels by kind, after Ronchi & Perona,
  "Benchmarking and Error Diagnosis in Multi-Instance Pose Estimation", ICCV 2017:
  **jitter** (near its own joint, outside PCK), **inversion** (on a counterpart: the
  left/right partner for bodies, another joint of the same finger for hands), **swap** (on
  another joint), **miss** (none of these).
* :func:`grad_toward_gt` — the share of keypoints whose −gradient points towards the
  ground truth (cosine > 0 with gt − prediction), per joint group and by error size.

Names follow ``pl/<task>/<strategy>/{precision,coverage}/<mask>/epoch_<N>``,
``pl/<task>/<strategy>/errors/<type>/epoch_<N>`` and
``rec/<task>/grad_toward_gt/<group>/epoch_<N>``: each function returns the part after the
prefix (``precision/m2d``), and :func:`named` adds prefix and epoch.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..skeletons import Skeleton, metric_key

ERROR_TYPES = ("jitter", "inversion", "swap", "miss")
ERROR_SIZES = (("err_lt_2px", 0.0, 2.0), ("err_2_5px", 2.0, 5.0), ("err_gt_5px", 5.0, float("inf")))


def named(parts: dict, prefix: str, epoch: int) -> dict:
    """``{part: v}`` -> ``{f"{prefix}/{part}/epoch_{epoch}": v}``, e.g. prefix
    ``pl/hand/ours`` or ``rec/body``."""
    return {f"{prefix}/{k}/epoch_{epoch}": v for k, v in parts.items()}


def _check(name: str, t: torch.Tensor, shape: tuple) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ConfigError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}",
                          "pass (B, K, 2) keypoints and (B, K) masks of the same batch")


def correct(pred: torch.Tensor, gt: torch.Tensor, thresh: float) -> torch.Tensor:
    """(B, K) bool: the label lies within ``thresh`` of the ground truth (PCK)."""
    return (pred - gt).norm(dim=-1) <= thresh


def _share(num: torch.Tensor, den: torch.Tensor) -> float | None:
    d = int(den.sum())
    return int(num.sum()) / d if d else None


# ----------------------------------------------------------------------------- masks


def mask_metrics(coords2d: torch.Tensor, coords3d: torch.Tensor | None, m2d: torch.Tensor,
                 m3d: torch.Tensor | None, gt: torch.Tensor, thresh: float,
                 valid: torch.Tensor | None = None) -> dict:
    """Precision and coverage of each mask over a batch: ``m2d`` (2D labels), ``m3d`` (3D
    labels), ``union`` (either label under M_2D ∪ M_3D, both counted), ``m2d_not_m3d`` (the
    2D labels M_3D removes) and ``m3d_not_m2d`` (the 3D labels it adds). ``valid`` (B, K)
    limits the count to joints with ground truth. Precision is None for an empty mask."""
    _check("gt", gt, coords2d.shape)
    _check("m2d", m2d, coords2d.shape[:2])
    valid = torch.ones_like(m2d) if valid is None else valid.bool()
    ok2 = correct(coords2d, gt, thresh)
    sets = {"m2d": (m2d, ok2)}
    if coords3d is not None and m3d is not None:
        _check("m3d", m3d, coords2d.shape[:2])
        ok3 = correct(coords3d, gt, thresh)
        union = m2d | m3d
        sets["m3d"] = (m3d, ok3)
        sets["m2d_not_m3d"] = (m2d & ~m3d, ok2)
        sets["m3d_not_m2d"] = (m3d & ~m2d, ok3)
        sets["union"] = (torch.cat([union, union]), torch.cat([ok2, ok3]))
    out = {}
    for name, (mask, ok) in sets.items():
        v = valid if mask.shape == valid.shape else torch.cat([valid, valid])
        out[f"precision/{name}"] = _share(mask & ok & v, mask & v)
        out[f"coverage/{name}"] = _share(mask & v, v)
    return out


def overlap(m2d: torch.Tensor, m3d: torch.Tensor) -> float | None:
    """Jaccard overlap |M_2D ∩ M_3D| / |M_2D ∪ M_3D| (Table B(b))."""
    return _share(m2d & m3d, m2d | m3d)


# ----------------------------------------------------------------------------- errors


def counterparts(skeleton: Skeleton) -> list[tuple[int, ...]]:
    """For every joint, the joints an *inversion* confuses it with: its left/right partner
    (the skeleton's flip pairs) and, for hands, the other joints of the same finger."""
    out = [set() for _ in range(skeleton.num_joints)]
    for a, b in skeleton.flip_pairs:
        out[a].add(b)
        out[b].add(a)
    if skeleton.name == "hand21":
        for j, name in enumerate(skeleton.joint_names):
            if "_" in name:
                finger = name.split("_")[0]
                out[j] |= {i for i, n in enumerate(skeleton.joint_names) if n.startswith(finger + "_") and i != j}
    return [tuple(sorted(s)) for s in out]


def classify_errors(pred: torch.Tensor, gt: torch.Tensor, thresh: float, skeleton: Skeleton,
                    jitter: float = 2.0) -> torch.Tensor:
    """(B, K) codes: 0 correct (within ``thresh``), 1 jitter (within ``jitter`` × thresh of
    its own joint), 2 inversion (within thresh of a counterpart), 3 swap (within thresh of
    any other joint), 4 miss. Jitter is checked first, as Ronchi & Perona do."""
    _check("gt", gt, pred.shape)
    d = torch.cdist(pred.float(), gt.float())  # (B, K, K): label j to ground truth i
    K = pred.shape[1]
    own = d.diagonal(dim1=1, dim2=2)
    cp = torch.zeros(K, K, dtype=torch.bool)
    for j, others in enumerate(counterparts(skeleton)):
        cp[j, list(others)] = True
    other = ~torch.eye(K, dtype=torch.bool)
    near = d <= thresh
    code = torch.full(own.shape, 4, dtype=torch.long)
    code = torch.where((near & other).any(-1), torch.full_like(code, 3), code)
    code = torch.where((near & cp).any(-1), torch.full_like(code, 2), code)
    code = torch.where(own <= jitter * thresh, torch.full_like(code, 1), code)
    return torch.where(own <= thresh, torch.zeros_like(code), code)


def error_taxonomy(pred: torch.Tensor, gt: torch.Tensor, selected: torch.Tensor, thresh: float,
                   skeleton: Skeleton, jitter: float = 2.0) -> dict:
    """Shares of the wrong *selected* labels by type (``errors/<type>``, summing to 1; None
    when no selected label is wrong)."""
    _check("selected", selected, pred.shape[:2])
    code = classify_errors(pred, gt, thresh, skeleton, jitter)[selected.bool()]
    wrong = code > 0
    return {f"errors/{t}": _share(code == i + 1, wrong) for i, t in enumerate(ERROR_TYPES)}


# ----------------------------------------------------------------------------- reconstruction


def grad_toward_gt(pred: torch.Tensor, grad: torch.Tensor, gt: torch.Tensor, skeleton: Skeleton,
                   px_per_unit: float = 1.0) -> dict:
    """Share of keypoints whose −gradient has a positive cosine with (gt − pred), per joint
    group (the skeleton's lower-case group names, ``all`` its All group) and by error size in pixels
    (``err_lt_2px``, ``err_2_5px``, ``err_gt_5px``; ``px_per_unit`` converts the
    coordinates' unit, e.g. the heatmap stride). Keypoints with a zero gradient or no error
    are left out; a group with none left reads None."""
    _check("grad", grad, pred.shape)
    _check("gt", gt, pred.shape)
    step, err = -grad.float(), (gt - pred).float()
    defined = (step.norm(dim=-1) > 0) & (err.norm(dim=-1) > 0)
    toward = ((step * err).sum(-1) > 0) & defined
    out = {}
    for group, joints in skeleton.groups.items():
        sel = torch.zeros(pred.shape[1], dtype=torch.bool)
        sel[list(joints)] = True
        out[metric_key(group)] = _share(toward[:, sel], defined[:, sel])
    if "all" not in out:
        out["all"] = _share(toward, defined)
    size = err.norm(dim=-1) * px_per_unit
    for name, lo, hi in ERROR_SIZES:
        in_bin = defined & (size >= lo) & (size < hi)
        out[name] = _share(toward & in_bin, in_bin)
    return out
