"""The notebooks in JupyterLab itself, driven in headless Chromium (``make test-browser``).

JupyterLab is started on a free local port (127.0.0.1, a token, no browser of its own) over a
temporary copy of two notebooks, with ``SRPOSE_RUN_MODE=smoke`` and ``SRPOSE_INTERACTIVE=1``
(the widgets are built, as for a learner). Playwright drives the system Chromium: open the
notebook, Run > Run All Cells, wait until every code cell has run and the kernel is idle, then
check that no cell shows an error, that every figure the notebook produced is rendered as a
decoded image, and that the ipywidgets explorer answers a dropdown change and a slider move
with a new image. Screenshots go to ``artifacts/browser/`` (``SRPOSE_BROWSER_OUT`` overrides).
Server, kernels and browser are shut down by fixture finalizers, also when a test fails.

Deselected from ``make test`` (marker ``browser``): it needs Chromium, which
``make test-browser`` installs with apt-get when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from srpose_lib import nb, utils

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SRPOSE_CHROMIUM", "/usr/bin/chromium")
#: Chromium's flags: headless in a container as root, and quiet on a closed network (without
#: the background-networking flags Chromium keeps calling home).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: The notebooks opened: 00 (no training) and 01 (trains four tiny models in smoke mode); both
#: end with an ipywidgets explorer.
NOTEBOOKS = ["00_data_and_domain_gap", "01_pose_predictor"]
SERVER_START_S = 180
RUN_ALL_S = 900  # smoke budgets are 60 s and 120 s; a loaded 2-core CI machine is slower
WIDGET_S = 120

#: JupyterLab settings: every cell stays in the page (no virtual scrolling), so the checks
#: and the screenshots see the whole notebook; no news or update checks over the network.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _out_dir() -> Path:
    env = os.environ.get("SRPOSE_BROWSER_OUT", "").strip()
    folder = Path(env) if env else utils.default_output_dir() / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """A JupyterLab server over a copy of the notebooks; shut down (kernels too) at the end."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(nb.notebook_path(name), root / f"{name}.ipynb")
    settings = base / "settings"
    for rel, values in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items()
           if k not in ("TQDM_DISABLE", "SRPOSE_PROGRESS", "SRPOSE_DATA_DIR")}
    env.update({
        "SRPOSE_RUN_MODE": "smoke",      # the env fallback of every notebook's RUN_MODE
        "SRPOSE_INTERACTIVE": "1",       # widgets are built, as in a learner's JupyterLab
        "SRPOSE_OUTPUT_DIR": str(base / "output"),
        "SRPOSE_CACHE_DIR": str(base / "cache"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(utils.repo_root()), env.get("PYTHONPATH", ""))
                                      if p),
        "PATH": os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
        "JUPYTER_CONFIG_DIR": str(base / "jupyter_config"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
    })
    port, token = _free_port(), uuid.uuid4().hex
    log = base / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI and these machines run as root
        cmd.append("--allow-root")
    with open(log, "wb") as handle:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode} while starting:\n"
                            f"{server.log_tail()}")
            try:
                server.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n"
                                f"{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        _stop_server(server, proc)


