"""Headless training (``python -m srpose_lib.train``) and DistributedDataParallel under torchrun
(CPU, gloo, 2 processes, smoke configuration); srpose_lib/headless.py and train/distributed.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srpose_lib import presets, runner
from srpose_lib.errors import ConfigError
from srpose_lib import headless as cli
from srpose_lib.train import distributed
from srpose_lib.train.distributed import DistContext

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).parent / "torchrun"
SMOKE = ["source_only", "--task", "hand", "--mode", "smoke", "-p", "train.epochs", "2"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                             "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
               OMP_NUM_THREADS="1", TQDM_DISABLE="1", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args, nproc=2) -> subprocess.CompletedProcess:
    cmd = [str(TORCHRUN), "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "srpose_lib.train", *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)


def _run_dir(cache: Path) -> Path:
    (folder,) = (cache / "runs").glob("source_only-hand-*")
    return folder


def _eval_outputs(state: dict, init: dict, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    from srpose_lib.models import build_pose_net

    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    outs = []
    for sd in (state, init):
        model = build_pose_net(cfg.model, 21)
        model.load_state_dict(sd)
        with torch.no_grad():
            outs.append(model.eval()(x))
    return outs[0], outs[1]


# ---------------------------------------------------------------------------------------
# units (no processes)


def test_ranks_split_the_global_batch_into_equal_disjoint_rows():
    batch = {"image": torch.arange(16).view(16, 1), "affine": torch.zeros(16, 2, 3), "flag": "x"}
    shards = [DistContext(rank=r, world_size=4).shard(batch, 16) for r in range(4)]
    assert torch.equal(torch.cat([s["image"] for s in shards]), batch["image"])  # in order, nothing twice
    assert all(s["affine"].shape[0] == 4 and s["flag"] == "x" for s in shards)
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        DistContext(rank=0, world_size=3).rows(16)


def test_one_process_is_rank_zero_of_one_and_sync_bn_needs_a_gpu(monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    ctx = distributed.init("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert distributed.wrap(m := torch.nn.Linear(2, 2)) is m  # no DDP on one process
    with pytest.raises(ConfigError, match="SyncBatchNorm"):
        distributed.init("cpu", sync_bn=True)


@pytest.mark.parametrize("args, message", [
    (["sourc_only", "--mode", "smoke"], "did you mean 'source_only'"),
    (["source_only", "--task", "hnd", "--mode", "smoke"], "did you mean 'hand'"),
    (["source_only", "--mode", "smok"], "did you mean 'smoke'"),
    (["source_only", "--mode", "smoke", "-p", "train.epoch", "3"], "did you mean 'epochs'"),
    (["source_only", "--mode", "smoke", "-p", "train.epochs", "abc"], "holds a value of type int"),
])
def test_bad_command_lines_are_refused_with_the_fix(args, message, capsys, tmp_path):
    assert cli.main([*args, "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "fix:" in err


def test_p_overrides_give_the_notebooks_config():
    # the notebook's EPOCHS=3 is config_for(..., epochs=3): the headless -p must hash the same
    cfg = cli.build_config("source_only", "smoke", "hand", [("train.epochs", "3"), ("model.arch", "resnet_tiny")])
    assert cfg == presets.config_for("source_only", "smoke", "hand", epochs=3)
    assert cli.build_config("oracle", "smoke", "hand", [("milestones", "[1]")]).train.milestones == (1,)


# ---------------------------------------------------------------------------------------
# torchrun: 2 processes against 1, interruption and resume


def test_two_processes_match_one_and_an_interrupted_run_resumes(tmp_path, capsys, monkeypatch):
    """2 processes x 8 images against 1 process x 16, both stopped after epoch 1 of 2.

    Exact: every rank sees the 1-process images in the same order with the same
    augmentation (the checksums of the global batch's indices and pixels). Approximate: plain
    BatchNorm normalises each rank's 8 images with their own statistics (SyncBatchNorm exists
    on GPUs only), so the gradients differ a little; measured after 8 Adam steps from scratch:
    training loss 0.05 % apart, and the network's output moved 0.16x as far from the 1-process
    output as training moved it from the initial one. Tolerances: loss 2 %, outputs 0.5x.
    """
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli.main([*SMOKE, "--cache-dir", str(one), "--device", "cpu", "--stop-after", "1"]) == 3
    stopped = _torchrun([*SMOKE, "--cache-dir", str(two), "--device", "cpu", "--stop-after", "1"])
    assert stopped.returncode != 0 and "stopped after epoch 1/2" in stopped.stdout, stopped.stdout + stopped.stderr
    assert "2 processes (gloo)" in stopped.stdout
    assert stopped.stdout.count("epoch 1/2  loss") == 1  # rank 0 alone logs
    folder = _run_dir(two)
    assert (folder / "progress.pt").exists() and not (folder / "final.pt").exists()

    ref = torch.load(_run_dir(one) / "progress.pt", weights_only=False)
    got = torch.load(folder / "progress.pt", weights_only=False)
    r1, r2 = ref["history"][0], got["history"][0]
    assert r2["data_index_sum"] == r1["data_index_sum"]  # the same images in the same order
    assert r2["data_pixel_sum"] == pytest.approx(r1["data_pixel_sum"], rel=1e-6)  # the same augmentation
    assert r2["loss"] == pytest.approx(r1["loss"], rel=0.02)
    cfg = cli.build_config("source_only", "smoke", "hand", [("train.epochs", "2")])
    from srpose_lib.models import build_pose_net

    torch.manual_seed(cfg.seed)
    init = build_pose_net(cfg.model, 21).state_dict()
    out1, out0 = _eval_outputs(ref["state"]["model"], init, cfg)
    out2, _ = _eval_outputs(got["state"]["model"], init, cfg)
    ratio = float((out2 - out1).norm() / (out1 - out0).norm())
    assert ratio < 0.5, f"2-process outputs are {ratio:.2f}x the training change away from 1 process"

    resumed = _torchrun([*SMOKE, "--cache-dir", str(two), "--device", "cpu"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming after epoch 1/2" in resumed.stdout and "epoch 2/2  loss" in resumed.stdout
    assert "epoch 1/2  loss" not in resumed.stdout  # the finished epoch was not trained again
    assert (folder / "final.pt").exists() and not (folder / "progress.pt").exists()
    history = json.loads((folder / "history.json").read_text())
    assert history["world_size"] == 2 and [r["epoch"] for r in history["history"]] == [1, 2]
    assert history["history"][0] == json.loads(json.dumps(r2))  # epoch 1 kept from before the interruption


# ---------------------------------------------------------------------------------------
# the mean teacher (Baseline, +pseudo): adapt/train.py under torchrun

BASELINE = ["baseline", "--task", "hand", "--mode", "smoke", "-p", "train.precision", "fp32"]


def test_per_image_draws_for_the_global_batch_give_each_rank_its_rows(monkeypatch):
    """Views and occlusion drawn for the global batch and sharded by rows: the ranks' rows
    put together are the one-process batch, and every rank's generator ends where one
    process's does (the stream stays aligned for the next draw)."""
    from srpose_lib.adapt import mean_teacher as mt

    B, K, S = 6, 5, 32
    images = torch.rand(B, 3, S, S, generator=torch.Generator().manual_seed(1))
    cfg = mt.MeanTeacherConfig()
    gen = torch.Generator().manual_seed(5)
    views = mt.make_views(images, cfg, gen)
    centres = torch.rand(B, K, 2, generator=torch.Generator().manual_seed(2)) * S
    candidates = torch.zeros(B, K, dtype=torch.bool)
    candidates[:3, 1:] = True  # only rank 0's rows have something to occlude
    full, chosen = mt.occlude(views.student, centres, candidates, 1.0, 3, gen)
    assert chosen[:3].all() and not chosen[3:].any()
    # the all-reduce over ranks: rank 0 occludes, so every rank makes the remaining draws
    monkeypatch.setattr(distributed.Rows, "any", lambda self, flags: True)
    parts, states = [], []
    for rank in range(2):
        g = torch.Generator().manual_seed(5)
        rows = DistContext(rank=rank, world_size=2).rows_of(B)
        v = mt.make_views(images, cfg, g).select(rows.rows)
        out, _ = mt.occlude(v.student, centres[rows.rows], candidates[rows.rows], 1.0, 3, g, rows)
        parts.append(out)
        states.append(g.get_state())
    assert torch.equal(torch.cat(parts), full)
    assert all(torch.equal(s, gen.get_state()) for s in states)


