"""srpose_lib.machine: the bench figure (cached per machine) and the expected notebook times."""

from __future__ import annotations

import json

import pytest

from srpose_lib import machine, nb
from srpose_lib.errors import DataError

TIMES = {"reference_images_per_s": 200.0, "seconds": {"01_x": {"smoke": 20, "quick": 600}}}


def test_expected_seconds_scale_with_the_bench_figure():
    assert machine.expected_seconds("01_x", "quick", 100.0, TIMES) == 1200.0  # half as fast
    assert machine.expected_seconds("01_x", "quick", 400.0, TIMES) == 300.0
    assert machine.expected_seconds("01_x", "smoke", None, TIMES) == 20.0  # unknown: as recorded
    assert machine.expected_seconds("01_x", "full", 100.0, TIMES) is None
    assert machine.expected_seconds("02_y", "quick", 100.0, TIMES) is None


def test_committed_times_cover_the_series():
    times = machine.load_times()
    assert times["reference_images_per_s"] > 0
    for path in nb.list_notebooks():
        for mode in ("smoke", "quick"):
            recorded = times["seconds"].get(path.stem, {}).get(mode)
            if recorded is None and f"{path.stem}/{mode}" in times.get("not_measured", {}):
                continue  # said so, with the reason, rather than a made-up figure
            assert isinstance(recorded, (int, float)) and recorded > 0, (
                f"{machine.TIMES_FILE}: no {mode} time for {path.stem}")


def test_load_times_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "times.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="times.json"):
        machine.load_times(bad)
    bad.write_text(json.dumps({"seconds": {}}))
    with pytest.raises(DataError, match="reference_images_per_s"):
        machine.load_times(bad)
    assert machine.load_times(tmp_path / "absent.json") == {}


def test_bench_figure_is_measured_once_per_machine(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(machine, "measure", lambda seconds: calls.append(seconds) or 123.45)
    cache = tmp_path / "bench.json"
    first = machine.bench_figure(2.0, cache)
    assert first["images_per_s"] == 123.5 and not first["cached"] and calls == [2.0]
    for key in ("hostname", "cpu", "torch_threads", "torch", "measured"):
        assert first[key] not in (None, "")
    again = machine.bench_figure(2.0, cache)
    assert again["cached"] and again["images_per_s"] == 123.5 and calls == [2.0]
    machine.bench_figure(8.0, cache)  # a longer measurement than the cached one is wanted
    assert calls == [2.0, 8.0]
    assert machine.bench_figure(2.0, cache)["seconds"] == 8.0 and calls == [2.0, 8.0]
    machine.bench_figure(2.0, cache, refresh=True)
    assert calls == [2.0, 8.0, 2.0]
    real_identity = machine.identity
    monkeypatch.setattr(machine, "identity", lambda: {**real_identity(), "hostname": "elsewhere"})
    machine.bench_figure(2.0, cache)  # another machine: measured for it, the first kept
    assert calls == [2.0, 8.0, 2.0, 2.0] and len(json.loads(cache.read_text())) == 2


def test_bench_figure_measures_the_training_step(tmp_path):
    figure = machine.bench_figure(0.3, tmp_path / "bench.json")
    assert figure["images_per_s"] > 0 and not figure["cached"]
    assert json.loads((tmp_path / "bench.json").read_text())
