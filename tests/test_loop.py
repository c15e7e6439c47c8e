"""The one epoch loop (train/loop.py) and the precision policy (train/precision.py)."""

from dataclasses import dataclass

import pytest
import torch

from srpose_lib.errors import CacheError, ConfigError
from srpose_lib.train import precision
from srpose_lib.train.loop import Box, Callback, LoopSpec, run_epochs


@dataclass(frozen=True)
class _Cfg:
    lr: float = 0.1


class _Interrupt(Exception):
    pass


def _run(tmp_path, epochs=4, interrupt_at=None, callbacks=(), cfg=_Cfg()):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(1)
    seen = Box(0)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(2))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])

    def step(epoch, it):
        idx = torch.randint(16, (4,), generator=gen)
        loss = ((model(x[idx]) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.value += 1
        return {"loss": loss.item(), "not_averaged": "text"}

    def on_iteration(epoch, it):
        if (epoch, it) == interrupt_at:
            raise _Interrupt

    spec = LoopSpec("[t]", "toy", cfg, tmp_path, epochs, iters=5, images_per_iter=4)
    history = run_epochs(spec, {"model": model, "optimizer": opt, "generator": gen, "seen": seen}, step,
                         end_epoch=lambda e, r: {"w0": float(model.weight[0, 0].detach())}, callbacks=callbacks,
                         log=lambda s: None, show_progress=False, on_iteration=on_iteration)
    return history, model, seen


def test_an_interrupted_loop_resumes_to_the_same_weights(tmp_path):
    full, model_a, seen_a = _run(tmp_path / "a")
    with pytest.raises(_Interrupt):
        _run(tmp_path / "b", interrupt_at=(2, 3))
    history, model_b, seen_b = _run(tmp_path / "b")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert torch.equal(model_a.weight, model_b.weight)  # same data order and optimiser state after resume
    assert seen_b.value == seen_a.value == 20  # the Box counted the two finished epochs, not the lost one
    assert [r["loss"] for r in history] == pytest.approx([r["loss"] for r in full])
    assert "not_averaged" not in history[0] and "w0" in history[0]
    assert (tmp_path / "b" / "history.json").exists()


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    with pytest.raises(_Interrupt):
        _run(tmp_path, interrupt_at=(1, 0))
    with pytest.raises(CacheError, match="configuration differs"):
        _run(tmp_path, cfg=_Cfg(lr=0.2))


def test_callbacks_see_steps_and_keep_their_state_across_a_resume(tmp_path):
    class Count(Callback):
        def __init__(self):
            self.steps = 0

        def on_step(self, epoch, it, out):
            assert "not_averaged" in out
            self.steps += 1

        def on_epoch_end(self, epoch, record):
            record["steps_so_far"] = self.steps

        def state_dict(self):
            return {"steps": self.steps}

        def load_state_dict(self, s):
            self.steps = s["steps"]

    with pytest.raises(_Interrupt):
        _run(tmp_path, interrupt_at=(1, 2), callbacks=[Count()])
    history, _, _ = _run(tmp_path, callbacks=[Count()])
    assert [r["steps_so_far"] for r in history] == [5, 10, 15, 20]


def test_unsaveable_state_is_refused(tmp_path):
    spec = LoopSpec("[t]", "toy", _Cfg(), tmp_path, 1, 1, 1)
    with pytest.raises(TypeError, match="Box"):
        run_epochs(spec, {"plain": [1, 2]}, lambda e, i: {}, log=lambda s: None, show_progress=False)


def test_precision_policy(monkeypatch):
    assert precision.resolve_precision("fp32", "cpu") is None
    assert precision.resolve_precision("bf16", "cpu") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu") is None  # never emulate bf16 on a CPU without it
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu") is torch.bfloat16
    with pytest.raises(ConfigError, match="precision"):
        precision.resolve_precision("fp16", "cpu")
    with precision.autocast("cpu", torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.autocast("cpu", None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
