import ast
import tomllib
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
MAPPED = {
    "ttdnet": "ttdnet",
    "ttdnet.stages": "stages",
    "ttdnet.eval": "eval",
    "ttdnet.preprocessing": "preprocessing",
}


def test_every_package_folder_is_listed_in_pyproject():
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert settings["package-dir"] == MAPPED
    found = set()
    for package, folder in MAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *relative)))
    assert found == set(settings["packages"])


def test_core_never_imports_the_packages_built_on_it():
    outward = ("ttdnet.stages", "ttdnet.eval", "ttdnet.preprocessing")
    for path in (REPO / "ttdnet").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(outward), f"{path} imports {name}"


def test_subpackages_import_from_the_repository_root():
    import ttdnet.eval
    import ttdnet.preprocessing
    import ttdnet.stages

    assert Path(ttdnet.stages.__file__).parent == REPO / "stages"
    assert Path(ttdnet.eval.__file__).parent == REPO / "eval"
    assert Path(ttdnet.preprocessing.__file__).parent == REPO / "preprocessing"


def _module_files() -> dict[str, Path]:
    """Every module of the installed packages, by dotted name."""
    modules = {}
    for package, folder in MAPPED.items():
        root = REPO / folder
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _import_time_statements(body: list[ast.stmt]):
    """The statements Python runs when the module is imported (not function bodies, not TYPE_CHECKING)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_statements(node.orelse)
            continue
        yield node
        blocks = [getattr(node, field, []) for field in ("body", "orelse", "finalbody")]
        blocks += [handler.body for handler in getattr(node, "handlers", [])]
        for block in blocks:
            yield from _import_time_statements(block)


def _import_time_dependencies(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_time_statements(ast.parse(path.read_text(), filename=str(path)).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more nodes (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def test_cycle_finder_finds_a_three_module_cycle_and_nothing_in_a_chain():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles_at_import_time():
    modules = _module_files()
    graph = {name: _import_time_dependencies(name, path, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 100  # the parser sees the project's imports
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_every_module_imports_in_a_fresh_interpreter():
    import subprocess
    import sys

    names = sorted(_module_files())
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
