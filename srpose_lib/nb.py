"""Notebook setup and recording.

A notebook's **parameters are its UPPER_CASE globals**, declared in its single code cell
tagged ``parameters`` (literals only, type-annotated, one inline help comment each)::

    RUN_MODE: str = "quick"  # smoke (CI, seconds) / quick (laptop, minutes) / full (paper)
    SEED: int = 0  # random seed

Right after its imports a notebook calls::

    from srpose_lib import nb
    ctx = nb.setup("01_pose_predictor", globals())

which checks the parameters, applies the environment fallbacks, resolves device and paths,
seeds, prints one provenance line and starts a fresh metrics file. Results are then kept
with ``ctx.record(name, value)`` and ``ctx.save_figure(fig, name)``; the runner and the tests
read ``<OUTPUT_DIR>/metrics/<notebook>.json`` (see :func:`load_metrics`), never cell text.
"""

from __future__ import annotations

import ast
import io
import math
import os
import re
import sys
import tokenize
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from . import utils
from .errors import DataError, ParameterError, SrposeError, did_you_mean

RUN_MODES = ("smoke", "quick", "full")

#: The keys every notebook declares, with their types.
SHARED_PARAMETERS: dict[str, type] = {
    "RUN_MODE": str,
    "SEED": int,
    "DEVICE": str,
    "DATA_DIR": str,
    "OUTPUT_DIR": str,
    "INTERACTIVE": bool,
    "SAVE_FIGURES": bool,
    "FORCE_RETRAIN": bool,
}

PARAMETERS_TAG = "parameters"
METRIC_NAME = re.compile(r"^[a-z0-9_]+(/[a-z0-9_.]+)+$")
_FIGURE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SIMPLE_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# ---------------------------------------------------------------------------------------
# notebooks and their declared parameters


def notebooks_dir() -> Path:
    """``<repo>/notebooks``."""
    return utils.repo_root() / "notebooks"


def notebook_path(name: str, notebook_dir: str | os.PathLike | None = None) -> Path:
    """``<notebook_dir or repo/notebooks>/<name>.ipynb`` (the file need not exist)."""
    folder = Path(notebook_dir) if notebook_dir is not None else notebooks_dir()
    return folder / f"{name}.ipynb"


def list_notebooks(notebook_dir: str | os.PathLike | None = None) -> list[Path]:
    """The series ``NN_slug.ipynb``, sorted by file name."""
    folder = Path(notebook_dir) if notebook_dir is not None else notebooks_dir()
    return sorted(p for p in folder.glob("*.ipynb") if re.match(r"^\d\d_", p.name))


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise DataError(f"notebook {path} does not exist", "check the file name") from None
    except Exception as err:  # noqa: BLE001 - nbformat raises several kinds
        raise DataError(
            f"cannot read notebook {path}: {err}",
            "the file is not a valid .ipynb; restore it from git",
        ) from None


