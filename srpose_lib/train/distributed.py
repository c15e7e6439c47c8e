"""Data-parallel training under ``torchrun``: PyTorch's DistributedDataParallel, nothing home-made.

``torchrun --nproc_per_node N -m srpose_lib.train <stage> ...`` starts N processes with the
environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init` joins them into one process group (NCCL on GPUs, gloo on CPUs)
and every trainer asks :func:`context` where it stands. Outside ``torchrun`` the context is a
single process (rank 0 of 1) and every helper here is a no-op, so a trainer written against
this module runs unchanged in a notebook.

Data-parallel now: the supervised stages (``source_only``, ``oracle``, ``pretrain``;
``train_supervised``, train/supervised.py) and the mean teacher (``baseline`` and the +pseudo
methods ``pseudo_m2d``, ``pseudo_m3d``, ``pseudo_union``, ``pseudo_indep``, ``pseudo``;
``train_adaptation``, adapt/train.py). +rec (``rec``, ``pseudo_rec``) is refused under
torchrun (a ConfigError: its RecTerm is not data-parallel yet); every other trainer runs on
rank 0 alone (below).

How a trainer is made distributed (done for ``train_supervised``, train/supervised.py):

* **the same global batch**: every rank draws the *same* global permutation and the same
  augmentation from the same seeded generator (identical on all ranks: the same seed, the
  same number of draws) and keeps its rows (:meth:`DistContext.rows`), ``batch_size / N``
  each, so N processes see exactly the images, augmentations and order that one process
  would. Each rank augments the whole global batch and drops the other rows: the augmentation
  functions draw one random number per image in call order, so drawing only a rank's rows
  would change the stream. The price is the per-batch augmentation N times (tensor ops on
  the device, small beside the network's forward and backward); a ``rows=`` argument to
  ``KeypointDataset.get_batch`` that draws for all rows but warps only the kept ones would
  remove it.
* **gradients** are averaged by DDP (:func:`wrap`) during ``backward``; the heatmap losses
  are means over the batch, so the mean of N equal shards' losses is the global loss and
  the averaged gradient is the one-process gradient (up to BatchNorm, below).
* **BatchNorm**: plain BN normalises each rank's shard with the shard's own statistics
  (``batch_size / N`` images), so the N-process result differs from one process, as the
  gradient noise of a smaller BN batch; DDP broadcasts rank 0's running statistics before
  every forward, so the stored model carries rank 0's. ``sync_bn=True`` (``--sync-bn``)
  converts BN to ``torch.nn.SyncBatchNorm``, which normalises with the global batch's
  statistics, as one process does; PyTorch implements it on GPUs only.
* **logged scalars** are all-reduced in one call (:meth:`DistContext.sum`), so the log and
  ``history.json`` show the global batch's loss, with two checksums of the data seen
  (``data_index_sum``, ``data_pixel_sum``: equal to one process's when the sharding is
  right); a non-finite global loss stops every rank at the same iteration.
* **validation** runs on rank 0 after the BN buffers are made identical on every rank
  (:func:`broadcast_buffers`); its result is broadcast (:meth:`DistContext.broadcast`) so
  every rank keeps the same "best" weights.
* **rank 0 alone writes** checkpoints, ``history.json``, ``final.pt``, the log and the
  progress bar (``run_epochs(..., is_main=...)``, ``cache.get_or_train``); every rank
  resumes from the same ``progress.pt``; the loop waits for the checkpoint at the end of
  every epoch (:func:`barrier`), so an interruption on any rank loses at most the epoch
  under way.
* the trainer is marked with :func:`aware`; ``cache.get_or_train`` runs a trainer that is
  not marked on rank 0 alone while the other ranks wait for its ``final.pt`` and load it
  (correct, not faster).

What the other trainers need (applied to the mean teacher; ``train_supervised`` and
``train_adaptation`` are the worked examples). For each: decorate the trainer with
:func:`aware`, pass ``is_main=ctx.is_main, barrier=barrier`` to ``run_epochs``, drop the
``log`` of non-main ranks, draw global batches and keep :meth:`DistContext.rows`, all-reduce
what the step returns (:meth:`DistContext.sum`), evaluate on rank 0 and broadcast the result,
and call :func:`check_in_sync` at the end of each epoch.

* **mean teacher** (Baseline, +pseudo, adapt/train.py; done): the student in :func:`wrap`; the EMA
  teacher is *not* wrapped: every rank updates it from its own student copy, which DDP keeps
  bitwise identical, so the teachers' parameters stay identical with no communication
  (:func:`check_in_sync` on the teacher at each epoch end proves it). The EMA averages
  parameters only, and the teacher's BatchNorm running statistics come from each rank's own
  rows: :func:`broadcast_buffers` on the teacher before it is evaluated or saved. The views'
  random draws are per image, so draw them for the global batch and keep the rank's rows
  (as the augmentation above: ``make_views`` on the global batch, ``TargetViews.select``;
  the occlusion draws through :class:`Rows`, whose draw that depends on "anything to
  occlude?" is made or skipped on every rank alike); pseudo-labels and masks are computed on
  the rank's rows only (the confidence mask is the quantile of the rank's rows, a deviation
  from one process of the same kind as BatchNorm's); every count the epoch
  statistics keep (mask sizes, the M_2D/M_3D overlap of Table B(b), the correct-at-least-once
  flags of C.2, indexed by image) is all-reduced (counts: SUM; per-image flags: MAX) before
  rank 0 records it. The frozen 3D lifting network and the StyleNet are plain copies on
  every rank (inputs are the rank's rows; their random draws must be drawn for the global
  batch, as ``ref_idx`` is in ``train_supervised``).
* **+rec** (adapt/geometric.py, RecTerm; not done: ``adapt.train.check_distributed`` refuses
  it under torchrun): W + G wrapped in its own :func:`wrap` (a second DDP
  module on the same process group; its parameters are disjoint from the student's). The
  student then runs twice before one backward (the views and the pair images): concatenate
  both inputs into one forward call, or pass ``static_graph=True`` to :func:`wrap`; DDP
  refuses a module that marks a parameter ready twice otherwise. Pairs are drawn globally and
  sharded by rows like images.
* **W + G pre-training** (generator): W + G in :func:`wrap`, pairs sharded by rows, the frozen
  predictor a plain copy on every rank; the diagnostics on rank 0, broadcast.
* **StyleNet** (train/style.py): the trained decoder in :func:`wrap` (the VGG encoder is
  frozen and stays a plain copy), content/style pairs sharded by rows.
* **lifting** (adapt/lifting.py): a small MLP trained in seconds to minutes on 3D poses: rank 0
  trains it (the path of ``get_or_train`` for trainers not marked :func:`aware`) and the other
  ranks load its ``final.pt``; nothing to change.

Until then ``get_or_train`` runs each of the others (W + G, StyleNet, lifting, RegDA, CC-SSL) on
rank 0 alone while the others wait: correct, not faster (``python -m srpose_lib.train baseline``
under torchrun trains the StyleNet on rank 0, then the pre-training and the adaptation
data-parallel).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from ..errors import ConfigError

#: Process-group timeout: a collective that waits longer than this fails instead of hanging.
TIMEOUT = timedelta(minutes=30)
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 outside ``torchrun``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # nccl | gloo | None (one process)
    sync_bn: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def rows(self, global_batch: int) -> slice:
        """This rank's rows of a global batch of ``global_batch`` (an equal share each)."""
        if global_batch % self.world_size:
            raise ConfigError(f"the batch size {global_batch} does not split into {self.world_size} equal shares",
                              f"choose a batch size divisible by the number of processes ({self.world_size}), "
                              f"e.g. -p train.batch_size {global_batch - global_batch % self.world_size or self.world_size}")
        share = global_batch // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def shard(self, batch: dict, global_batch: int) -> dict:
        """This rank's rows of every tensor of ``batch`` whose first dimension is the global batch."""
        rows = self.rows(global_batch)
        return {k: v[rows] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == global_batch else v
                for k, v in batch.items()}

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over all ranks (the tensor itself on one process)."""
        if not self.distributed:
            return value
        out = value.detach().float().reshape(1).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out[0] / self.world_size

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum over all ranks of a tensor (one all-reduce; the tensor itself on one process)."""
        if not self.distributed:
            return values
        out = values.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def any(self, flags: torch.Tensor) -> bool:
        """Whether any rank has a true element in ``flags`` (one all-reduce, MAX)."""
        out = flags.detach().any().to(torch.uint8).reshape(1)
        if self.distributed:
            dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return bool(out.item())

    def max(self, values: torch.Tensor) -> torch.Tensor:
        """The elementwise maximum over all ranks (per-image flags: any rank's; the tensor itself on one process)."""
        if not self.distributed:
            return values
        out = values.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return out

    def rows_of(self, global_batch: int) -> "Rows":
        """:class:`Rows` of this rank in a global batch of ``global_batch`` (random draws per image)."""
        return Rows(self.rows(global_batch), global_batch)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank (a picklable Python object)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]


