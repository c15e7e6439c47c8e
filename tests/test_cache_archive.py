"""Shareable trained caches (``python -m srpose_lib.cache``): mode detection, export/import
round trip, and the refusals (damaged member, other versions, foreign paths) that leave the
target cache untouched. The last test runs notebook 01 in smoke mode against an imported
cache and checks from its output that nothing trained."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import nbformat
import pytest
import torch

from srpose_lib import cache as cachetool
from srpose_lib import runner
from srpose_lib.config import to_dict
from srpose_lib.errors import CacheError
from srpose_lib.presets import config_for
from srpose_lib.train.cache import FORMAT_VERSION, run_key
from srpose_lib.utils import atomic_torch_save


def _fake_run(cache: Path, stage: str, mode: str, task: str = "hand", payload: int = 4) -> str:
    """A finished run folder as get_or_train writes it, with a tiny state dict."""
    cfg = config_for(stage, mode, task)
    key = run_key(stage, cfg)
    folder = cache / "runs" / key
    folder.mkdir(parents=True)
    atomic_torch_save({"format_version": FORMAT_VERSION, "stage": stage, "config": to_dict(cfg),
                       "state_dict": {"w": torch.arange(payload, dtype=torch.float32)},
                       "history": [], "metrics": {"val_pck": 1.0}, "provenance": {}}, folder / "final.pt")
    (folder / "history.json").write_text("[]\n")
    return key


@pytest.fixture
def cache_a(tmp_path: Path) -> tuple[Path, list[str], str]:
    cache = tmp_path / "A"
    smoke = [_fake_run(cache, "source_only", "smoke"), _fake_run(cache, "lifting", "smoke", "body")]
    quick = _fake_run(cache, "source_only", "quick")
    (cache / "runs" / "oracle-hand-unfinished").mkdir()
    (cache / "runs" / "oracle-hand-unfinished" / "progress.pt").write_bytes(b"x")
    return cache, smoke, quick


def _rewrite(archive: Path, out: Path, manifest_fn=None, member_fn=None, extra=None) -> Path:
    """Copy an archive, changing its manifest and/or member bytes."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for info in src:
            data = src.extractfile(info).read()
            if info.name == cachetool.MANIFEST and manifest_fn:
                manifest = json.loads(data)
                manifest_fn(manifest)
                data = json.dumps(manifest).encode()
            elif member_fn:
                data = member_fn(info.name, data)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def test_runs_are_told_apart_by_mode(cache_a):
    cache, smoke, quick = cache_a
    runs, skipped = cachetool.scan(cache)
    by_key = {r.key: r for r in runs}
    assert set(by_key) == set(smoke) | {quick}
    assert all(by_key[k].modes == ("smoke",) for k in smoke)
    assert by_key[quick].modes == ("quick",)
    assert [f.name for f, _ in skipped] == ["oracle-hand-unfinished"]
    assert {r.key for r in cachetool.runs_for_mode(cache, "smoke")} == set(smoke)


def test_round_trip_into_an_empty_cache(cache_a, tmp_path):
    cache, smoke, quick = cache_a
    archive = tmp_path / "smoke.tar.gz"
    manifest = cachetool.export_cache("smoke", archive, cache, log=lambda s: None)
    assert {r["key"] for r in manifest["runs"]} == set(smoke)
    assert all(not m["path"].endswith("progress.pt") for m in manifest["members"])
    result = cachetool.import_cache(archive, tmp_path / "B", log=lambda s: None)
    assert sorted(result["imported"]) == sorted(smoke)
    for key in smoke:
        for name in ("final.pt", "history.json"):
            assert (tmp_path / "B" / "runs" / key / name).read_bytes() == \
                (cache / "runs" / key / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "B" / "runs").iterdir()) == sorted(smoke)  # no staging left
    again = cachetool.import_cache(archive, tmp_path / "B", log=lambda s: None)
    assert again["imported"] == [] and sorted(again["kept"]) == sorted(smoke)


def test_export_without_runs_says_what_to_run(cache_a, tmp_path):
    cache, _, _ = cache_a
    with pytest.raises(CacheError, match="no finished full runs") as err:
        cachetool.export_cache("full", tmp_path / "x.tar", cache)
    assert "runner --mode full" in err.value.fix
    assert not (tmp_path / "x.tar").exists()


def _refused(archive: Path, target: Path, match: str, **kw) -> CacheError:
    with pytest.raises(CacheError, match=match) as err:
        cachetool.import_cache(archive, target, log=lambda s: None, **kw)
    runs = target / "runs"
    assert not runs.exists() or list(runs.iterdir()) == [], "a refused import left files in the cache"
    return err.value


def test_refuses_a_tampered_member(cache_a, tmp_path):
    cache, smoke, _ = cache_a
    good = tmp_path / "good.tar"
    cachetool.export_cache("smoke", good, cache, log=lambda s: None)

    def flip(name, data):
        if name.endswith("final.pt") and smoke[1] in name:
            return data[:-8] + bytes(b ^ 0xFF for b in data[-8:])
        return data

    bad = _rewrite(good, tmp_path / "bad.tar", member_fn=flip)
    err = _refused(bad, tmp_path / "B", "is damaged")
    assert "nothing was imported" in err.fix


