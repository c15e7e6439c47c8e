"""Precision policy: ``auto | fp32 | bf16`` for every training loop.

``auto`` runs the networks' forward passes under bfloat16 autocast where the device computes
bf16 natively — CUDA GPUs with bf16 (Ampere and later) and CPUs whose instruction set has
bf16 (AVX512-BF16 or AMX) — and in fp32 everywhere else, so a laptop without native bf16 is
never slowed down by emulation. Losses, softmaxes, EMA updates and metrics stay in fp32: the
loops cast network outputs with ``.float()`` before any loss (PyTorch's autocast also keeps
softmax/log-softmax and reductions in fp32).

See https://pytorch.org/docs/stable/amp.html for autocast's per-op rules.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import torch

from ..errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU executes bf16 natively (AVX512-BF16 or AMX tiles)."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            try:
                if fn():
                    return True
            except Exception:  # pragma: no cover - private probes may change
                pass
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 natively."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``: ``torch.bfloat16`` or ``None`` (fp32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if native_bf16(device) else None


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """A context manager: bf16 autocast on ``device`` when ``dtype`` is set, else nothing."""
    device = torch.device(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else str(dtype).replace("torch.", "")
