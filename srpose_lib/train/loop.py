"""One resumable epoch loop for every trainer of the series.

A trainer (supervised f_kp, StyleNet, mean teacher, W + G, RegDA, CC-SSL, ...) says what one
iteration does and what happens at the end of an epoch; :func:`run_epochs` does the rest,
the same way for all of them (one generic trainer, as minGPT's and nanoGPT's):

* **resume** — ``<run_dir>/progress.pt`` holds everything named in ``state`` after the last
  finished epoch; a new call with the same stage and configuration continues after it (a
  checkpoint of another configuration fails loudly, :func:`..cache.load_checkpoint`);
* **atomic checkpoint** after every epoch, and the per-epoch history as plain JSON
  (``history.json``);
* **one log line** per epoch and a (throttled) **progress bar** per epoch;
* the **NaN check** is :func:`.step.checked_step`, which the step functions call;
* **callbacks** observe steps and epochs (statistics, probes, mechanism instruments) and
  keep their own resumable state.

Only the main process (rank 0 under ``torchrun``) writes checkpoints, history and logs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch

from ..config import to_dict
from ..utils import atomic_torch_save, atomic_write_json, progress
from .cache import FORMAT_VERSION, load_checkpoint


@runtime_checkable
class Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


@dataclass
class Box:
    """A resumable plain value (best weights, analysis tensors, a counter): ``state`` is
    saved and restored as it is."""

    value: Any = None

    def state_dict(self) -> Any:
        return self.value

    def load_state_dict(self, state: Any) -> None:
        self.value = state


class Callback:
    """Observes the loop. ``on_step`` gets the step's returned dict (scalars and any extra
    objects it chose to expose); ``on_epoch_end`` may add fields to the epoch's record.
    A callback with state to keep across an interruption implements ``state_dict`` /
    ``load_state_dict``."""

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_step(self, epoch: int, it: int, out: dict) -> None:
        pass

    def on_epoch_end(self, epoch: int, record: dict) -> None:
        pass


@dataclass
class LoopSpec:
    """What identifies a run and how long it is.

    ``stage`` and ``config`` are stored in every checkpoint and checked on resume;
    ``images_per_iter`` turns seconds into the logged images/s."""

    tag: str  # e.g. "[source_only hand]"
    stage: str
    config: Any
    run_dir: Path
    epochs: int
    iters: int
    images_per_iter: int
    header: dict = field(default_factory=dict)  # extra fields of history.json


def _save_state(obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, Stateful):
        return obj.state_dict()
    raise TypeError(f"cannot checkpoint {type(obj).__name__}: wrap plain values in loop.Box")


def _load_state(obj: Any, state: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    elif isinstance(obj, Stateful):
        obj.load_state_dict(state)
    else:  # pragma: no cover - _save_state refused it already
        raise TypeError(f"cannot restore {type(obj).__name__}")


def _unwrap(obj: Any) -> Any:
    """A DistributedDataParallel model checkpoints as the model it wraps."""
    return getattr(obj, "module", obj) if isinstance(obj, torch.nn.parallel.DistributedDataParallel) else obj


def run_epochs(spec: LoopSpec, state: dict[str, Any], step: Callable[[int, int], dict],
               end_epoch: Callable[[int, dict], dict] | None = None,
               begin_epoch: Callable[[int], None] | None = None,
               callbacks: Sequence[Callback] = (),
               describe: Callable[[dict], str] | None = None,
               log: Callable[[str], None] = print, show_progress: bool = True,
               on_iteration: Callable[[int, int], None] | None = None,
               is_main: bool = True, barrier: Callable[[], None] | None = None) -> list[dict]:
    """Run (or resume) ``spec.epochs`` epochs of ``spec.iters`` iterations; returns the history.

    * ``state``: name -> model / optimiser / scheduler / ``torch.Generator`` / :class:`Box` /
      anything with ``state_dict``: saved after every epoch, restored on resume.
    * ``step(epoch, it)``: one iteration (the optimiser step included, through
      :func:`.step.checked_step`); returns a dict whose float/int values are averaged over
      the epoch into the record (other values reach the callbacks only).
    * ``begin_epoch(epoch)``: set train modes, draw the epoch's order, ...
    * ``end_epoch(epoch, record)``: evaluate; returns fields to add to the record.
    * ``describe(record)``: the middle of the log line (losses, PCK, ...).
    * ``on_iteration(epoch, it)``: called after every step (tests simulate interruptions).
    * ``is_main`` / ``barrier`` (under ``torchrun``, train/distributed.py): only the main
      process logs and writes; ``barrier()`` after every epoch's checkpoint keeps the other
      processes from running ahead of it.
    * A stage named in :func:`stop_after` stops (raises :class:`Stopped`) once that many
      epochs are finished and checkpointed; the next call resumes after them.
    """
    run_dir = Path(spec.run_dir)
    progress_path = run_dir / "progress.pt"
    history: list[dict] = []
    start = 0
    for cb in callbacks:
        if isinstance(cb, Stateful):
            state = {**state, f"callback/{type(cb).__name__}": cb}
    if progress_path.exists():
        ckpt = load_checkpoint(progress_path, spec.stage, spec.config)
        for name, obj in state.items():
            if name not in ckpt["state"]:
                raise KeyError(f"{progress_path} has no state {name!r}")
            _load_state(_unwrap(obj), ckpt["state"][name])
        history = ckpt["history"]
        start = ckpt["epoch"] + 1
        log(f"{spec.tag} resuming after epoch {start}/{spec.epochs} from {progress_path}")
    cfg_dict = to_dict(spec.config)
    for epoch in range(start, spec.epochs):
        if begin_epoch is not None:
            begin_epoch(epoch)
        for cb in callbacks:
            cb.on_epoch_start(epoch)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = progress(range(spec.iters), desc=f"{spec.tag} epoch {epoch + 1}/{spec.epochs}", leave=False,
                       disable=not (show_progress and is_main))
        for it in bar:
            out = step(epoch, it) or {}
            for k, v in out.items():
                if isinstance(v, (float, int)) and not isinstance(v, bool):
                    sums[k] = sums.get(k, 0.0) + float(v)
            for cb in callbacks:
                cb.on_step(epoch, it, out)
            if on_iteration is not None:
                on_iteration(epoch, it)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, **{k: v / spec.iters for k, v in sums.items()},
                  "seconds": seconds, "images_per_s": spec.iters * spec.images_per_iter / seconds}
        if end_epoch is not None:
            record.update(end_epoch(epoch, record) or {})
        for cb in callbacks:
            cb.on_epoch_end(epoch, record)
        history.append(record)
        if is_main:
            middle = describe(record) if describe is not None else ""
            log(f"{spec.tag} epoch {epoch + 1}/{spec.epochs}  {middle}{'  ' if middle else ''}"
                f"{record['images_per_s']:.0f} img/s  {seconds:.0f}s")
            atomic_write_json(run_dir / "history.json", {"stage": spec.stage, **spec.header, "history": history})
            atomic_torch_save({
                "format_version": FORMAT_VERSION, "stage": spec.stage, "config": cfg_dict, "epoch": epoch,
                "history": history, "state": {k: _save_state(_unwrap(v)) for k, v in state.items()},
            }, progress_path)
        if barrier is not None:
            barrier()
        stop = _STOP_AFTER.get(spec.stage)
        if stop is not None and epoch + 1 >= stop and epoch + 1 < spec.epochs:
            raise Stopped(f"{spec.tag} stopped after epoch {epoch + 1}/{spec.epochs} as asked; "
                          f"{progress_path} holds it and the same command resumes from it")
    return history


class Stopped(Exception):
    """A run stopped on purpose after a finished epoch (:func:`stop_after`); it resumes."""


_STOP_AFTER: dict[str, int] = {}


@contextlib.contextmanager
def stop_after(stage: str, epochs: int):
    """Within the block, training ``stage`` stops after ``epochs`` finished epochs (raising
    :class:`Stopped` after the checkpoint), as a job-time-limited cluster or an interruption
    would; e.g. ``python -m srpose_lib.train ... --stop-after 1``."""
    _STOP_AFTER[stage] = epochs
    try:
        yield
    finally:
        _STOP_AFTER.pop(stage, None)


def endless_batches(dataset, batch_size: int, gen: torch.Generator, device):
    """Shuffled batches forever, reshuffling after each pass (epochs are counted in iterations)."""
    while True:
        yield from dataset.batches(batch_size, gen, shuffle=True, drop_last=True, device=device)


def lr_of(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]