@dataclass(frozen=True)
class Rows:
    """This rank's ``rows`` of a global batch of ``total`` images, for random draws made per
    image: :meth:`rand` draws for all ``total`` images from the generator every rank shares
    (so the stream advances identically on every rank) and keeps this rank's rows; one
    process (``rows`` = all of them) gets exactly ``torch.rand(total, ...)``."""

    rows: slice
    total: int

    def rand(self, *rest: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand((self.total, *rest), generator=generator)[self.rows]

    def any(self, flags: torch.Tensor) -> bool:
        """Whether any row of the global batch has a true flag (a draw conditioned on it must
        be made, or skipped, on every rank alike)."""
        return _CONTEXT.any(flags)


_CONTEXT = DistContext()


def launched_by_torchrun() -> bool:
    """Whether the torchrun environment variables are set (WORLD_SIZE and friends)."""
    return all(k in os.environ for k in _ENV)


def init(device: torch.device | str = "cpu", sync_bn: bool = False) -> DistContext:
    """Join the process group torchrun described (NCCL on CUDA, gloo on a CPU) and return the
    context; a single process (not under torchrun, or ``WORLD_SIZE=1``) gets rank 0 of 1."""
    global _CONTEXT
    device = torch.device(device)
    if sync_bn and device.type != "cuda":
        raise ConfigError("SyncBatchNorm was asked for on a CPU: PyTorch synchronises BatchNorm on GPUs only",
                          "leave out --sync-bn (each process then normalises with its own shard's statistics)")
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        _CONTEXT = DistContext(sync_bn=False)
        return _CONTEXT
    if dist.is_initialized():
        return _CONTEXT
    backend = "nccl" if device.type == "cuda" else "gloo"
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=TIMEOUT, device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group(backend, timeout=TIMEOUT)
    _CONTEXT = DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend, sync_bn)
    return _CONTEXT


