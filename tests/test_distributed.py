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
