"""``make docs``: the static site of an executed run (srpose_lib.docs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from srpose_lib import docs, runner
from srpose_lib.errors import SrposeError

DATA_NOTEBOOK = "00_data_and_domain_gap"


def test_progress_floods_collapse_to_their_last_line():
    text = ("start\n"
            "train hand:  10%|#         | 10/100 [00:01<00:09, 9.5it/s]\n"
            "train hand:  50%|#####     | 50/100 [00:05<00:05, 9.5it/s]\n"
            "train hand: 100%|##########| 100/100 [00:10<00:00, 9.5it/s]\n"
            "[source_only hand] epoch 1/2  loss 3.9\n"
            "eval: 100%|##########| 4/4 [00:01<00:00, 3.1it/s]\n")
    out = docs.collapse_progress(text).splitlines()
    assert out == ["start", "train hand: 100%|##########| 100/100 [00:10<00:00, 9.5it/s]",
                   "[source_only hand] epoch 1/2  loss 3.9", "eval: 100%|##########| 4/4 [00:01<00:00, 3.1it/s]"]


def test_no_run_says_what_to_run(tmp_path):
    with pytest.raises(SrposeError, match="no quick run") as err:
        docs.build_site(tmp_path / "runs" / "quick", tmp_path / "site", mode="quick")
    assert "make run MODE=quick" in err.value.fix
    assert not (tmp_path / "site").exists()
    assert docs.main(["--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "site")]) == 1


def test_external_references_are_found():
    page = ('<script src="https://cdn.example/require.js"></script><link rel="stylesheet" href="//x/y.css">'
            '<img src="data:image/png;base64,AAA"><a href="https://arxiv.org">paper</a>'
            '<style>@import url("https://fonts.example/css");</style>')
    assert docs.external_references(page) == ["https://cdn.example/require.js", "//x/y.css",
                                              "https://fonts.example/css"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRPOSE_CACHE_DIR", str(tmp_path_factory.mktemp("docs_cache")))
        mp.setenv("TQDM_DISABLE", "1")
        code = runner.main(["--mode", "smoke", "--only", DATA_NOTEBOOK[:2], "--out", str(out), "--quiet"])
    assert code == 0, f"the smoke run of {DATA_NOTEBOOK} failed; see {out / 'summary.md'}"
    return out


@pytest.mark.notebooks
def test_site_from_a_smoke_run(smoke_run, tmp_path):
    site = tmp_path / "site"
    (site / "stale.html").parent.mkdir(parents=True)
    (site / "stale.html").write_text("old")
    index = docs.build_site(smoke_run, site, mode="smoke", log=lambda s: None)
    assert index == site / "index.html"
    assert not (site / "stale.html").exists(), "a rebuild must replace the old site"
    assert sorted(p.name for p in site.iterdir()) == sorted(["index.html", f"{DATA_NOTEBOOK}.html", "results.json"])
    results = json.loads((smoke_run / "results.json").read_text())
    info = results["notebooks"][DATA_NOTEBOOK]

    text = index.read_text()
    assert f'href="{DATA_NOTEBOOK}.html"' in text
    assert "smoke mode" in text and results["git_sha"] in text
    assert docs._seconds(info["duration_s"]) in text  # the runtime
    some_metric = next(iter(info["metrics"])).rpartition("/")[0]
    assert some_metric in text, "the index should carry the recorded result tables"
    assert "<table>" in text

    page = (site / f"{DATA_NOTEBOOK}.html").read_text()
    images = re.findall(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/=\s]{200,}"', page)
    png_outputs = sum(1 for c in json.loads(Path(info["executed"]).read_text())["cells"]
                      for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert png_outputs > 0 and len(images) == png_outputs, "every figure of the notebook should be inlined"
    assert 'href="index.html"' in page
    for path in site.glob("*.html"):
        refs = docs.external_references(path.read_text())
        assert refs == [], f"{path.name} needs the network for {refs}"
    assert "Traceback" not in page