def test_rec_is_refused_under_torchrun(monkeypatch):
    from srpose_lib.adapt.train import check_distributed

    cfg = presets.config_for("rec", "smoke", "hand")
    check_distributed(cfg)  # one process: trains
    check_distributed(presets.config_for("baseline", "smoke", "hand"))
    monkeypatch.setattr(distributed, "_CONTEXT", DistContext(rank=0, world_size=2, backend="gloo"))
    check_distributed(presets.config_for("baseline", "smoke", "hand"))  # data-parallel
    with pytest.raises(ConfigError, match="does not train under torchrun yet"):
        check_distributed(cfg)


def test_two_process_mean_teacher_matches_one_and_an_interrupted_run_resumes(tmp_path, monkeypatch):
    """Baseline (smoke: 2 epochs x 4 iterations of 8 target + 8 source images) in 1 process,
    and in 2 processes x 4 rows stopped after epoch 1, then resumed; the same StyleNet and
    pre-trained model (copied cache).

    Exact: the data. Every rank draws the global batch's source images, target order, views
    (base crop, student/teacher affines, colour jitter), style draws and occlusion draws from
    the same generator and keeps its rows, so the checksums of the images seen (indices by
    position; pixels of the source batch and the student's views) equal one process's, epoch 2
    (after the resume) included. The teacher stays identical on both ranks (the loop checks
    the parameters at every epoch end and raises otherwise: the run would not finish).

    Approximate: BatchNorm of student *and* teacher (in train mode, as UniFrame) normalises 4
    images per rank instead of 8, and the confidence mask is the median of the rank's rows
    (the recipe of train/distributed.py), so the pseudo-labels and gradients differ a little.
    Measured (fp32, CPU): loss_src 0.2 % / 0.4 % and loss_cons 1.2 % / 0.5 % apart in epochs
    1 / 2; the teacher's outputs (eval mode, 8 random images) 0.06x as far from one process's
    as adaptation moved them from the pre-trained model's. Tolerances: losses 5 %, outputs 0.3x.
    (The weights themselves are no measure here: Adam's first steps move every weight by about
    lr whatever its gradient, so weights with noise gradients move differently.)
    """
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    import shutil

    one, two = tmp_path / "one", tmp_path / "two"
    assert cli.main([*BASELINE, "--cache-dir", str(one), "--device", "cpu"]) == 0
    shutil.copytree(one, two, ignore=shutil.ignore_patterns("baseline-*"))  # the same data, StyleNet, pre-training
    stopped = _torchrun([*BASELINE, "--cache-dir", str(two), "--device", "cpu", "--stop-after", "1"])
    assert stopped.returncode != 0 and "stopped after epoch 1/2" in stopped.stdout, stopped.stdout + stopped.stderr
    assert "2 processes (gloo)" in stopped.stdout and "rank 0 trains it" not in stopped.stdout  # data-parallel
    assert stopped.stdout.count("epoch 1/2  loss") == 1  # rank 0 alone logs
    resumed = _torchrun([*BASELINE, "--cache-dir", str(two), "--device", "cpu"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming after epoch 1/2" in resumed.stdout and "epoch 1/2  loss" not in resumed.stdout

    (ref_dir,), (got_dir,) = (one / "runs").glob("baseline-hand-*"), (two / "runs").glob("baseline-hand-*")
    assert ref_dir.name == got_dir.name  # the same configuration
    ref = torch.load(ref_dir / "final.pt", weights_only=False)
    got = torch.load(got_dir / "final.pt", weights_only=False)
    assert json.loads((got_dir / "history.json").read_text())["world_size"] == 2
    for r1, r2 in zip(ref["history"], got["history"], strict=True):
        assert (r2["data_index_sum"], r2["data_source_index_sum"]) == (r1["data_index_sum"],
                                                                      r1["data_source_index_sum"])
        assert r2["data_pixel_sum"] == pytest.approx(r1["data_pixel_sum"], rel=1e-6)
        assert r2["loss_src"] == pytest.approx(r1["loss_src"], rel=0.05)
        assert r2["loss_cons"] == pytest.approx(r1["loss_cons"], rel=0.05)
        # all-reduced counts: each rank's mask keeps half its rows' keypoints, so the global
        # batch's count is one process's (rank 0's alone would be half of it)
        assert r2["labels_used"] == r1["labels_used"] and r2["coverage/m2d"] == r1["coverage/m2d"]
        assert r2["saturation"] > 0.5 * r1["saturation"]  # flags of both ranks' images (measured 0.8x)
    from srpose_lib.models import build_pose_net

    cfg = cli.build_config("baseline", "smoke", "hand")
    (pre_dir,) = (one / "runs").glob("pretrain-hand-*")
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    outs = []
    pre = torch.load(pre_dir / "final.pt", weights_only=False)["state_dict"]
    for sd in (ref["state_dict"], got["state_dict"], pre):
        model = build_pose_net(cfg.pretrain.model, 21)
        model.load_state_dict(sd)
        with torch.no_grad():
            outs.append(model.eval()(x))
    ratio = float((outs[1] - outs[0]).norm() / (outs[0] - outs[2]).norm())
    assert ratio < 0.3, f"2-process teacher outputs are {ratio:.2f}x the adaptation's change away from 1 process"


# ---------------------------------------------------------------------------------------
# the headless command fills the cache a notebook then loads


@pytest.mark.notebooks
def test_headless_training_fills_the_cache_notebook_01_loads(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    headless = subprocess.run([sys.executable, "-m", "srpose_lib.train", "source_only", "--task", "hand",
                               "--mode", "smoke", "--cache-dir", str(cache), "--device", "cpu"],
                              env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert headless.returncode == 0, headless.stdout + headless.stderr
    assert "trained into" in headless.stdout
    monkeypatch.setenv("SRPOSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = tmp_path / "out"
    code = runner.main(["--mode", "smoke", "--only", "01", "--out", str(out), "-p", "TASKS", "hand",
                        "-p", "DEVICE", "cpu", "--quiet"])
    assert code == 0, (out / "summary.md").read_text() if (out / "summary.md").exists() else code
    executed = (out / "executed" / "01_pose_predictor.ipynb").read_text()
    assert "loaded cached source_only" in executed  # trained headless, loaded by the notebook
    assert "loaded cached oracle" not in executed  # the control: the stage not trained headless trains here
