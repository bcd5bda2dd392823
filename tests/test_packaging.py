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
