"""The environment files agree: pinned torch pair, conda-forge only, pip delegation."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from srpose_lib.utils import repo_root

ROOT = repo_root()
TORCH_PAIR = {"torch": "2.14.1", "torchvision": "0.29.1"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==([^\s;]+)(\s*;.*)?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lines(path: Path) -> list[str]:
    """Requirement lines without comments and blanks."""
    out = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            out.append(line)
    return out


def _pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a requirements file, following ``-r`` includes."""
    pins: dict[str, str] = {}
    for line in _lines(path):
        if line.startswith("-r"):
            pins.update(_pins(path.parent / line[2:].strip()))
        elif m := PIN.match(line):
            pins[_norm(m.group(1))] = m.group(3)
    return pins


def test_requirements_pin_the_torch_pair():
    pins = _pins(ROOT / "requirements.txt")
    for name, version in TORCH_PAIR.items():
        assert pins.get(name) == version, f"requirements.txt must pin {name}=={version}"


@pytest.mark.parametrize("path", sorted(ROOT.glob("requirements*.txt")), ids=lambda p: p.name)
def test_every_requirement_is_pinned(path):
    for line in _lines(path):
        if line.startswith("-r"):
            assert (path.parent / line[2:].strip()).is_file(), f"{line}: no such file"
        else:
            assert PIN.match(line), f"{path.name}: {line!r} is not pinned with =="


# --- environment.yml ----------------------------------------------------------------------


def parse_simple_yaml(text: str) -> dict:
    """A minimal parser for environment.yml (mappings, lists, one nested ``- pip:`` list)."""
    doc: dict = {}
    key = None
    nested: list | None = None
    nested_indent = -1
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            name, _, value = body.partition(":")
            key, nested = name.strip(), None
            doc[key] = value.strip() if value.strip() else []
            continue
        if body.startswith("- "):
            item = body[2:].strip()
            if nested is not None and indent > nested_indent:
                nested.append(item)
            elif item.endswith(":"):
                nested, nested_indent = [], indent
                doc[key].append({item[:-1].strip(): nested})
            else:
                nested = None
                doc[key].append(item)
    return doc


def load_environment() -> dict:
    text = (ROOT / "environment.yml").read_text()
    try:
        import yaml
    except ImportError:
        return parse_simple_yaml(text)
    return yaml.safe_load(text)


def test_simple_parser_agrees_with_yaml():
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "environment.yml").read_text()
    assert parse_simple_yaml(text) == yaml.safe_load(text)


def test_environment_yml():
    env = load_environment()
    assert env.get("channels") == ["conda-forge"], "channels must be exactly [conda-forge]"
    deps = env["dependencies"]
    plain = [str(d).replace(" ", "") for d in deps if not isinstance(d, dict)]
    assert any(re.fullmatch(r"python=3\.11(\.\*)?", d) for d in plain), "needs python=3.11"
    assert "pip" in plain, "needs pip"
    assert not any(re.match(r"(pytorch|torch|torchvision)\b", d) for d in plain), (
        "torch comes from pip (pinned pair), never from conda")
    pip = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "needs one `pip:` section"
    includes = [item[2:].strip() for item in pip[0] if item.startswith("-r")]
    assert includes, "the pip section must delegate to a requirements file (-r ...)"
    for name in includes:
        assert (ROOT / name).is_file(), f"environment.yml: -r {name}: no such file"
    pinned = {}
    for name in includes:
        pinned.update(_pins(ROOT / name))
    for name, version in TORCH_PAIR.items():
        assert pinned.get(name) == version, f"the pip section must pin {name}=={version}"
    assert "-e ." in [item.strip() for item in pip[0]], "the pip section must install -e ."


# --- pyproject.toml, CI, README -----------------------------------------------------------


def _req_name(requirement: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group(0))


def test_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "srpose"
    dev = {_req_name(r) for r in meta.get("optional-dependencies", {}).get("dev", [])}
    assert {"pytest", "nbval"} <= dev, "the dev extra needs pytest and nbval"
    pinned = _pins(ROOT / "requirements.txt")
    missing = [r for r in meta["dependencies"] if _req_name(r) not in pinned]
    assert not missing, f"runtime requirements not pinned in requirements.txt: {missing}"


def test_ci_runs_make_test():
    script = ROOT / ".ci" / "run"
    lines = [ln.strip() for ln in script.read_text().splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    assert any(re.search(r"\bmake\s+test\b", ln) for ln in lines), ".ci/run must call make test"


def test_readme_shows_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    for command in ("make test", "make run"):
        assert command in head, f"README's first 40 lines must show `{command}`"