def parameters_cell_source(path: str | os.PathLike) -> str:
    """The source of the single code cell tagged ``parameters``."""
    path = Path(path)
    cells = [
        c for c in _read_notebook(path).cells
        if c.cell_type == "code" and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        found = "no cell" if not cells else f"{len(cells)} cells"
        raise ParameterError(
            f"notebook {path.name} has {found} tagged {PARAMETERS_TAG!r}; exactly one is needed",
            "tag the one code cell that holds the parameters with 'parameters' "
            "(JupyterLab: property inspector, Add Tag)",
        )
    return cells[0].source


def declared_parameters(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Parameters declared in a notebook's ``parameters`` cell, without executing it.

    Returns ``{name: {"type": "int", "default": 0, "help": "random seed"}}`` in cell order.
    ``type`` is the annotation as written (inferred from the literal when missing).
    """
    path = Path(path)
    source = parameters_cell_source(path)
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParameterError(
            f"the parameters cell of {path.name} is not plain Python: {err.msg} "
            f"(line {err.lineno})",
            "keep only `NAME: type = literal  # help` lines in that cell (no magics)",
        ) from None
    comments = _inline_comments(source)
    declared: dict[str, dict[str, Any]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            name, value_node = stmt.target.id, stmt.value
            type_name = ast.unparse(stmt.annotation)
        elif (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            name, value_node, type_name = stmt.targets[0].id, stmt.value, None
        else:
            raise ParameterError(
                f"the parameters cell of {path.name} has a statement that is not a "
                f"parameter (line {stmt.lineno}): {ast.unparse(stmt)[:60]!r}",
                "keep only `NAME: type = literal  # help` lines in that cell; "
                "imports and derived values go in later cells",
            )
        try:
            default = ast.literal_eval(value_node)
        except ValueError:
            raise ParameterError(
                f"parameter {name} in {path.name} is not a literal: {ast.unparse(value_node)}",
                "papermill does not recompute derived values; use a literal and derive "
                "the value after nb.setup",
            ) from None
        help_text = next(
            (comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
             if n in comments),
            "",
        )
        declared[name] = {
            "type": type_name or type(default).__name__,
            "default": default,
            "help": help_text,
        }
    return declared


def _inline_comments(source: str) -> dict[int, str]:
    """Line number -> comment text (without ``#``) for every comment in ``source``."""
    found: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return found


def _find_notebook(name: str, notebook_dir: str | os.PathLike | None) -> Path:
    """The notebook file ``setup`` reads its declared parameters from.

    An explicit ``notebook_dir`` wins; otherwise the kernel's working directory (Jupyter,
    nbval and the runner all start the kernel in the notebook's folder), then
    ``<repo>/notebooks``.
    """
    if notebook_dir is not None:
        candidates = [notebook_path(name, notebook_dir)]
    else:
        candidates = [Path.cwd() / f"{name}.ipynb", notebook_path(name)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = [p.stem for p in list_notebooks(candidates[-1].parent)]
    raise ParameterError(
        f"nb.setup({name!r}) cannot find the notebook file "
        f"(looked for {', '.join(str(c) for c in candidates)})",
        "pass the notebook's own file name without .ipynb; " + did_you_mean(name, known)
        if known else "pass notebook_dir= pointing at the notebook's folder",
    )


# ---------------------------------------------------------------------------------------
# setup


@dataclass
class NotebookContext:
    """What :func:`setup` resolved for one notebook run, plus the recording helpers."""

    notebook: str
    mode: str
    seed: int
    device: Any  # torch.device
    out_dir: Path
    cache_dir: Path
    data_dir: Path
    interactive: bool
    save_figures: bool
    force_retrain: bool
    params: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict, repr=False)
    git_sha: str | None = field(default=None, repr=False)
    started: str = field(default="", repr=False)
    metrics: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def metrics_path(self) -> Path:
        """``out_dir/metrics/<notebook>.json``."""
        return metrics_path(self.notebook, self.out_dir)

    def record(self, name: str, value: Any) -> None:
        """Keep one finite scalar metric and rewrite the metrics file atomically.

        ``name`` is lower-case, slash-separated, e.g. ``pck/hand/source_only/target_test/all``.
        Recording a name again replaces its value. Returns nothing, so a cell ending in
        ``ctx.record(...)`` shows no output.
        """
        _check_metric_name(name)
        self.metrics[name] = _as_finite_float(name, value)
        self._write_metrics()

    def record_many(self, mapping: Mapping[str, Any], prefix: str = "") -> None:
        """Record every entry of ``mapping`` (nested mappings allowed) under ``prefix``.

        All values are checked before any is stored.
        """
        flat = _flatten(mapping, prefix.rstrip("/"))
        checked = {}
        for name, value in flat.items():
            _check_metric_name(name)
            checked[name] = _as_finite_float(name, value)
        self.metrics.update(checked)
        self._write_metrics()

    def save_figure(self, fig: Any, name: str) -> Path | None:
        """Save ``fig`` as ``out_dir/figures/<notebook>/<name>.png`` (dpi 100).

        Returns the path, or ``None`` when ``SAVE_FIGURES`` is off. Never closes ``fig``.
        """
        stem = name[:-4] if name.endswith(".png") else name
        if not _FIGURE_NAME.match(stem):
            raise ParameterError(
                f"bad figure name {name!r}",
                "use letters, digits, '_', '-' and '.' only, e.g. 'heatmaps_hand'",
            )
        if not self.save_figures:
            return None
        path = self.out_dir / "figures" / self.notebook / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
        return path

    def _write_metrics(self) -> None:
        utils.atomic_write_json(self.metrics_path, {
            "notebook": self.notebook,
            "mode": self.mode,
            "parameters": self.params,
            "versions": self.versions,
            "python_executable": sys.executable,
            "git_sha": self.git_sha,
            "started": self.started,
            "updated": _now(),
            "metrics": self.metrics,
        })


def setup(
    notebook: str,
    namespace: dict[str, Any],
    notebook_dir: str | os.PathLike | None = None,
    min_version: str | None = None,
) -> NotebookContext:
    """Validate a notebook's parameters and prepare its run.

    ``namespace`` is the notebook's ``globals()``. Its UPPER_CASE names must all be declared
    in the parameters cell (papermill only warns on unknown ``-p`` names). Environment
    fallbacks: ``SRPOSE_RUN_MODE`` overrides ``RUN_MODE``; ``SRPOSE_INTERACTIVE`` overrides
    ``INTERACTIVE``; ``SRPOSE_OUTPUT_DIR`` / ``SRPOSE_DATA_DIR`` fill an empty ``OUTPUT_DIR``
    / ``DATA_DIR``. The effective values are written back into ``namespace`` so later cells
    see them. ``min_version`` fails early when the installed library is older.
    """
    if min_version is not None:
        _check_min_version(min_version)
    path = _find_notebook(notebook, notebook_dir)
    declared = declared_parameters(path)
    _check_shared_declared(path, declared)

    given = {k: v for k, v in namespace.items() if _PARAM_NAME.match(k)}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(
            f"{notebook}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (not declared in the cell tagged 'parameters')",
            did_you_mean(unknown[0], declared)
            + ". UPPER_CASE globals are parameters: declare it in the parameters cell (and "
            "save the notebook), or give module constants a lower-case name; in Jupyter, "
            "restart the kernel if the name came from a later cell",
        )
    params = {name: given.get(name, spec["default"]) for name, spec in declared.items()}
    params.update(_env_fallbacks(params))
    _check_types(notebook, params, declared)
    if params["RUN_MODE"] not in RUN_MODES:
        raise ParameterError(
            f"{notebook}: RUN_MODE={params['RUN_MODE']!r} is not a run mode",
            did_you_mean(str(params["RUN_MODE"]), RUN_MODES),
        )
    for name, value in params.items():
        if name in namespace:
            namespace[name] = value

    device = utils.resolve_device(params["DEVICE"])
    out_dir = utils.ensure_writable_dir(_resolve(params["OUTPUT_DIR"], utils.default_output_dir()), "output")
    cache_dir = utils.ensure_writable_dir(utils.default_cache_dir(), "cache")
    data_dir = _resolve(params["DATA_DIR"], utils.repo_root() / "data")
    utils.seed_everything(params["SEED"])
    _set_plot_style()

    ctx = NotebookContext(
        notebook=notebook, mode=params["RUN_MODE"], seed=params["SEED"], device=device,
        out_dir=out_dir, cache_dir=cache_dir, data_dir=data_dir,
        interactive=params["INTERACTIVE"], save_figures=params["SAVE_FIGURES"],
        force_retrain=params["FORCE_RETRAIN"], params=params,
        versions=utils.versions(), git_sha=utils.git_sha(), started=_now(),
    )
    ctx._write_metrics()  # a fresh file: no stale numbers survive from an earlier run
    print(
        f"srpose {ctx.versions['srpose']} | {notebook} | mode {ctx.mode} | "
        f"git {ctx.git_sha or 'n/a'} | torch {ctx.versions['torch']} | "
        f"device {device}{'' if device.type == 'cpu' else ' (' + ctx.versions['device'] + ')'}"
        f" | seed {ctx.seed}"
    )
    return ctx


def _check_shared_declared(path: Path, declared: dict[str, dict[str, Any]]) -> None:
    missing = [k for k in SHARED_PARAMETERS if k not in declared]
    if missing:
        raise ParameterError(
            f"the parameters cell of {path.name} lacks the shared parameter(s) "
            f"{', '.join(missing)}",
            "declare every shared key: " + ", ".join(
                f"{k}: {t.__name__}" for k, t in SHARED_PARAMETERS.items()),
        )


def _env_fallbacks(params: dict[str, Any]) -> dict[str, Any]:
    """Values that the ``SRPOSE_*`` environment variables impose."""
    changes: dict[str, Any] = {}
    mode = os.environ.get("SRPOSE_RUN_MODE", "").strip()
    if mode:
        if mode not in RUN_MODES:
            raise ParameterError(
                f"environment variable SRPOSE_RUN_MODE={mode!r} is not a run mode",
                f"set it to one of {', '.join(RUN_MODES)}, or unset it",
            )
        changes["RUN_MODE"] = mode
    interactive = os.environ.get("SRPOSE_INTERACTIVE", "").strip().lower()
    if interactive:
        if interactive not in _TRUE | _FALSE:
            raise ParameterError(
                f"environment variable SRPOSE_INTERACTIVE={interactive!r} is not a boolean",
                "set it to 0 or 1 (or false/true), or unset it",
            )
        changes["INTERACTIVE"] = interactive in _TRUE
    for key in ("OUTPUT_DIR", "DATA_DIR"):
        env = os.environ.get(f"SRPOSE_{key}", "").strip()
        if env and not str(params.get(key, "")).strip():
            changes[key] = env
    return changes


def _check_types(notebook: str, params: dict[str, Any], declared: dict[str, dict]) -> None:
    for name, value in params.items():
        expected = SHARED_PARAMETERS.get(name) or _SIMPLE_TYPES.get(declared[name]["type"])
        if expected is None:
            continue
        if name in SHARED_PARAMETERS and declared[name]["type"] != expected.__name__:
            raise ParameterError(
                f"{notebook}: shared parameter {name} is declared as "
                f"{declared[name]['type']}, not {expected.__name__}",
                f"annotate it `{name}: {expected.__name__}` in the parameters cell",
            )
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ParameterError(
                f"{notebook}: parameter {name} must be {expected.__name__}, "
                f"got {type(value).__name__} {value!r}",
                f"give {name} a {expected.__name__} value",
            )


def _resolve(value: str, default: Path) -> Path:
    """A parameter path: empty -> default; relative paths are taken from the repo root."""
    text = str(value).strip()
    if not text:
        return default
    path = Path(text).expanduser()
    return path if path.is_absolute() else (utils.repo_root() / path)


def _set_plot_style() -> None:
    try:
        from . import viz
    except ImportError:
        return
    set_style = getattr(viz, "set_style", None)
    if callable(set_style):
        set_style()


def _check_min_version(minimum: str) -> None:
    from . import __version__

    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])

    if parts(__version__) < parts(minimum):
        raise SrposeError(
            f"this notebook needs srpose >= {minimum}, but {__version__} is installed",
            "update the checkout (git pull) and reinstall: pip install -e .",
        )


# ---------------------------------------------------------------------------------------
# metrics files


def metrics_path(notebook: str, out_dir: str | os.PathLike) -> Path:
    """``<out_dir>/metrics/<notebook>.json``."""
    return Path(out_dir) / "metrics" / f"{notebook}.json"


def load_metrics_file(notebook: str, out_dir: str | os.PathLike) -> dict[str, Any]:
    """The whole metrics document of a notebook (``{}`` if it never ran setup)."""
    import json

    path = metrics_path(notebook, out_dir)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read metrics file {path}: {err}",
            "re-run the notebook; the file is rewritten by nb.setup",
        ) from None