def _stop_server(server: Lab, proc: subprocess.Popen) -> None:
    """Shut the kernels and the server down through the API; then SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        try:
            for kernel in json.loads(server.api("GET", "/api/kernels")):
                server.api("DELETE", f"/api/kernels/{kernel['id']}")
            server.api("POST", "/api/shutdown")
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless system Chromium through Playwright, with a fresh profile; closed at the end."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make test-browser` (it installs "
                    "the Debian package chromium with apt-get) or set SRPOSE_CHROMIUM")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    context = None
    try:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
        yield context
    finally:
        if context is not None:
            context.close()
        pw.stop()


# ---------------------------------------------------------------------------------------
# page helpers (JupyterLab 4 DOM)

_CELLS_STATE = """() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '');
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {prompts, kernel: ind ? ind.getAttribute('data-status') : null};
}"""

#: Images of the cells' own outputs (not those inside a widget), and whether each is decoded.
_OUTPUT_IMAGES = """() => {
  const out = [];
  document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell').forEach((cell, i) => {
    cell.querySelectorAll('.jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output img')
      .forEach(img => { if (!img.closest('.jupyter-widgets'))
        out.push({cell: i, ok: img.complete && img.naturalWidth > 0}); });
  });
  return out;
}"""

#: Error outputs: JupyterLab renders a cell's exception as stderr text with IPython's traceback.
_ERROR_OUTPUTS = """() => [...document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.textContent).filter(t => /Traceback|Error\\b/.test(t)).map(t => t.slice(0, 400))"""


def _wait_for_kernel(page, lab: Lab, name: str) -> None:
    """Wait until the notebook's kernel runs and is idle (the server's sessions say so),
    accepting the kernel-selection dialog (Python 3) if JupyterLab asks."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        sessions = json.loads(lab.api("GET", "/api/sessions"))
        if any(s["path"].endswith(f"{name}.ipynb") and s.get("kernel") and
               s["kernel"].get("execution_state") == "idle" for s in sessions):
            return
        page.wait_for_timeout(500)
    pytest.fail(f"{name}: no idle kernel within {SERVER_START_S} s:\n{lab.log_tail()}")


def _menu(page, menu: str, item: str) -> None:
    """Click a menu of the menu bar, then the item whose label matches ``item``."""
    page.locator(".lm-MenuBar-itemLabel").filter(has_text=re.compile(f"^{menu}$")).first.click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel").filter(has_text=re.compile(item)).first.click()


def _run_all_cells(page, name: str, lab: Lab) -> list[str]:
    """Run > Run All Cells, then wait until no cell is queued and the kernel is idle; returns
    the code cells' prompts (``[3]:``; ``[ ]:`` for a cell that never ran)."""
    _menu(page, "Run", r"^Run All Cells$")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell "
        ".jp-InputArea-prompt')].some(p => p.textContent.includes('*'))", timeout=60_000)
    deadline = time.monotonic() + RUN_ALL_S
    state, settled = {}, 0
    while time.monotonic() < deadline:
        state = page.evaluate(_CELLS_STATE)
        busy = any("*" in p for p in state["prompts"]) or state["kernel"] != "idle"
        settled = 0 if busy else settled + 1
        if settled >= 3:  # idle with nothing queued for 3 s: done (or stopped at an error)
            return state["prompts"]
        page.wait_for_timeout(1000)
    pytest.fail(f"{name}: Run All Cells did not finish within {RUN_ALL_S} s (prompts "
                f"{state.get('prompts')}, kernel {state.get('kernel')}):\n{lab.log_tail()}")


def _save(page) -> None:
    _menu(page, "File", r"^Save( Notebook)?$")
    page.wait_for_function(
        "() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-mod-dirty') && "
        "!document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')", timeout=30_000)


