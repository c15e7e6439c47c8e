"""data_scripts: --check on an empty DATA_DIR, the resumable download helper against a fake
server, safe unpacking, and the command line's prepare/resume/force paths."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from data_scripts import check as check_script
from data_scripts import common
from data_scripts.common import download, extract, run
from srpose_lib.data.prepared import load_prepared, prepared_dir
from srpose_lib.data.readers import DATASETS
from srpose_lib.errors import DataError



@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch):
    monkeypatch.setattr(common, "_RETRY_DELAY_SCALE", 0.0)


def _script(name):
    import importlib

    return importlib.import_module(f"data_scripts.{name}").SCRIPT


# ----------------------------------------------------------------------------- --check


@pytest.mark.parametrize("name", list(DATASETS))
def test_check_on_an_empty_data_dir_says_what_to_get(tmp_path, capsys, name):
    assert run(_script(name), ["--data-dir", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    info = DATASETS[name]
    assert "prepared: missing" in out and "raw: missing" in out
    assert f"python -m data_scripts.{name} --data-dir {tmp_path}" in out
    if info["downloads"]:
        assert info["downloads"][0]["url"] in out and "--download" in out
    else:
        assert "by hand" in out and info["manual_reason"] in out
    assert str(tmp_path / "raw" / name) in out  # where to put it
    assert not any(tmp_path.iterdir())  # --check creates nothing


def test_check_all_lists_every_registered_dataset(tmp_path, capsys):
    assert check_script.main(["--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for name, info in DATASETS.items():
        assert f"{name} — {info['title']}" in out
    assert out.count("get it:") >= len(DATASETS)


# ----------------------------------------------------------------------------- download


class FakeServer:
    """``urlopen`` stand-in serving ``data`` with Range support; the first response can
    break off after ``fail_after`` bytes; ``honor_range=False`` ignores Range (HTTP 200)."""

    def __init__(self, data: bytes, fail_after: int | None = None, honor_range: bool = True, status: int = 200):
        self.data = data
        self.fail_after = fail_after
        self.honor_range = honor_range
        self.status = status
        self.requests: list[str | None] = []

    def __call__(self, request, timeout=None):
        rng = request.get_header("Range")
        self.requests.append(rng)
        if self.status != 200:
            raise urllib.error.HTTPError(request.full_url, self.status, "Not Found", {}, None)
        start = 0
        if rng and self.honor_range:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(self.data):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", {}, None)
        body = self.data[start:]
        headers = {"Content-Length": str(len(body))}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
        limit = self.fail_after
        self.fail_after = None
        return _Response(body, 206 if start else 200, headers, limit)


class _Response:
    def __init__(self, body, status, headers, fail_after):
        self._buf = io.BytesIO(body)
        self.status = status
        self.headers = headers
        self._left = fail_after

    def read(self, n=-1):
        if self._left is not None:
            if self._left <= 0:
                raise ConnectionResetError("connection reset by peer")
            n = min(n, self._left)
            self._left -= n
        return self._buf.read(n)

    def getcode(self):
        return self.status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


DATA = bytes(range(256)) * 400  # 102,400 bytes


def test_download_resumes_with_range_after_a_broken_connection(tmp_path, monkeypatch):
    server = FakeServer(DATA, fail_after=30000)
    monkeypatch.setattr(urllib.request, "urlopen", server)
    dest = download("https://example.org/x.zip", tmp_path / "x.zip", sha256=hashlib.sha256(DATA).hexdigest(),
                    chunk=4096, show_progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests[0] is None and server.requests[1].startswith("bytes=") and server.requests[1] != "bytes=0-"
    assert not (tmp_path / "x.zip.part").exists()
    # a finished, verified file is not fetched again
    server.requests.clear()
    download("https://example.org/x.zip", dest, size=len(DATA), show_progress=False)
    assert server.requests == []


def test_download_resumes_a_part_file_from_an_earlier_run(tmp_path, monkeypatch):
    (tmp_path / "x.zip.part").write_bytes(DATA[:5000])
    server = FakeServer(DATA)
    monkeypatch.setattr(urllib.request, "urlopen", server)
    download("https://example.org/x.zip", tmp_path / "x.zip", md5=hashlib.md5(DATA).hexdigest(), show_progress=False)
    assert server.requests == ["bytes=5000-"] and (tmp_path / "x.zip").read_bytes() == DATA


def test_download_restarts_when_the_server_ignores_range(tmp_path, monkeypatch):
    (tmp_path / "x.zip.part").write_bytes(b"garbage that is not the start")
    monkeypatch.setattr(urllib.request, "urlopen", FakeServer(DATA, honor_range=False))
    download("https://example.org/x.zip", tmp_path / "x.zip", size=len(DATA), show_progress=False)
    assert (tmp_path / "x.zip").read_bytes() == DATA


def test_download_rejects_a_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", FakeServer(DATA))
    with pytest.raises(DataError, match="corrupt.*sha256"):
        download("https://example.org/x.zip", tmp_path / "x.zip", sha256="0" * 64, show_progress=False)
    assert not (tmp_path / "x.zip").exists() and (tmp_path / "x.zip.part.bad").exists()


def test_download_into_a_folder_we_cannot_write_is_not_retried_as_a_network_error(tmp_path, monkeypatch):
    # root ignores file permissions: the open of the .part file is monkeypatched to refuse
    server = FakeServer(DATA)
    monkeypatch.setattr(urllib.request, "urlopen", server)

    def refuse(path, *a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(common, "open", refuse, raising=False)
    with pytest.raises(DataError, match=r"permission denied on .*x\.zip\.part") as e:
        download("https://example.org/x.zip", tmp_path / "x.zip", show_progress=False)
    assert len(server.requests) == 1 and "chmod" in e.value.fix and "resumes" in e.value.fix


def test_download_errors_name_the_url_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", FakeServer(DATA, status=404))
    with pytest.raises(DataError, match="HTTP 404") as e:
        download("https://example.org/gone.zip", tmp_path / "gone.zip", show_progress=False)
    assert "by hand" in e.value.fix

    def always_down(request, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", always_down)
    with pytest.raises(DataError, match="interrupted") as e:
        download("https://example.org/x.zip", tmp_path / "x.zip", retries=1, show_progress=False)
    assert "resumes" in e.value.fix


# ----------------------------------------------------------------------------- unpack


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_is_atomic_and_idempotent(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"top/one.txt": b"1", "top/sub/two.txt": b"2"}))
    target = tmp_path / "raw"
    extract(archive, target, show_progress=False)
    assert (target / "top" / "sub" / "two.txt").read_bytes() == b"2"
    assert (target / ".extracted-a.zip").is_file()
    (target / "top" / "one.txt").write_bytes(b"edited")
    extract(archive, target, show_progress=False)  # marker: skipped
    assert (target / "top" / "one.txt").read_bytes() == b"edited"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip_bytes({"../escape.txt": b"x"}))
    with pytest.raises(DataError, match="outside"):
        extract(bad, target, show_progress=False)
    assert not (tmp_path / "escape.txt").exists()
    trunc = tmp_path / "trunc.zip"
    trunc.write_bytes(archive.read_bytes()[:30])
    with pytest.raises(DataError, match="trunc.zip"):
        extract(trunc, target, show_progress=False)
    assert not (target / ".extracted-trunc.zip").exists()


# ----------------------------------------------------------------------------- the command line


def _freihand_zip(tmp_path: Path) -> Path:
    from test_readers_hands import write_freihand

    src = tmp_path / "src"
    write_freihand(src, n=2)
    archive = tmp_path / "FreiHAND_pub_v2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    return archive


def test_download_then_prepare_then_skip_then_force(tmp_path, monkeypatch, capsys):
    archive = _freihand_zip(tmp_path)
    monkeypatch.setitem(DATASETS["freihand"], "downloads", [
        {"url": archive.as_uri(), "filename": "FreiHAND_pub_v2.zip", "size": archive.stat().st_size,
         "md5": hashlib.md5(archive.read_bytes()).hexdigest(), "sha256": None}])
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--crop-size", "32"]
    assert run(_script("freihand"), args + ["--download"], show_progress=False) == 0
    out = capsys.readouterr().out
    assert "checksum verified" in out and "prepared {'train': 7, 'test': 1}" in out
    assert (data / "downloads" / "FreiHAND_pub_v2.zip").is_file()
    assert (data / "raw" / "freihand" / "training_xyz.json").is_file()
    assert len(load_prepared(data, "freihand", "train")) == 7
    # idempotent: a second run does nothing
    assert run(_script("freihand"), args, show_progress=False) == 0
    assert "already prepared" in capsys.readouterr().out
    # a different crop size needs --force
    assert run(_script("freihand"), ["--data-dir", str(data), "--crop-size", "48"], show_progress=False) == 2
    assert "--force" in capsys.readouterr().err
    assert run(_script("freihand"), ["--data-dir", str(data), "--crop-size", "48", "--force"],
               show_progress=False) == 0
    assert load_prepared(data, "freihand", "test").images.shape[-1] == 48
    assert run(_script("freihand"), ["--data-dir", str(data), "--check"]) == 0
    out = capsys.readouterr().out
    assert "prepared: complete (train 7, test 1)" in out and "raw: complete" in out


def test_interrupted_prepare_resumes(tmp_path, monkeypatch, capsys):
    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=5)  # task gs: 5 samples, 4 train + 1 test
    real = common.decode_source
    calls = {"n": 0}

    def flaky(path, fix):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(path, fix)

    monkeypatch.setattr(common, "decode_source", flaky)
    args = ["--data-dir", str(tmp_path), "--crop-size", "32", "--task", "gs"]
    assert run(_script("freihand"), args, show_progress=False) == 130
    err = capsys.readouterr().err
    assert f"python -m data_scripts.freihand --data-dir {tmp_path} --crop-size 32 --task gs" in err
    with pytest.raises(DataError, match="interrupted") as e:
        load_prepared(tmp_path, "freihand", "train")
    assert "--task gs" in e.value.fix  # the reader's message names the command that resumes it
    assert run(_script("freihand"), args, show_progress=False) == 0
    assert calls["n"] == 4 + 2  # 3 crops were on disk: only the 4th and 5th images were decoded
    assert len(load_prepared(tmp_path, "freihand", "train")) == 4
    assert len(load_prepared(tmp_path, "freihand", "test")) == 1


def test_missing_raw_data_explains_what_to_fetch(tmp_path, capsys):
    assert run(_script("mvhand"), ["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "MVHand not found" in err and "dropbox.com" in err and str(tmp_path / "raw" / "mvhand") in err
    assert not prepared_dir(tmp_path, "mvhand").exists()
    assert run(_script("h3d"), ["--data-dir", str(tmp_path), "--download"]) == 2
    assert "cannot be downloaded automatically" in capsys.readouterr().err


def test_incomplete_raw_release_is_refused_before_preparing(tmp_path, capsys):
    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=2)
    (tmp_path / "raw" / "freihand" / "training" / "rgb" / "00000005.jpg").unlink()
    assert run(_script("freihand"), ["--data-dir", str(tmp_path)], show_progress=False) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and "00000005.jpg" in err
    assert not (prepared_dir(tmp_path, "freihand") / "meta.json").exists()


# ----------------------------------------------------------------------------- no input may destroy data


def _prepared_snapshot(data: Path, name: str) -> dict:
    folder = prepared_dir(data, name)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bad", [["--crop-size", "0"], ["--crop-size", "-3"], ["--crop-size", "abc"]])
def test_bad_crop_size_is_refused_before_anything_is_deleted(tmp_path, capsys, bad):
    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=2)
    assert run(_script("freihand"), ["--data-dir", str(tmp_path), "--crop-size", "32"], show_progress=False) == 0
    before = _prepared_snapshot(tmp_path, "freihand")
    capsys.readouterr()
    # the case: --force with a crop size of 0 used to empty the folder, then crash
    assert run(_script("freihand"), ["--data-dir", str(tmp_path), *bad, "--force"], show_progress=False) == 2
    err = capsys.readouterr().err
    assert "error: python -m data_scripts.freihand: argument --crop-size:" in err
    assert "crop side in pixels" in err and "fix: run `python -m data_scripts.freihand --help`" in err
    assert "Traceback" not in err
    assert _prepared_snapshot(tmp_path, "freihand") == before
    assert len(load_prepared(tmp_path, "freihand", "train")) == 7


@pytest.mark.parametrize("option,value", [("--every", "0"), ("--every", "-3"), ("--test-size", "-1")])
def test_bad_every_and_test_size_are_refused(tmp_path, capsys, option, value):
    from test_readers_bodies import write_human36m

    write_human36m(tmp_path / "raw" / "human36m", subjects=(1, 9))
    assert run(_script("human36m"), ["--data-dir", str(tmp_path), option, value], show_progress=False) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be a whole number >= " in err and f"got {value}" in err
    assert not prepared_dir(tmp_path, "human36m").exists()
    # the reader itself no longer takes 0 or a negative step as 1
    from srpose_lib.data.readers import human36m

    with pytest.raises(DataError, match="every must be a whole number >= 1"):
        human36m.read(tmp_path / "raw" / "human36m", every=0)


def test_failed_or_interrupted_force_leaves_the_finished_data(tmp_path, monkeypatch, capsys):
    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=2)
    args = ["--data-dir", str(tmp_path), "--crop-size", "32"]
    assert run(_script("freihand"), args, show_progress=False) == 0
    before = _prepared_snapshot(tmp_path, "freihand")
    real = common.decode_source
    calls = {"n": 0, "fail": None}

    def flaky(path, fix):
        calls["n"] += 1
        if calls["n"] == 3 and calls["fail"] is not None:
            raise calls["fail"]
        return real(path, fix)

    monkeypatch.setattr(common, "decode_source", flaky)
    force = ["--data-dir", str(tmp_path), "--crop-size", "48", "--force"]
    # a --force that fails on a bad image: the finished folder is untouched and still loads
    calls["fail"] = DataError("image x could not be decoded", "restore it")
    assert run(_script("freihand"), force, show_progress=False) == 2
    assert _prepared_snapshot(tmp_path, "freihand") == before
    assert load_prepared(tmp_path, "freihand", "test").images.shape[-1] == 32
    staging = tmp_path / "prepared" / ".freihand.new"
    assert staging.is_dir()
    # an interrupted --force: the same, and the command it prints to resume keeps --force
    calls.update(n=0, fail=KeyboardInterrupt())
    assert run(_script("freihand"), force, show_progress=False) == 130
    assert f"python -m data_scripts.freihand --data-dir {tmp_path} --crop-size 48 --force" in capsys.readouterr().err
    assert _prepared_snapshot(tmp_path, "freihand") == before
    # a plain run says the finished data is there and points at the unfinished build
    calls["fail"] = None
    assert run(_script("freihand"), args, show_progress=False) == 0
    assert "unfinished --force build" in capsys.readouterr().err
    # the next --force resumes the staged build (2 + 2 crops on disk from the two tries) and
    # only then swaps it in
    assert run(_script("freihand"), force, show_progress=False) == 0
    meta = json.loads((prepared_dir(tmp_path, "freihand") / "meta.json").read_text())
    assert meta["crop_size"] == 48 and meta["source"]["crops_reused"] == 4 and meta["source"]["crops_written"] == 4
    assert load_prepared(tmp_path, "freihand", "train").images.shape[-1] == 48
    assert not staging.exists() and sorted(p.name for p in (tmp_path / "prepared").iterdir()) == ["freihand"]


def test_interrupted_first_force_resumes_without_force(tmp_path, monkeypatch, capsys):
    """With no finished folder, --force works in place; its resume command drops --force
    (which would start again) and the rerun reuses the crops on disk."""
    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=5)
    real = common.decode_source
    calls = {"n": 0}

    def flaky(path, fix):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(path, fix)

    monkeypatch.setattr(common, "decode_source", flaky)
    args = ["--data-dir", str(tmp_path), "--crop-size", "32", "--task", "gs"]
    assert run(_script("freihand"), args + ["--force"], show_progress=False) == 130
    err = capsys.readouterr().err
    assert f"run `python -m data_scripts.freihand --data-dir {tmp_path} --crop-size 32 --task gs` to resume" in err
    assert run(_script("freihand"), args, show_progress=False) == 0
    assert calls["n"] == 4 + 2


# OS errors. The tests run as root, which ignores file permissions, and no disk can be pulled
# in a test: the OS call is monkeypatched to fail exactly as it does for a user (a real
# read-only bind mount gives the same EROFS; see the closing note of issue 10).
@pytest.mark.parametrize("code,words", [
    (errno.EACCES, ["permission denied on", "chmod -R u+rwX", "a folder you can write"]),
    (errno.EROFS, ["read-only file system", "remount that disk read-write"]),
    (errno.ENODEV, ["cannot be reached", "is mounted and connected"]),
])
def test_os_errors_before_preparing_name_the_folder_and_the_fix(tmp_path, monkeypatch, capsys, code, words):
    import os

    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=2)
    real = os.mkdir

    def refuse(path, *a, **kw):
        if str(path).endswith("prepared"):
            raise (PermissionError if code == errno.EACCES else OSError)(code, os.strerror(code), str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "mkdir", refuse)
    assert run(_script("freihand"), ["--data-dir", str(tmp_path), "--crop-size", "32"], show_progress=False) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(tmp_path / "prepared") in err and f"data folder {tmp_path}" in err
    for w in words:
        assert w in err
    assert f"python -m data_scripts.freihand --data-dir {tmp_path} --crop-size 32" in err


def test_os_error_while_writing_crops_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    from srpose_lib.data import prepared as P
    from test_readers_hands import write_freihand

    write_freihand(tmp_path / "raw" / "freihand", n=2)
    real = P._write_bytes_atomic
    calls = []

    def vanish_after_two(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error", str(path))
        real(path, data)

    monkeypatch.setattr(P, "_write_bytes_atomic", vanish_after_two)
    args = ["--data-dir", str(tmp_path), "--crop-size", "32"]
    assert run(_script("freihand"), args, show_progress=False) == 2
    err = capsys.readouterr().err
    assert f"error: {calls[2]} cannot be reached (Input/output error)" in err and "mounted and connected" in err
    monkeypatch.setattr(P, "_write_bytes_atomic", real)
    assert run(_script("freihand"), args, show_progress=False) == 0
    meta = json.loads((prepared_dir(tmp_path, "freihand") / "meta.json").read_text())
    assert meta["source"]["crops_reused"] == 2


def test_empty_split_is_an_error_naming_the_empty_files(tmp_path, capsys):
    from test_readers_bodies import write_human36m

    raw = tmp_path / "raw" / "human36m"
    write_human36m(raw)
    for s in (9, 11):  # present, but listing no image
        path = raw / "annotations" / f"Human36M_subject{s}_data.json"
        path.write_text(json.dumps({"images": [], "annotations": []}))
    assert run(_script("human36m"), ["--data-dir", str(tmp_path), "--crop-size", "32"], show_progress=False) == 2
    err = capsys.readouterr().err
    assert "the test split came out empty" in err
    for s in (9, 11):
        assert f"{raw / 'annotations' / f'Human36M_subject{s}_data.json'} (0 images)" in err
    assert "--check" in err
    assert not (prepared_dir(tmp_path, "human36m") / "meta.json").exists()


def _freihand_with_nan(tmp_path: Path) -> Path:
    from test_readers_hands import write_freihand

    raw = tmp_path / "raw" / "freihand"
    write_freihand(raw, n=2)
    xyz = json.loads((raw / "training_xyz.json").read_text())
    xyz[1][3][0] = float("nan")  # id 1, joint 3 (thumb_dip): its projection is NaN in all 4 versions
    (raw / "training_xyz.json").write_text(json.dumps(xyz))
    return raw


def test_non_finite_keypoints_are_prepared_invisible_with_a_warning(tmp_path, capsys):
    raw = _freihand_with_nan(tmp_path)
    assert run(_script("freihand"), ["--data-dir", str(tmp_path), "--crop-size", "32"], show_progress=False) == 0
    err = capsys.readouterr().err
    assert "warning: freihand: 4 visible joints in 4 samples have a non-finite position" in err
    assert "joint 3 (thumb_dip)" in err and str(raw / "training_xyz.json") in err and "--non-finite error" in err
    total = 0
    for split in ("train", "test"):
        sp = load_prepared(tmp_path, "freihand", split)
        bad = ~torch.isfinite(sp.keypoints).all(-1)
        assert not (bad & sp.visible).any()  # never stored as visible
        total += int(bad.sum())
    assert total == 4
    meta = json.loads((prepared_dir(tmp_path, "freihand") / "meta.json").read_text())
    assert meta["source"]["non_finite_keypoints"] == {"policy": "invisible", "joints": 4, "samples": 4,
                                                      "samples_left_out": 0}


def test_non_finite_keypoints_refused_with_the_flag(tmp_path, capsys):
    raw = _freihand_with_nan(tmp_path)
    args = ["--data-dir", str(tmp_path), "--crop-size", "32", "--non-finite", "error"]
    assert run(_script("freihand"), args, show_progress=False) == 2
    err = capsys.readouterr().err
    assert "a visible keypoint has no finite position" in err and "joint 3 (thumb_dip)" in err
    assert str(raw / "training_xyz.json") in err and "sample 'training/rgb/0000000" in err
    assert "(4 such joints in 4 samples)" in err
    assert f"--data-dir {tmp_path} --crop-size 32 --non-finite invisible`" in err
    assert not prepared_dir(tmp_path, "freihand").exists() or not any(prepared_dir(tmp_path, "freihand").iterdir())


def test_16_bit_image_is_scaled_to_8_bit(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from test_readers_hands import write_freihand

    raw = tmp_path / "raw" / "freihand"
    write_freihand(raw, n=2)
    path = raw / "training" / "rgb" / "00000001.jpg"  # a PNG under the release's name, as a re-save gives
    eight = np.asarray(Image.open(path).convert("L"), dtype=np.uint16)
    Image.fromarray(eight * 257).save(path, format="PNG")  # the same picture, 16 bit
    assert Image.open(path).mode == "I;16"
    assert run(_script("freihand"), ["--data-dir", str(tmp_path), "--crop-size", "32"], show_progress=False) == 0
    decoded = common.decode_source(path, "fix")
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 224, 224)
    assert torch.equal(decoded[0], torch.from_numpy(eight.astype(np.uint8)))  # 257 v / 257 = v exactly


def test_unreadable_image_format_names_the_absolute_path_and_a_fix(tmp_path, monkeypatch, capsys):
    from test_readers_hands import write_freihand

    raw = tmp_path / "raw" / "freihand"
    write_freihand(raw, n=2)
    path = raw / "training" / "rgb" / "00000001.jpg"
    path.write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header with nothing behind it
    monkeypatch.chdir(tmp_path)
    assert run(_script("freihand"), ["--data-dir", ".", "--crop-size", "32"], show_progress=False) == 2
    err = capsys.readouterr().err
    assert f"error: image {path} is in a format srpose cannot read" in err
    assert f"Image.open('{path}').convert('RGB').save('{path}', format='JPEG')" in err
    assert "decode images to RGB uint8 tensors" not in err
