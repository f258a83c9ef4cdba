"""The shape of the house (issue 35), read from the source alone: the root shows the tutorial, its
four files stay short, no function grows past 60 lines, and scripts do not import each other, so
the library never depends on a command line."""
import ast
import glob
import os

import pytest

from conftest import REPO

TUTORIAL = ("configs.py", "model.py", "train.py", "inferenceModel.py")
ENTRY_POINTS = ("train.py", "inferenceModel.py", "app.py", *(
    os.path.relpath(path, REPO) for path in sorted(glob.glob(os.path.join(REPO, "benchmarks", "*.py")))
    if not path.endswith("__init__.py")))
MAX_ROOT_FILES, MAX_TUTORIAL_LINES, MAX_FUNCTION_LINES = 7, 800, 60


def project_files():
    """The project's Python files outside tests/, relative to the repository root; hidden folders
    (.venv, .git), virtual environments and the outputs Datasets/ and Models/ are not the project."""
    files = []
    for folder, subfolders, names in os.walk(REPO):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith((".", "__"))
                               and name not in ("tests", "Datasets", "Models")
                               and not os.path.isfile(os.path.join(folder, name, "pyvenv.cfg")))
        files += [os.path.relpath(os.path.join(folder, name), REPO) for name in sorted(names) if name.endswith(".py")]
    return files


def parse(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def module_name(path):
    """benchmarks/speed.py -> benchmarks.speed; htr/__init__.py -> htr."""
    parts = path[:-len(".py")].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path):
    """Every module a file imports, at the top or inside a function; `from a import b` counts as
    both a and a.b (b may be a module), relative imports resolved against the file's package."""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    names = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_root_holds_at_most_seven_python_files():
    root = sorted(name for name in os.listdir(REPO) if name.endswith(".py"))
    assert len(root) <= MAX_ROOT_FILES, f"{len(root)} Python files in the root: {root}"


def test_the_four_tutorial_files_are_short():
    lines = {}
    for name in TUTORIAL:
        with open(os.path.join(REPO, name), encoding="utf-8") as f:
            lines[name] = len(f.read().splitlines())
    assert sum(lines.values()) <= MAX_TUTORIAL_LINES, f"{sum(lines.values())} lines together: {lines}"


def test_no_function_is_over_sixty_lines():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in project_files() for node in ast.walk(parse(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "functions over 60 lines, from def to the end of the body:\n" + "\n".join(long)


@pytest.mark.parametrize("path", [path for path in project_files() if path in ENTRY_POINTS or path.startswith("htr" + os.sep)])
def test_no_entry_point_is_imported_by_another_or_by_the_library(path):
    """configs.py and model.py are tutorial modules the scripts and the library may import; a
    script's code that another needs belongs in htr/."""
    entry_modules = {module_name(entry) for entry in ENTRY_POINTS}
    imported = sorted((imported_modules(path) & entry_modules) - {module_name(path)})
    assert not imported, f"{path} imports the entry point(s) {imported}: move what it needs into htr/"


def test_the_guards_see_the_project():
    """The checks above read something: the scripts, the benchmarks and the library."""
    files = project_files()
    assert set(TUTORIAL) | {"app.py", "benchmarks/speed.py", "benchmarks/quality.py", "htr/__init__.py"} <= set(files)
    assert not any(path.startswith(("tests", ".")) for path in files)
