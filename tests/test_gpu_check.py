"""benchmarks/gpu_check.py: its --tiny mode runs anywhere in seconds; without a GPU the
full-size check refuses with the reason (the GPU figures themselves are never a test)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402

from srpose_lib import headless as cli  # noqa: E402


def test_tiny_check_of_the_supervised_stage_writes_a_record(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--tiny", "--device", "cpu", "--stages", "supervised", "--workers", "0",
                           "--no-renderer", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    rows = {(r["stage"], r["precision"], r["channels_last"]): r for r in record["rows"]}
    assert set(rows) == {("supervised", p, c) for p, c in gpu_check.VARIANTS} | {("reference", "fp32", False)}
    assert all(r["images_per_s"] > 0 and r["batch"] == 4 for r in rows.values())
    assert record["ratio_vs_reference"]["ratio"] > 0 and record["tiny"] and record["device"] == "cpu"
    assert "| supervised | bf16 | on | 4 |" in gpu_check.table(record)


def test_the_full_size_check_needs_a_gpu(tmp_path):
    with pytest.raises(SystemExit, match="needs a GPU"):
        gpu_check.main(["--device", "cpu", "--out", str(tmp_path / "x.json")])


def test_the_scripts_headless_overrides_are_valid():
    cfg = cli.build_config("source_only", "full", "hand", [
        ("train.epochs", "1"), ("train.iters_per_epoch", "20"), ("benchmark.num_train", "640"),
        ("benchmark.num_val", "64"), ("benchmark.num_test", "64")])
    assert (cfg.model.arch, cfg.benchmark.image_size, cfg.benchmark.num_train) == ("resnet101", 256, 640)
    script = (Path(gpu_check.__file__).parent / "gpu_check.sh").read_text()
    assert "-p benchmark.num_train 640" in script and "timeout 330" in script
