"""The layout's rules, checked on the source: imports flow one way (models -> viz -> pages; models
never imports streamlit, viz never torch, transformers or streamlit), no import cycles, every
module imports on its own, command lines only in __main__.py modules, and tests share helper
modules rather than importing each other."""
import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

LIBRARY = ("models", "viz")
NEVER_IMPORTS = {"models": {"streamlit", "viz", "pages"}, "viz": {"torch", "transformers", "streamlit", "pages"}}


def modules(root: Path, packages) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `packages` under `root`."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every module `path` imports, at module level or inside functions, relative imports made absolute;
    `from a import b` counts as both a and a.b (b may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_cycle(root: Path, packages) -> list[str] | None:
    """A cycle of imports among the modules of `packages`, or None."""
    known = modules(root, packages)
    graph = {name: (imports(name, path) & known.keys()) - {name} for name, path in known.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_models_and_viz_have_no_import_cycle():
    assert import_cycle(ROOT, LIBRARY) is None


def test_an_import_cycle_is_found(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "a.py").write_text("def f():\n    from ..b import g\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.sub import a\n")
    assert set(import_cycle(tmp_path, ["pkg"])) == {"pkg.sub.a", "pkg.b"}


def test_models_and_viz_import_only_downstream_libraries():
    wrong = [f"{name} imports {module}" for name, path in modules(ROOT, LIBRARY).items()
             for module in sorted(imports(name, path)) if module.split(".")[0] in NEVER_IMPORTS[name.split(".")[0]]]
    assert not wrong


PROBE = """
import importlib, json, sys
names, never = json.loads(sys.argv[1]), json.loads(sys.argv[2])
failures = []
for name in names:  # viz first: what it pulls in is checked before models loads torch
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("models", "viz", "pages")]:
        del sys.modules[loaded]  # each module imports its own dependencies, in its own order
    try:
        importlib.import_module(name)
    except Exception as error:
        failures.append(f"{name}: {type(error).__name__}: {error}")
    failures += [f"{name} loads {lib}" for lib in never[name.split(".")[0]] if lib in sys.modules]
print(json.dumps(failures))
"""


def test_every_module_imports_on_its_own_and_loads_no_upstream_library():
    names = sorted(modules(ROOT, LIBRARY), key=lambda name: not name.startswith("viz"))
    never = {package: sorted(libraries) for package, libraries in NEVER_IMPORTS.items()}
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE, json.dumps(names), json.dumps(never)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == []


def _script_blocks(path: Path) -> list[ast.If]:
    """The module-level `if __name__ == "__main__":` blocks of a file."""
    return [node for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"]


def _hands_over_to_the_app(block: ast.If) -> bool:
    """A page module run as a Streamlit script only hands the run to app.py (pages._shared.run_app_instead)."""
    (statement,) = block.body if len(block.body) == 1 else (None,)
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
            and getattr(statement.value.func, "id", None) == "run_app_instead")


def test_command_lines_live_in_main_modules():
    sources = [ROOT / "app.py", *modules(ROOT, ("models", "viz", "pages")).values()]
    scripts = [path.relative_to(ROOT).as_posix() for path in sources if path.name != "__main__.py"
               and any(not (path.parent.name == "pages" and _hands_over_to_the_app(block))
                       for block in _script_blocks(path))]
    assert not scripts


def test_tests_import_helpers_never_other_tests_and_leave_the_path_alone():
    wrong = []
    for name, path in modules(ROOT, ("tests", "benchmarks")).items():
        where = path.relative_to(ROOT)
        wrong += [f"{where} imports {module}" for module in sorted(imports(name, path))
                  if module.startswith("tests.") and module.split(".")[-1].startswith(("test_", "conftest"))]
        wrong += [f"{where}:{node.lineno} touches sys.path" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Attribute) and node.attr == "path"
                  and isinstance(node.value, ast.Name) and node.value.id == "sys"]
    assert not wrong