def load_metrics(notebook: str, out_dir: str | os.PathLike) -> dict[str, float]:
    """``{name: value}`` recorded by a notebook under ``out_dir`` (``{}`` if none)."""
    return dict(load_metrics_file(notebook, out_dir).get("metrics", {}))


def _check_metric_name(name: Any) -> None:
    if not isinstance(name, str) or not METRIC_NAME.match(name):
        raise ParameterError(
            f"bad metric name {name!r}",
            "use lower-case words joined by '/', at least two parts, e.g. "
            "'pck/hand/source_only/target_test/all' or 'loss/final'",
        )


def _as_finite_float(name: str, value: Any) -> float:
    original = value
    if hasattr(value, "ndim") and hasattr(value, "item"):  # numpy array/scalar, torch tensor
        if value.ndim != 0:
            raise ParameterError(
                f"metric {name}: expected a scalar, got an array of shape "
                f"{tuple(value.shape)}",
                "record one number per name (reduce with .mean() or index it first)",
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(
            f"metric {name}: expected a real number, got {type(original).__name__} "
            f"{original!r}",
            "record an int or float (or a 0-d NumPy array / tensor)",
        )
    number = float(value)
    if not math.isfinite(number):
        raise ParameterError(
            f"metric {name} is not finite ({number})",
            "a NaN/inf metric means training diverged or a split was empty; "
            "check the cells above",
        )
    return number


def _flatten(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
