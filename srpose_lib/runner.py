"""Run the notebook series in batch with papermill: ``python -m srpose_lib.runner``.

    python -m srpose_lib.runner --mode smoke                 # every notebook, CI scale
    python -m srpose_lib.runner --mode full --only 01,05 -p EPOCHS 40
    python -m srpose_lib.runner --list                       # notebooks and their parameters

Every ``-p KEY VALUE`` is checked against the parameters the selected notebooks declare
(papermill itself only warns on unknown names) and parsed to the declared type, before
anything executes. Each notebook runs in a fresh ``python3`` kernel with ``RUN_MODE``,
``INTERACTIVE=False``, ``OUTPUT_DIR=<out>`` and the ``-p`` values it declares; a failing
notebook is reported and the run goes on. The run writes ``<out>/executed/<name>.ipynb``,
``<out>/metrics/<name>.json`` (from the notebooks), ``<out>/results.json`` and
``<out>/summary.md``.

The console shows, per notebook, one start line with its expected time on this machine
(the recorded time in ``results/notebook_times.json`` scaled by this machine's bench figure,
:mod:`srpose_lib.machine`), the notebook's printed lines (training progress, key numbers;
not the text stand-ins of its figures and tables), one result line; at the end, where the
executed notebooks, the summary and the docs site are. The bench figure is measured once
per machine (``--no-bench`` skips it) and recorded in ``results.json`` and ``summary.md``
beside every notebook's wall time.

Exit status: 0 all notebooks ok, 1 some notebook failed, 2 usage or parameter error.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import machine, nb, utils
from .errors import ParameterError, SrposeError, did_you_mean

#: Per-cell limit by run mode when ``--cell-timeout`` is not given: smoke cells take seconds,
#: so a hang fails CI quickly; a quick/full training cell may legitimately run for hours
#: (the notebook budgets only warn there), so no limit.
DEFAULT_CELL_TIMEOUT_S = {"smoke": 900.0, "quick": None, "full": None}
START_TIMEOUT_S = 120
KERNEL_NAME = "python3"
#: Parameters the runner sets itself, and the option to use instead of ``-p``.
RESERVED = {"RUN_MODE": "--mode", "OUTPUT_DIR": "--out"}
#: Seconds the bench figure is measured for, per mode (a cached longer measurement is reused).
BENCH_SECONDS = {"smoke": 2.0, "quick": 8.0, "full": 8.0}
#: Where ``make docs`` writes the site (shown at the end of a run when it exists).
DOCS_SITE = Path("artifacts") / "docs" / "site" / "index.html"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


# ---------------------------------------------------------------------------------------
# arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srpose_lib.runner",
        description="Run the srpose notebooks in order with papermill and collect their metrics.",
    )
    parser.add_argument("--mode", choices=nb.RUN_MODES,
                        help="smoke (CI, seconds), quick (minutes), full (paper scale, GPU)")
    parser.add_argument("--only", metavar="NN[,NN...]",
                        help="comma-separated two-digit notebook prefixes, e.g. 00,01")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("KEY", "VALUE"),
                        help="set a notebook parameter (repeatable); see --list")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default <repo>/artifacts/runs/<mode>)")
    parser.add_argument("--list", action="store_true",
                        help="list the notebooks and their parameters, then exit")
    parser.add_argument("--cell-timeout", type=float, default=None, metavar="S",
                        help="per-cell time limit in seconds (default: 900 in smoke mode, none in quick and "
                             "full, where training cells run for as long as training takes)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not echo the notebooks' printed lines")
    parser.add_argument("--no-bench", action="store_true",
                        help="do not measure this machine's bench figure (expected times are then "
                             "the recorded ones, unscaled)")
    parser.add_argument("--notebooks-dir", help=argparse.SUPPRESS)
    return parser


def parse_value(text: str, type_name: str) -> Any:
    """Parse a ``-p`` VALUE string to the parameter's declared type.

    bool: true/false/1/0/yes/no; int; float; str as is; any other annotation: a Python
    literal. Raises :class:`ParameterError` when the text does not parse.
    """
    kind = type_name.strip()
    if kind == "str":
        return text
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ParameterError(f"{text!r} is not a bool", "use true/false, 1/0 or yes/no")
    try:
        if kind == "int":
            return int(text.strip())
        if kind == "float":
            return float(text.strip())
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ParameterError(
            f"{text!r} is not {'an' if kind == 'int' else 'a'} {kind}",
            f"give a value of type {kind}",
        ) from None


def select_notebooks(only: str | None = None,
                     notebook_dir: str | os.PathLike | None = None) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks in order, restricted to the ``--only`` prefixes."""
    folder = Path(notebook_dir) if notebook_dir is not None else nb.notebooks_dir()
    available = nb.list_notebooks(folder)
    if not available:
        raise ParameterError(
            f"no notebooks named NN_*.ipynb in {folder}",
            "run from a srpose checkout (pip install -e .) whose notebooks/ folder holds the series",
        )
    if not only:
        return available
    by_prefix: dict[str, list[Path]] = {}
    for path in available:
        by_prefix.setdefault(path.name[:2], []).append(path)
    wanted = [p.strip() for p in only.split(",") if p.strip()]
    wanted = [p.zfill(2) if p.isdigit() else p for p in wanted]
    unknown = [p for p in wanted if p not in by_prefix]
    if unknown or not wanted:
        listing = ", ".join(f"{k} ({v[0].stem})" for k, v in by_prefix.items())
        raise ParameterError(
            f"--only {only!r}: unknown notebook prefix {', '.join(unknown) or '(none given)'}",
            f"use two-digit prefixes separated by commas; available: {listing}",
        )
    return [path for path in available if path.name[:2] in wanted]