def _image_outputs(path: Path) -> tuple[list[int], list[str]]:
    """From the notebook file as JupyterLab saved it: per code cell the number of image
    outputs, and the error outputs (``ename: evalue``)."""
    book = nbformat.read(path, as_version=4)
    counts, errors = [], []
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        counts.append(sum(1 for o in cell.outputs if "image/png" in o.get("data", {})))
        errors += [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
    return counts, errors


def _widget_image_src(explorer) -> str:
    img = explorer.locator(".widget-output img, .jupyter-widgets-output-area img").first
    img.wait_for(state="visible", timeout=WIDGET_S * 1000)
    return img.get_attribute("src") or ""


def _wait_new_image(explorer, before: str, what: str) -> str:
    deadline = time.monotonic() + WIDGET_S
    while time.monotonic() < deadline:
        try:
            now = _widget_image_src(explorer)
        except Exception:  # noqa: BLE001 - the output is cleared while it redraws
            now = ""
        if now and now != before:
            return now
        time.sleep(0.5)
    pytest.fail(f"the explorer's image did not change within {WIDGET_S} s after {what}")


def _screenshot_whole_notebook(page, path: Path) -> None:
    """A screenshot of the whole notebook: scrolled to the top, the page grown to its height."""
    page.evaluate("() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
                  ".jp-WindowedPanel-outer').forEach(e => { e.scrollTop = 0; })")
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
        ".jp-WindowedPanel-outer, .jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook')]"
        ".map(e => e.scrollHeight), 900)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 200, 16000)})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 900})


# ---------------------------------------------------------------------------------------
# the test


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, browser, name):
    out = _out_dir()
    page = browser.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda err: console_errors.append(str(err)))
    start = time.monotonic()
    try:
        page.goto(f"{lab.url}/lab/tree/{name}.ipynb?token={lab.token}", timeout=120_000)
        _wait_for_kernel(page, lab, name)
        prompts = _run_all_cells(page, name, lab)
        ran_s = time.monotonic() - start

        dom_errors = page.evaluate(_ERROR_OUTPUTS)
        assert not dom_errors, f"{name}: error output in the page: {dom_errors}"
        not_run = [i for i, p in enumerate(prompts) if not any(ch.isdigit() for ch in p)]
        assert not not_run, f"{name}: code cells {not_run} never ran (prompts {prompts})"
        _save(page)
        counts, file_errors = _image_outputs(lab.root / f"{name}.ipynb")
        assert not file_errors, f"{name}: error outputs in the saved notebook: {file_errors}"

        # every figure rendered: as many decoded images in the page as image outputs in the
        # notebook, cell by cell, and each cell that shows a figure produced at least one
        shown = page.evaluate(_OUTPUT_IMAGES)
        assert all(img["ok"] for img in shown), f"{name}: an image output did not decode: {shown}"
        per_cell = [sum(1 for img in shown if img["cell"] == i) for i in range(len(counts))]
        assert per_cell == counts, f"{name}: images in the page {per_cell} != image outputs {counts}"
        sources = [c.source for c in nbformat.read(nb.notebook_path(name), as_version=4).cells
                   if c.cell_type == "code"]
        silent = [i for i, src in enumerate(sources) if "plt.show()" in src and counts[i] == 0]
        assert not silent, f"{name}: code cells {silent} call plt.show() but show no figure"
        assert sum(counts) >= 5, f"{name}: only {sum(counts)} figures rendered"
        _screenshot_whole_notebook(page, out / f"{name}.png")

        # the explorer (the last cell's widget) answers a dropdown change and a slider move
        explorer = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").last.locator(
            ".jupyter-widgets.widget-vbox").first
        explorer.wait_for(state="visible", timeout=WIDGET_S * 1000)
        explorer.scroll_into_view_if_needed()
        first = _widget_image_src(explorer)
        explorer.screenshot(path=str(out / f"{name}_explorer_0.png"))
        select = explorer.locator("select").first
        options = select.locator("option").all_inner_texts()
        assert len(options) >= 2, f"{name}: the explorer's dropdown offers {options}"
        select.select_option(label=options[1])
        second = _wait_new_image(explorer, first, f"choosing {options[1]!r} in the dropdown")
        explorer.screenshot(path=str(out / f"{name}_explorer_1.png"))
        handle = explorer.locator(".noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        _wait_new_image(explorer, second, "moving the slider")
        explorer.screenshot(path=str(out / f"{name}_explorer_2.png"))
        assert not console_errors, f"{name}: JavaScript errors in the page: {console_errors}"
        print(f"{name}: ran all cells in {ran_s:.0f} s, {sum(counts)} figures, explorer ok; "
              f"screenshots in {out}")
    except BaseException:
        try:
            page.screenshot(path=str(out / f"{name}_FAILED.png"))
        except Exception:  # noqa: BLE001 - the screenshot only helps; the failure stands
            pass
        raise
    finally:
        page.close()