def test_refuses_other_versions(cache_a, tmp_path, monkeypatch):
    cache, _, _ = cache_a
    good = tmp_path / "good.tar"
    cachetool.export_cache("smoke", good, cache, log=lambda s: None)
    fmt = _rewrite(good, tmp_path / "fmt.tar",
                   manifest_fn=lambda m: m.update(checkpoint_format=FORMAT_VERSION + 1))
    _refused(fmt, tmp_path / "B", f"checkpoints of format version {FORMAT_VERSION + 1}")
    arch = _rewrite(good, tmp_path / "arch.tar", manifest_fn=lambda m: m.update(archive_format=99))
    _refused(arch, tmp_path / "B", "archive format 99")
    lib = _rewrite(good, tmp_path / "lib.tar", manifest_fn=lambda m: m.update(srpose="0.0.1"))
    err = _refused(lib, tmp_path / "B", "exported by srpose 0.0.1")
    assert "--allow-version-mismatch" in err.fix
    done = cachetool.import_cache(lib, tmp_path / "B", allow_version_mismatch=True, log=lambda s: None)
    assert len(done["imported"]) == 2


def test_refuses_foreign_members_and_files(cache_a, tmp_path):
    cache, _, _ = cache_a
    good = tmp_path / "good.tar"
    cachetool.export_cache("smoke", good, cache, log=lambda s: None)
    extra = _rewrite(good, tmp_path / "extra.tar", extra={"runs/x-1/evil.py": b"print(1)"})
    _refused(extra, tmp_path / "B", "not listed in its manifest")
    escape = _rewrite(good, tmp_path / "esc.tar", manifest_fn=lambda m: m["members"].append(
        {"path": "runs/../../etc/passwd", "size": 1, "sha256": "0"}))
    _refused(escape, tmp_path / "B", "not a file under runs/<key>/")
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    _refused(tmp_path / "junk.tar", tmp_path / "B", "not a readable srpose cache archive")
    _refused(tmp_path / "missing.tar", tmp_path / "B", "does not exist")


def test_cli_reports_refusal_with_exit_1(cache_a, tmp_path, capsys):
    cache, _, _ = cache_a
    archive = tmp_path / "s.tar"
    assert cachetool.main(["export", "--mode", "smoke", "--out", str(archive), "--cache-dir", str(cache)]) == 0
    bad = _rewrite(archive, tmp_path / "bad.tar", manifest_fn=lambda m: m.update(checkpoint_format=0))
    assert cachetool.main(["import", str(bad), "--cache-dir", str(tmp_path / "B")]) == 1
    err = capsys.readouterr().err
    assert "srpose cache: error:" in err and "fix:" in err


def _stream_text(executed: Path) -> str:
    book = nbformat.read(executed, as_version=4)
    return "\n".join(out.get("text", "") for cell in book.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []) if out.get("output_type") == "stream")


@pytest.mark.notebooks
def test_notebook_01_trains_nothing_after_an_import(tmp_path, monkeypatch):
    """Train notebook 01 (smoke, hand) into cache A, export, import into an empty cache B, run
    notebook 01 against B: every stage loads, no epoch runs."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    epoch = re.compile(r"\] epoch \d+/\d+")
    args = ["--mode", "smoke", "--only", "01", "-p", "TASKS", "hand", "--quiet"]
    monkeypatch.setenv("SRPOSE_CACHE_DIR", str(tmp_path / "A"))
    assert runner.main(args + ["--out", str(tmp_path / "runA")]) == 0
    trained = _stream_text(tmp_path / "runA" / "executed" / "01_pose_predictor.ipynb")
    assert len(epoch.findall(trained)) >= 2, "the first run should have trained (is cache A empty?)"
    archive = tmp_path / "smoke.tar"
    assert cachetool.main(["export", "--mode", "smoke", "--out", str(archive)]) == 0
    monkeypatch.setenv("SRPOSE_CACHE_DIR", str(tmp_path / "B"))
    assert cachetool.main(["import", str(archive)]) == 0
    assert runner.main(args + ["--out", str(tmp_path / "runB")]) == 0
    log = _stream_text(tmp_path / "runB" / "executed" / "01_pose_predictor.ipynb")
    loaded = re.findall(r"loaded cached (\w+) \(", log)
    assert sorted(loaded) == ["oracle", "source_only"], log
    assert not epoch.findall(log), f"notebook 01 trained after the import:\n{log}"


def test_refuses_a_checkpoint_that_contradicts_its_manifest(cache_a, tmp_path):
    """A member whose bytes match the manifest but whose checkpoint is of another format (an archive
    re-packed by hand): refused, and no run of the archive is imported."""
    import hashlib

    cache, smoke, _ = cache_a
    good = tmp_path / "good.tar"
    cachetool.export_cache("smoke", good, cache, log=lambda s: None)
    ckpt = torch.load(cache / "runs" / smoke[1] / "final.pt", weights_only=False)
    ckpt["format_version"] = FORMAT_VERSION + 1
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    forged = buffer.getvalue()
    name = f"runs/{smoke[1]}/final.pt"

    def fix_manifest(m):
        for member in m["members"]:
            if member["path"] == name:
                member.update(size=len(forged), sha256=hashlib.sha256(forged).hexdigest())

    bad = _rewrite(good, tmp_path / "bad.tar", manifest_fn=fix_manifest,
                   member_fn=lambda n, data: forged if n == name else data)
    _refused(bad, tmp_path / "B", f"checkpoint format {FORMAT_VERSION + 1}")
