"""The executed series as a static site: ``python -m srpose_lib.docs`` (``make docs``).

    python -m srpose_lib.docs                       # the last quick run -> artifacts/docs/site/
    python -m srpose_lib.docs --mode smoke
    python -m srpose_lib.docs --run /tmp/run --out /tmp/site

Reads what the runner wrote for a run (``<run>/executed/*.ipynb``, ``<run>/results.json``) and
writes one HTML page per executed notebook (nbconvert's JupyterLab template, figures inlined
as data URIs) and ``index.html`` with the run's provenance, each notebook's status and runtime,
and its result tables (the metrics the notebook recorded). The pages need no network: the
template's script tags for require.js, MathJax and Mermaid (all from a CDN) are left out —
nothing in an executed batch run needs them (no live widgets; formulas stay readable TeX) —
and the CSS is inlined. Text progress bars that remain in cell outputs are collapsed to their
last line. The site is built in a temporary folder and swapped into place, so a failed build
never leaves half a site.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from . import utils
from .errors import SrposeError

#: nbconvert's JupyterLab template without the CDN scripts; a navigation bar on top.
PAGE_TEMPLATE = """\
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style>
.srpose-nav { font-family: sans-serif; padding: 8px 16px; border-bottom: 1px solid #ccc; background: #f6f6f6; }
.srpose-nav a { margin-right: 1.5em; }
.srpose-nav .status-failed { color: #b00; font-weight: bold; }
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.srpose_nav }}
{%- endblock body_header -%}
"""

INDEX_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f0f0f0; }
code { background: #f4f4f4; padding: 0 3px; }
.failed { color: #b00; font-weight: bold; }
"""

_PROGRESS = re.compile(r"^(?P<name>[^\n|]*?)\s*\d{1,3}%\|[^|]*\|\s*\d+(\.\d+)?[kMG]?/\d+")


def default_run_dir(mode: str) -> Path:
    return utils.default_output_dir() / "runs" / mode


def default_site_dir() -> Path:
    return utils.default_output_dir() / "docs" / "site"


def collapse_progress(text: str) -> str:
    """Keep only the last line of each run of consecutive text progress-bar lines."""
    lines = text.replace("\r", "\n").split("\n")
    out: list[str] = []
    last_bar: str | None = None
    for line in lines:
        match = _PROGRESS.match(line)
        if match and last_bar == match.group("name") and out:
            out[-1] = line
            continue
        last_bar = match.group("name") if match else None
        if line or not out or out[-1]:
            out.append(line)
    return "\n".join(out)


def _clean(book) -> None:
    for cell in book.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = collapse_progress(output.get("text", ""))


def _load_results(run: Path, mode: str | None) -> dict:
    path = run / "results.json"
    if not path.is_file():
        what = mode or "this"
        raise SrposeError(
            f"no {what} run in {run} (results.json is missing)",
            f"run the series first: make run MODE={mode or 'quick'} (or python -m srpose_lib.runner --mode "
            f"{mode or 'quick'}), then make docs MODE={mode or 'quick'}; for a try in a few minutes: make run "
            "MODE=smoke && make docs MODE=smoke")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SrposeError(f"{path} is not valid JSON ({err})", "run the series again") from None


