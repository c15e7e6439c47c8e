"""data_scripts: --check on an empty DATA_DIR, the resumable download helper against a fake
server, safe unpacking, and the command line's prepare/resume/force paths."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

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
