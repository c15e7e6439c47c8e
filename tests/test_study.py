"""Seed studies: paired intervals, summaries, and a resumable run on smoke configs."""

import json
import math

import pytest

from srpose_lib import study


def test_paired_ci_matches_the_t_interval():
    ci = study.paired_ci([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert ci["mean"] == pytest.approx(2.0) and ci["sd"] == pytest.approx(1.0)
    half = 4.303 / math.sqrt(3)
    assert (ci["lo"], ci["hi"]) == pytest.approx((2.0 - half, 2.0 + half))
    # pairing: a constant offset on noisy seeds has zero spread
    ci = study.paired_ci([30.5, 31.2, 38.5], [30.0, 30.7, 38.0])
    assert ci["mean"] == pytest.approx(0.5) and ci["hi"] - ci["lo"] == pytest.approx(0.0, abs=1e-9)
    assert study.paired_ci([1.0], [0.0])["lo"] is None
    with pytest.raises(ValueError):
        study.paired_ci([1.0, 2.0], [1.0])


def _rec(task, variant, seed, value):
    return {"task": task, "variant": variant, "seed": seed,
            "metrics": {f"pck/{task}/source_only/target_test/all": value}}


def test_summary_pairs_by_seed():
    recs = [_rec("hand", "fp32", s, v) for s, v in [(0, 30.0), (1, 40.0)]]
    recs += [_rec("hand", "bf16", s, v) for s, v in [(1, 41.0), (0, 31.0)]]  # order must not matter
    out = study.summarize(recs, "fp32")
    e = out["hand"]["bf16"]["pck/hand/source_only/target_test/all"]
    assert e["mean"] == pytest.approx(36.0)
    assert e["paired_vs_fp32"]["mean"] == pytest.approx(1.0) and e["paired_vs_fp32"]["sd"] == pytest.approx(0.0)
    with pytest.raises(Exception, match="baseline"):
        study.summarize(recs, "fp16")


def test_a_smoke_study_writes_records_and_skips_finished_runs(tmp_path, capsys):
    args = ["run", "--mode", "smoke", "--tasks", "hand", "--seeds", "0", "--variant", "a", "train.lr=0.002",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    assert study.main(args) == 0
    rec = json.loads((tmp_path / "out" / "hand-a-seed0.json").read_text())
    assert rec["seed"] == 0 and rec["overrides"] == {"train.lr": 0.002}
    assert "pck/hand/source_only/target_test/all" in rec["metrics"] and rec["run_key"].startswith("source_only-hand-")
    assert study.main(args) == 0
    assert "exists: skipped" in capsys.readouterr().out


def test_headless_seed_and_comparison_stages():
    from srpose_lib import headless, presets

    cfg = headless.build_config("baseline", "smoke", "hand", seed=2)
    assert cfg == presets.config_for("baseline", "smoke", "hand", seed=2) and cfg.pretrain.seed == 2

    class Spy:
        def comparison(self, cfg, force=False):
            return ("comparison", cfg.method)

        def adapted(self, cfg, force=False):  # pragma: no cover - the bug this test guards against
            raise AssertionError("RegDA must not go through the mean-teacher path")

    assert headless.train_stage(Spy(), "regda", presets.config_for("regda", "smoke", "hand")) == ("comparison", "regda")