def device_for(name: str) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` under torchrun on GPUs, else ``name`` resolved."""
    from ..utils import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and launched_by_torchrun():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def context() -> DistContext:
    """This process's :class:`DistContext` (one process unless :func:`init` joined a group)."""
    return _CONTEXT


def is_main() -> bool:
    return _CONTEXT.is_main


def world_size() -> int:
    return _CONTEXT.world_size


def wrap(model: torch.nn.Module, **ddp_kwargs) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (with SyncBatchNorm when the context asks for
    it; ``ddp_kwargs`` such as ``static_graph=True`` go to DDP); the model itself on one
    process. Checkpoint ``model``, not the wrapper."""
    ctx = _CONTEXT
    if not ctx.distributed:
        return model
    if ctx.sync_bn:
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:  # convert_sync_batchnorm replaces child modules in place; the root stays
            raise ConfigError("SyncBatchNorm cannot convert a model whose root is a BatchNorm layer")
    device_ids = [ctx.local_rank] if next(model.parameters()).device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Make every rank's buffers (BatchNorm running statistics) rank ``src``'s."""
    if not _CONTEXT.distributed:
        return
    for buf in getattr(model, "module", model).buffers():
        dist.broadcast(buf.data, src=src)


def check_in_sync(model: torch.nn.Module, what: str) -> None:
    """Raise when the ranks' parameters of ``model`` differ (DDP keeps them bitwise equal;
    a trainer that forgot to wrap, or an EMA teacher updated differently, would not)."""
    if not _CONTEXT.distributed:
        return
    from ..errors import TrainingError

    total = torch.stack([p.detach().double().sum() for p in getattr(model, "module", model).parameters()]).sum()
    lo, hi = total.reshape(1).clone(), total.reshape(1).clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if lo.item() != hi.item():
        raise TrainingError(f"{what}: the processes' weights differ (parameter sums {lo.item():.9g} to {hi.item():.9g})",
                            "wrap the trained model in distributed.wrap (DDP) and update any EMA copy from it on "
                            "every rank")


def barrier() -> None:
    """Wait for every rank (no-op on one process)."""
    if _CONTEXT.distributed:
        if _CONTEXT.backend == "nccl":
            dist.barrier(device_ids=[_CONTEXT.local_rank])
        else:
            dist.barrier()


def shutdown() -> None:
    """Leave the process group (at the end of a torchrun process, also after an error)."""
    global _CONTEXT
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = DistContext()


def aware(train_fn: Callable) -> Callable:
    """Mark a trainer as distributed-aware: ``cache.get_or_train`` runs it on every rank
    (it shards its batches itself); unmarked trainers run on rank 0 alone."""
    train_fn.distributed_aware = True
    return train_fn


def is_aware(train_fn: Callable) -> bool:
    return bool(getattr(train_fn, "distributed_aware", False))
