"""The global random-number state as a resumable object for :func:`.loop.run_epochs`.

Layers that draw from torch's global generator during training (dropout) need it in the
checkpoint so that a resumed run draws what an uninterrupted one would have drawn."""

from __future__ import annotations

import torch


class GlobalRNG:
    """``state_dict``/``load_state_dict`` of torch's global CPU generator (and CUDA's)."""

    def state_dict(self) -> dict:
        return {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["cpu"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