def _seconds(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value >= 3600:
        return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"
    if value >= 90:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _nav(names: list[str], i: int, info: dict) -> str:
    parts = ['<nav class="srpose-nav"><a href="index.html">&larr; index</a>']
    if i > 0:
        parts.append(f'<a href="{names[i - 1]}.html">previous: {html.escape(names[i - 1])}</a>')
    if i + 1 < len(names):
        parts.append(f'<a href="{names[i + 1]}.html">next: {html.escape(names[i + 1])}</a>')
    status = info.get("status", "?")
    cls = "status-failed" if status != "ok" else ""
    parts.append(f'<span class="{cls}">{html.escape(status)}, {_seconds(info.get("duration_s"))}</span>')
    return " ".join(parts) + "</nav>"


def _index_markdown(results: dict, pages: dict[str, str | None]) -> str:
    from .runner import metric_tables

    v = results.get("versions", {})
    params = " ".join(f"`-p {k} {val}`" for k, val in results.get("parameters", {}).items()) or "none"
    lines = [
        f"# srpose: the executed notebook series ({results.get('mode')} mode)",
        "",
        f"Run {results.get('started')} → {results.get('finished')}, {_seconds(results.get('duration_s'))} in all; "
        f"git `{results.get('git_sha') or 'n/a'}`, srpose {v.get('srpose')}, torch {v.get('torch')}, "
        f"python {v.get('python')}, device {v.get('device')}; parameters: {params}.",
        "",
        "Each page is the notebook as the runner executed it, with its figures and tables; the numbers below are "
        "the metrics the notebooks recorded (`metrics/<notebook>.json`, PCK@0.05 in percent).",
        "",
        "| notebook | status | runtime | budget |",
        "|---|---|---|---|",
    ]
    for name, info in results.get("notebooks", {}).items():
        link = f"[{name}]({pages[name]})" if pages.get(name) else f"{name} (no executed copy)"
        status = info.get("status", "?") + (" (over budget)" if info.get("over_budget") else "")
        if info.get("status") != "ok":
            status = f'<span class="failed">{status}</span>'
        lines.append(f"| {link} | {status} | {_seconds(info.get('duration_s'))} | {_seconds(info.get('budget_s'))} |")
    for name, info in results.get("notebooks", {}).items():
        lines += ["", f"## {name}"]
        if info.get("error"):
            lines += ["", f"**failed**: `{info['error']}`"]
        if info.get("metrics"):
            lines += metric_tables(info["metrics"])
        elif not info.get("error"):
            lines += ["", "(no metrics recorded)"]
    return "\n".join(lines) + "\n"


def build_site(run: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
               mode: str | None = "quick", log=print) -> Path:
    """Build the site of a run; returns the path of its ``index.html``."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown import markdown2html_mistune

    run_dir = Path(run) if run is not None else default_run_dir(mode or "quick")
    results = _load_results(run_dir, mode)
    site = Path(out) if out is not None else default_site_dir()
    site.parent.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"srpose_page.html.j2": PAGE_TEMPLATE})],
                            template_file="srpose_page.html.j2", embed_images=True)
    names = list(results.get("notebooks", {}))
    executed = {}
    for name in names:
        path = run_dir / "executed" / f"{name}.ipynb"
        if not path.is_file():  # results.json may carry the path of another output folder
            alt = Path(results["notebooks"][name].get("executed") or "")
            path = alt if alt.is_file() else path
        executed[name] = path if path.is_file() else None
    linked = [n for n in names if executed[n]]
    staging = Path(tempfile.mkdtemp(dir=site.parent, prefix=f".{site.name}."))
    try:
        pages: dict[str, str | None] = {n: None for n in names}
        for i, name in enumerate(linked):
            book = nbformat.read(executed[name], as_version=4)
            _clean(book)
            resources = {"metadata": {"name": name},
                         "srpose_nav": _nav(linked, i, results["notebooks"][name])}
            body, _ = exporter.from_notebook_node(book, resources=resources)
            (staging / f"{name}.html").write_text(body, encoding="utf-8")
            pages[name] = f"{name}.html"
        body = markdown2html_mistune(_index_markdown(results, pages))
        title = f"srpose: executed series ({html.escape(str(results.get('mode')))})"
        index = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{title}</title>\n'
                 f"<style>{INDEX_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
        (staging / "index.html").write_text(index, encoding="utf-8")
        shutil.copyfile(run_dir / "results.json", staging / "results.json")
        os.chmod(staging, 0o755)
        old = None
        if site.exists():
            old = site.parent / f".{site.name}.old-{os.getpid()}"
            os.replace(site, old)
        os.replace(staging, site)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    missing = [n for n in names if not executed[n]]
    log(f"docs: {len(linked)} notebook page(s) + index from {run_dir} -> {site / 'index.html'}"
        + (f"; no executed copy for {', '.join(missing)}" if missing else ""))
    return site / "index.html"


def external_references(page: str) -> list[str]:
    """``src``/``href`` attributes of scripts, stylesheets, images and frames that point to the
    network (what an offline reader would miss); ordinary hyperlinks in the text are not counted."""
    found = []
    for tag in re.finditer(r"<(script|link|img|iframe|source|embed)\b[^>]*>", page, flags=re.I):
        for attr in re.finditer(r"\b(?:src|href)\s*=\s*[\"']([^\"']*)[\"']", tag.group(0), flags=re.I):
            if re.match(r"^(https?:)?//", attr.group(1).strip(), flags=re.I):
                found.append(attr.group(1))
    for url in re.finditer(r"@import\s+(?:url\()?[\"']?((?:https?:)?//[^\"')\s]+)", page, flags=re.I):
        found.append(url.group(1))
    for url in re.finditer(r"(?<!@)\bimport\b[^;'\"]*?\(?\s*[\"']((?:https?:)?//[^\"']+)[\"']", page):
        found.append(url.group(1))  # JavaScript modules (import ... from "https://...")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srpose_lib.docs",
                                     description="Build the static HTML site of an executed notebook run.")
    parser.add_argument("--mode", default="quick", help="take artifacts/runs/<mode> (default quick)")
    parser.add_argument("--run", metavar="DIR", help="the run folder (default artifacts/runs/<mode>)")
    parser.add_argument("--out", metavar="DIR", help="the site folder (default artifacts/docs/site)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        index = build_site(args.run, args.out, args.mode)
    except SrposeError as err:
        print(f"srpose docs: error: {err.message}", file=sys.stderr)
        if err.fix:
            print(f"  fix: {err.fix}", file=sys.stderr)
        return 1
    print(f"docs: built in {time.perf_counter() - start:.1f} s; open {index.as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
