"""Structure rules of the library: presets are imported by the modules' users, never by the
modules (no import circle); configs have real field types; code and notebooks cite the paper
and public sources, never documents that are not in the repository."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "srpose_lib"


def _imports(path: Path) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


def test_train_adapt_and_models_never_import_presets():
    offenders = []
    for sub in ("train", "adapt", "models"):
        for path in sorted((LIB / sub).glob("*.py")):
            if "srpose_lib.presets" in _imports(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"these modules import srpose_lib.presets (presets imports them): {offenders}"


def test_the_import_scan_sees_relative_imports(tmp_path):
    fake = LIB / "adapt" / "_probe_for_test.py"
    try:
        fake.write_text("from ..presets import config_for\n")
        assert "srpose_lib.presets" in _imports(fake)
        fake.write_text("def f():\n    from .. import presets\n")
        assert "srpose_lib.presets" in _imports(fake)
    finally:
        fake.unlink()


# fields allowed to stay typed ``object`` (none)
PENDING: set[str] = set()


def _object_fields(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    text = ast.unparse(item.annotation)
                    if re.search(r"\b(object|Any)\b", text):
                        found.append(f"{node.name}.{item.target.id}")
    return found


def test_no_config_field_is_typed_object():
    bad = []
    for path in sorted(LIB.rglob("*.py")):
        bad += [f"{path.relative_to(ROOT)}: {f}" for f in _object_fields(ast.parse(path.read_text()))
                if f not in PENDING]
    assert not bad, f"config fields typed object/Any (give them their config types, Optional where None): {bad}"
    assert _object_fields(ast.parse("class XConfig:\n    a: object = None\n    b: int | None = 0\n")) == ["XConfig.a"]


# citations of documents that are not in the repository
MISSING_DOCS = re.compile(r"reference/|reference design|reference prototype"
                          r"|\b(baselines|reconstruction|datasets|notebooks|DESIGN)\.md\b"
                          r"|see (the )?notes|private notes",
                          re.IGNORECASE)


def _texts():
    for pattern in ("srpose_lib/**/*.py", "notebooks/*.ipynb", "benchmarks/*.py", "data_scripts/**/*.py",
                    "tests/*.py", "README.md", "Makefile"):
        for path in sorted(ROOT.glob(pattern)):
            if path.name != Path(__file__).name:
                yield path


def test_code_and_notebooks_cite_only_documents_that_exist():
    hits = []
    for path in _texts():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MISSING_DOCS.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, ("cite the paper's sections (e.g. 'supplementary §A') and public URLs instead of documents "
                      "that are not in the repository:\n" + "\n".join(hits))
    assert MISSING_DOCS.search("design in ``reference/reconstruction.md``")
    assert MISSING_DOCS.search("after the reference design") and not MISSING_DOCS.search("For reference, Table A")
