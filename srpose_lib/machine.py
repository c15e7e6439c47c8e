"""The machine's bench figure, and expected notebook times scaled by it.

The **bench figure** of a machine is the throughput of the quick training step in images/s:
task hand, the quick ``source_only`` configuration (ResNet-tiny at 64 px, batch 32), fp32,
one batch built (augmentation + heatmap targets), forward, backward and an Adam step, as
the training loop runs it. Times measured on different machines become comparable by this
figure: a machine twice as fast trains (roughly) twice as fast.

    from srpose_lib import machine
    figure = machine.bench_figure()          # measured once per machine, then read from cache
    machine.expected_seconds("01_pose_predictor", "quick", figure["images_per_s"])

The cache is ``<repo>/artifacts/bench.json``, one entry per machine identity (host name,
CPU model, torch threads, torch version, device). ``results/notebook_times.json`` holds the
recorded times per notebook and run mode at a reference bench figure.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import utils
from .errors import DataError

#: Committed record of measured notebook times and the bench figure they were measured at.
TIMES_FILE = "results/notebook_times.json"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def identity() -> dict[str, Any]:
    """What identifies the machine for the bench figure (a change means a new measurement)."""
    import torch

    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _key(ident: dict[str, Any]) -> str:
    return " | ".join(f"{k}={ident[k]}" for k in sorted(ident))


def default_cache_path() -> Path:
    """Env ``SRPOSE_BENCH_FILE``, else ``<repo>/artifacts/bench.json``."""
    env = os.environ.get("SRPOSE_BENCH_FILE", "").strip()
    return Path(env).expanduser() if env else utils.default_output_dir() / "bench.json"


def measure(seconds: float = 8.0, num_images: int = 64) -> float:
    """Images/s of the quick training step (hand, source_only quick config, fp32, CPU).

    ``num_images`` target images are rendered first (not timed); three warm-up steps,
    then steps until ``seconds`` have passed.
    """
    import torch

    from .data.datasets import KeypointDataset
    from .models import build_pose_net
    from .presets import benchmark_for, config_for
    from .synth.benchmark import render_split
    from .train.losses import build_loss

    cfg = config_for("source_only", "quick", "hand")
    split = render_split(benchmark_for("quick", "hand", num_train=num_images), "source", "train")
    ds = KeypointDataset(split, split.skeleton, cfg.data.target, cfg.data.augment)
    model = build_pose_net(cfg.model, split.skeleton.num_joints).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loss_fn = build_loss(cfg.train.loss)
    gen = torch.Generator().manual_seed(0)
    batch_size = cfg.train.batch_size

    def step() -> int:
        batch = ds.get_batch(torch.randint(len(ds), (batch_size,), generator=gen), gen)
        loss = loss_fn(model(batch["image"]), batch["heatmaps"], batch["weights"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return batch_size

    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while True:
        n += step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def bench_figure(seconds: float = 8.0, cache_path: str | os.PathLike | None = None,
                 refresh: bool = False) -> dict[str, Any]:
    """This machine's bench figure: ``{"images_per_s", "seconds", "measured", ...identity}``.

    Read from the cache when an entry for this machine exists that was measured for at least
    ``seconds``; otherwise measured (about ``seconds`` + 2 s) and stored. ``refresh``
    measures again regardless.
    """
    path = Path(cache_path) if cache_path is not None else default_cache_path()
    ident = identity()
    key = _key(ident)
    entries = _read_cache(path)
    entry = entries.get(key)
    if entry and not refresh and float(entry.get("seconds", 0)) >= seconds:
        return {**entry, "cached": True}
    figure = measure(seconds)
    entry = {
        "images_per_s": round(figure, 1),
        "seconds": seconds,
        "measured": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "what": "quick training step: hand, source_only quick config, fp32, batch 32",
        **ident,
        "device": "cpu",
    }
    entries[key] = entry
    try:
        utils.atomic_write_json(path, entries)
    except OSError:  # a read-only checkout still gets its figure, just not cached
        pass
    return {**entry, "cached": False}


def _read_cache(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a torn or foreign file is measured over, not trusted
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------------
# expected times


def load_times(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The committed record of notebook times (``results/notebook_times.json``)."""
    path = Path(path) if path is not None else utils.repo_root() / TIMES_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}", "restore it from git: git checkout -- "
                        f"{TIMES_FILE}") from None
    if not isinstance(data.get("reference_images_per_s"), (int, float)) or not isinstance(
            data.get("seconds"), dict):
        raise DataError(f"{path} lacks 'reference_images_per_s' or 'seconds'",
                        f"restore it from git: git checkout -- {TIMES_FILE}")
    return data


def expected_seconds(notebook: str, mode: str, images_per_s: float | None,
                     times: dict[str, Any] | None = None) -> float | None:
    """Recorded seconds of ``notebook`` in ``mode`` scaled to this machine.

    ``recorded * reference_figure / images_per_s``; the recorded time itself when this
    machine's figure is unknown; ``None`` when nothing is recorded for the notebook and mode.
    """
    times = load_times() if times is None else times
    recorded = times.get("seconds", {}).get(notebook, {}).get(mode)
    if not isinstance(recorded, (int, float)):
        return None
    if not images_per_s or images_per_s <= 0:
        return float(recorded)
    return float(recorded) * float(times["reference_images_per_s"]) / float(images_per_s)