def validate_parameters(pairs: Sequence[Sequence[str]],
                        notebooks: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Check ``-p`` pairs against the notebooks' declared parameters and parse them.

    Returns ``{notebook stem: {NAME: value}}`` holding, for each notebook, only the names
    it declares. Raises :class:`ParameterError` for a reserved name, a name no selected
    notebook declares, or a value that does not parse to the declared type.
    """
    declared = {path.stem: nb.declared_parameters(path) for path in notebooks}
    known = sorted({name for params in declared.values() for name in params})
    per_notebook: dict[str, dict[str, Any]] = {stem: {} for stem in declared}
    for key, text in pairs:
        if key in RESERVED:
            raise ParameterError(
                f"-p {key} is set by the runner",
                f"use {RESERVED[key]} instead",
            )
        owners = [stem for stem, params in declared.items() if key in params]
        if not owners:
            raise ParameterError(
                f"unknown parameter -p {key}: no selected notebook declares it "
                f"({', '.join(declared)})",
                did_you_mean(key, [k for k in known if k not in RESERVED]),
            )
        for stem in owners:
            type_name = declared[stem][key]["type"]
            try:
                per_notebook[stem][key] = parse_value(text, type_name)
            except ParameterError as err:
                raise ParameterError(
                    f"-p {key} {text}: {err.message} (declared `{key}: {type_name}` "
                    f"in {stem})",
                    err.fix,
                ) from None
    return per_notebook


def notebook_budget(path: Path, mode: str) -> float | None:
    """``metadata.srpose.budget_s[mode]`` of a notebook, in seconds (None when absent)."""
    import nbformat

    try:
        meta = nbformat.read(path, as_version=4).metadata
    except Exception:  # noqa: BLE001 - an unreadable notebook has no budget
        return None
    budget = meta.get("srpose", {}).get("budget_s", {}).get(mode)
    return float(budget) if isinstance(budget, (int, float)) else None


# ---------------------------------------------------------------------------------------
# execution


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class _EchoStream:
    """The notebook's printed lines (stream output) echoed to the console, indented.

    papermill hands stream text over in pieces; complete lines are written, blank ones
    dropped. Display outputs (figures, tables) never reach it, so their ``text/plain``
    stand-ins (``<Figure size ...>``) stay out of the console.
    """

    def __init__(self, stream=None, indent: str = "  "):
        self._stream = stream
        self._indent = indent
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text.replace("\r", "\n")
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        if line.strip():
            out = self._stream or sys.stdout
            out.write(self._indent + line.rstrip() + "\n")
            out.flush()

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""


@contextmanager
def _kernel_config() -> Iterator[Any]:
    """Kernels over IPC sockets in a private temp folder: no unencrypted-TCP warning, and
    nothing on a network port."""
    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="srpose-kernel-")
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(folder, "k")
    try:
        yield config
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_notebook(path: Path, out: Path, mode: str, params: dict[str, Any],
                 cell_timeout: float | None = None, quiet: bool = False) -> dict:
    """Execute one notebook with papermill; never raises for a failure inside it."""
    import papermill

    name = path.stem
    executed = out / "executed" / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    nb.metrics_path(name, out).unlink(missing_ok=True)  # no stale metrics if setup never runs
    parameters = {"RUN_MODE": mode, "INTERACTIVE": False, "OUTPUT_DIR": str(out), **params}
    env = {"SRPOSE_INTERACTIVE": "1" if parameters["INTERACTIVE"] else "0"}
    error, failed_cell = None, None
    echo = None if quiet else _EchoStream()
    start = time.perf_counter()
    try:
        with _environ(env), _kernel_config() as config:
            papermill.execute_notebook(
                str(path), str(executed), parameters=parameters, cwd=str(path.parent),
                kernel_name=KERNEL_NAME, log_output=False, stdout_file=echo, stderr_file=echo,
                progress_bar=False, execution_timeout=cell_timeout, config=config,
                start_timeout=START_TIMEOUT_S, request_save_on_cell_execute=True,
            )
    except papermill.PapermillExecutionError as err:
        error = (f"{err.ename}: {err.evalue} "
                 f"(cell In [{err.exec_count}]: {_failing_line(err)[:80]})")
        failed_cell = {"index": err.cell_index, "exec_count": err.exec_count,
                       "source": err.source}
    except Exception as err:  # noqa: BLE001 - kernel death, timeout, missing kernel...
        error = f"{type(err).__name__}: {err}".strip()
    finally:
        if echo is not None:
            echo.flush()
    duration = time.perf_counter() - start
    try:
        metrics = nb.load_metrics(name, out)
    except SrposeError as err:
        metrics, error = {}, error or str(err)
    budget = notebook_budget(path, mode)
    return {
        "status": "ok" if error is None else "failed",
        "duration_s": round(duration, 2),
        "budget_s": budget,
        "over_budget": budget is not None and duration > budget,
        "error": error,
        "failed_cell": failed_cell,
        "executed": str(executed),
        "metrics": metrics,
    }


def _failing_line(err: Any) -> str:
    """The cell line IPython's traceback points at (``---->``), else the cell's first line."""
    for line in "\n".join(err.traceback or []).splitlines():
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
        match = re.match(r"^-+>\s*\d+\s(.*)$", plain)
        if match:
            return match.group(1).strip()
    return next((ln.strip() for ln in err.source.splitlines() if ln.strip()), "")


# ---------------------------------------------------------------------------------------
# reports


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _duration(value: float | None) -> str:
    """Human-scale duration: ``8 s``, ``14 min``, ``2 h 05 min``."""
    if value is None:
        return "-"
    if value < 90:
        return _seconds(value)
    minutes = round(value / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


_KEY_METRIC = re.compile(r"^pck/([^/]+)/([^/]+)/target_test/all$")


def key_numbers(metrics: dict[str, float], most: int = 8) -> str:
    """The headline numbers of a notebook: PCK@0.05 (all joints) on the target test split."""
    found = [f"{m.group(1)}/{m.group(2)} {value:.1f}" for name, value in metrics.items()
             if (m := _KEY_METRIC.match(name))]
    if not found:
        return ""
    more = f" (+{len(found) - most} more)" if len(found) > most else ""
    return "PCK@0.05 target test, all joints: " + ", ".join(found[:most]) + more


def start_line(name: str, mode: str, expected: float | None, bench: dict | None) -> str:
    """The line printed before a notebook runs, with its expected time on this machine."""
    if expected is None:
        when = "no recorded time to expect"
    elif bench:
        when = f"expected ~{_duration(expected)} on this machine"
    else:
        when = f"expected ~{_duration(expected)} on the reference machine (no bench figure)"
    return f"== {name} ({mode}): {when} =="


def machine_line(bench: dict | None) -> str:
    """One line naming the machine and its bench figure."""
    if not bench:
        return "machine: bench figure not measured (--no-bench)"
    how = (f"cached from {bench.get('measured', '?')}" if bench.get("cached")
           else f"measured now over {bench.get('seconds', 0):.0f} s")
    return (f"machine: {bench.get('hostname')}, {bench.get('cpu')}, {bench.get('torch_threads')} torch "
            f"thread(s); bench figure {bench.get('images_per_s')} images/s ({how})")


def status_line(name: str, info: dict) -> str:
    """One line per finished notebook."""
    tag = "[ok]    " if info["status"] == "ok" else "[FAILED]"
    budget = f" / budget {_seconds(info['budget_s'])}" if info["budget_s"] is not None else ""
    over = " OVER BUDGET" if info["over_budget"] else ""
    tail = info["error"] if info["error"] else f"{len(info['metrics'])} metrics"
    expected = info.get("expected_s")
    exp = f" (expected ~{_duration(expected)})" if expected is not None else ""
    return f"{tag} {name:<34} {_duration(info['duration_s']):>8}{exp}{budget}{over}  {tail}"


def metric_tables(metrics: dict[str, float]) -> list[str]:
    """Markdown for a notebook's metrics, compact.

    Names that share a prefix and a set of last parts become one table: rows are the
    prefixes (``pck/hand/source_only/target_test``), columns the last parts
    (``mcp pip dip fin all``). The rest is a list of ``name = value`` lines.
    """
    rows: dict[str, dict[str, float]] = {}
    for name, value in metrics.items():
        head, _, last = name.rpartition("/")
        rows.setdefault(head, {})[last] = value
    groups: dict[tuple[str, ...], list[str]] = {}
    singles: list[str] = []
    for head, cols in rows.items():
        if len(cols) > 1:
            groups.setdefault(tuple(cols), []).append(head)
        else:
            singles.extend(f"{head}/{c}" for c in cols)
    lines: list[str] = []
    for cols, heads in groups.items():
        lines += ["", "| " + " | ".join(("", *cols)) + " |",
                  "|" + "---|" * (len(cols) + 1)]
        for head in heads:
            lines.append("| " + " | ".join((head, *(_fmt(rows[head][c]) for c in cols))) + " |")
    if singles:
        lines.append("")
        lines += [f"- `{name}` = {_fmt(metrics[name])}" for name in singles]
    return lines


def summary_markdown(results: dict) -> str:
    """The human-readable summary of a run (also printed at the end)."""
    v = results["versions"]
    params = " ".join(f"-p {k} {val}" for k, val in results["parameters"].items()) or "(none)"
    lines = [
        f"# srpose run: {results['mode']}",
        "",
        f"{results['started']} → {results['finished']} ({_seconds(results['duration_s'])}), "
        f"git {results['git_sha'] or 'n/a'}, srpose {v.get('srpose')}, torch {v.get('torch')}, "
        f"device {v.get('device')}; parameters {params}",
        "",
        machine_line(results.get("machine")).replace("machine:", "Machine:", 1) + ".",
        "",
        "| notebook | status | wall time | expected | budget |",
        "|---|---|---|---|---|",
    ]
    for name, info in results["notebooks"].items():
        status = info["status"] + (" (over budget)" if info["over_budget"] else "")
        lines.append(f"| {name} | {status} | {_seconds(info['duration_s'])} | "
                     f"{_seconds(info.get('expected_s'))} | {_seconds(info['budget_s'])} |")
    for name, info in results["notebooks"].items():
        lines += ["", f"## {name}"]
        if info["error"]:
            lines += ["", f"**failed**: `{info['error']}`", "",
                      f"executed copy: `{info['executed']}`"]
        if info["metrics"]:
            lines += metric_tables(info["metrics"])
        elif not info["error"]:
            lines += ["", "(no metrics recorded)"]
    return "\n".join(lines) + "\n"


def list_parameters(notebooks: Sequence[Path]) -> str:
    """The ``--list`` text: notebooks, budgets and declared parameters."""
    lines = []
    for path in notebooks:
        budgets = [f"{m} {_seconds(b)}" for m in nb.RUN_MODES
                   if (b := notebook_budget(path, m)) is not None]
        lines.append(f"{path.stem}" + (f"  (budget: {', '.join(budgets)})" if budgets else ""))
        try:
            declared = nb.declared_parameters(path)
        except SrposeError as err:
            lines.append(f"  ! {err.message}")
            continue
        for name, spec in declared.items():
            decl = f"{name}: {spec['type']} = {spec['default']!r}"
            note = "  (set with --mode)" if name == "RUN_MODE" else (
                "  (set with --out)" if name == "OUTPUT_DIR" else "")
            lines.append(f"  {decl:<44} # {spec['help']}{note}")
        lines.append("")
    return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------
# main


def _usage_error(err: SrposeError) -> int:
    print(f"srpose runner: error: {err.message}", file=sys.stderr)
    if err.fix:
        print(f"  fix: {err.fix}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 failures, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0)

    try:
        notebooks = select_notebooks(args.only, args.notebooks_dir)
        if args.list:
            print(list_parameters(notebooks))
            return 0
        if args.mode is None:
            raise ParameterError("--mode is required", "add --mode smoke, quick or full")
        if args.cell_timeout is None:
            args.cell_timeout = DEFAULT_CELL_TIMEOUT_S[args.mode]
        elif args.cell_timeout <= 0:
            raise ParameterError("--cell-timeout must be positive", "give seconds, e.g. 600")
        per_notebook = validate_parameters(args.parameter, notebooks)
        out = Path(args.out) if args.out else utils.default_output_dir() / "runs" / args.mode
        out = utils.ensure_writable_dir(out, "output")
        times = machine.load_times()
    except SrposeError as err:
        return _usage_error(err)

    flat: dict[str, Any] = {}
    for params in per_notebook.values():
        for key, value in params.items():
            flat.setdefault(key, value)
    print(f"srpose runner: {len(notebooks)} notebook(s), mode {args.mode}, output {out}",
          flush=True)
    bench = None if args.no_bench else _bench(args.mode)
    print(machine_line(bench), flush=True)
    figure = bench["images_per_s"] if bench else None
    results: dict[str, Any] = {
        "mode": args.mode, "started": _now(), "finished": None, "duration_s": None,
        "git_sha": utils.git_sha(), "versions": utils.versions(), "parameters": flat,
        "machine": bench, "notebooks": {},
    }
    env = {
        "SRPOSE_RUN_MODE": args.mode,  # an env fallback can never contradict --mode
        "SRPOSE_PROGRESS": "text",
        "PATH": os.pathsep.join(
            p for p in (str(Path(sys.executable).parent), os.environ.get("PATH", "")) if p),
    }
    start = time.perf_counter()
    interrupted = False
    with _environ(env):
        for path in notebooks:
            expected = machine.expected_seconds(path.stem, args.mode, figure, times)
            print(start_line(path.stem, args.mode, expected, bench), flush=True)
            try:
                info = run_notebook(path, out, args.mode, per_notebook[path.stem],
                                    args.cell_timeout, args.quiet)
            except KeyboardInterrupt:
                info = {"status": "failed", "duration_s": None, "budget_s": None,
                        "over_budget": False, "error": "interrupted", "failed_cell": None,
                        "executed": str(out / "executed" / f"{path.name}"), "metrics": {}}
                interrupted = True
            info["expected_s"] = None if expected is None else round(expected, 1)
            results["notebooks"][path.stem] = info
            print(status_line(path.stem, info), flush=True)
            if (numbers := key_numbers(info["metrics"])):
                print(f"         {numbers}", flush=True)
            if info["over_budget"]:
                print(f"warning: {path.stem} took {_seconds(info['duration_s'])}, over its "
                      f"{args.mode} budget of {_seconds(info['budget_s'])}", flush=True)
            _finish(results, out, start)
            if interrupted:
                break
    _finish(results, out, start)
    print(closing_lines(results, out), flush=True)
    if interrupted:
        return 130
    return 0 if all(i["status"] == "ok" for i in results["notebooks"].values()) else 1


def _bench(mode: str) -> dict | None:
    """This machine's bench figure; a failure to measure costs the run nothing but the scaling."""
    try:
        return machine.bench_figure(BENCH_SECONDS[mode])
    except Exception as err:  # noqa: BLE001 - the figure only scales the expected times
        print(f"warning: could not measure the bench figure ({type(err).__name__}: {err}); "
              "expected times are the recorded ones", flush=True)
        return None


def closing_lines(results: dict, out: Path) -> str:
    """The end of the console: one line per notebook and where everything was written."""
    books = results["notebooks"]
    ok = sum(info["status"] == "ok" for info in books.values())
    lines = ["", f"srpose runner: {ok}/{len(books)} notebook(s) ok in "
                 f"{_duration(results['duration_s'])} ({results['mode']})"]
    for name, info in books.items():
        lines.append(f"  {'ok    ' if info['status'] == 'ok' else 'FAILED'} {name:<34} "
                     f"{_duration(info['duration_s']):>8}")
    site = utils.repo_root() / DOCS_SITE
    lines += [
        f"executed notebooks: {out / 'executed'}",
        f"summary:            {out / 'summary.md'} (all metrics; results.json beside it)",
        f"docs site:          {site}" if site.is_file() else
        "docs site:          not built (make docs builds it from the quick run)",
    ]
    return "\n".join(lines)


def _finish(results: dict, out: Path, start: float) -> str:
    """Write results.json and summary.md (after every notebook, so a long run keeps them)."""
    results["finished"] = _now()
    results["duration_s"] = round(time.perf_counter() - start, 2)
    utils.atomic_write_json(out / "results.json", results)
    summary = summary_markdown(results)
    utils.atomic_write_text(out / "summary.md", summary)
    return summary


if __name__ == "__main__":
    sys.exit(main())
