"""srpose_lib.utils.progress: widgets in JupyterLab, a handful of plain lines in batch runs."""

from __future__ import annotations

import io
import time

import pytest

from srpose_lib import utils


def _lines(monkeypatch, n: int, sleep: float, gap: float, **kw) -> list[str]:
    monkeypatch.setenv("SRPOSE_PROGRESS", "text")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(utils, "TEXT_PROGRESS_GAP_S", gap)
    buf = io.StringIO()
    for _ in utils.progress(range(n) if kw.pop("sized", True) else iter(range(n)), file=buf,
                            desc="loop", **kw):
        time.sleep(sleep)
    return buf.getvalue().splitlines()


@pytest.mark.parametrize("leave", [True, False])
def test_text_progress_prints_a_handful_of_lines(monkeypatch, leave):
    """A 400-iteration loop running 20 gaps long: at most the 25/50/75 % lines and a final one,
    where plain tqdm at its 0.1 s default would print one line per update."""
    lines = _lines(monkeypatch, 400, 0.005, 0.1, leave=leave)
    assert 2 <= len(lines) <= (4 if leave else 3), lines
    assert all("\r" not in ln and ln.startswith("loop:") for ln in lines)
    if leave:
        assert "400/400" in lines[-1]


def test_text_progress_without_total_prints_at_doubling_times(monkeypatch):
    lines = _lines(monkeypatch, 200, 0.01, 0.1, sized=False)  # about 2 s: lines at 0.1, 0.2, 0.4, 0.8, 1.6
    assert 2 <= len(lines) <= 7, lines


def test_text_progress_is_silent_for_short_loops(monkeypatch):
    assert _lines(monkeypatch, 50, 0.0, 30.0) == []


def test_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("SRPOSE_PROGRESS", "text")
    buf = io.StringIO()
    assert list(utils.progress(range(3), file=buf)) == [0, 1, 2] and buf.getvalue() == ""


def test_outside_batch_runs_progress_is_tqdm_auto(monkeypatch):
    monkeypatch.delenv("SRPOSE_PROGRESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    from tqdm.auto import tqdm

    bar = utils.progress(range(3), file=io.StringIO())
    assert isinstance(bar, tqdm) and bar.mininterval >= 1
    bar.close()
