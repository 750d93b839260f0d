"""Check the qualify.stats package contract: exports, docstrings and its pure-math imports."""

import ast
import inspect
import sys
from pathlib import Path

import qualify.stats

STATS_DIR = Path(qualify.stats.__file__).parent
ALLOWED_THIRD_PARTY = {"numpy", "scipy"}
DOCSTRING_VERBS = {
    "Bound",
    "Check",
    "Compute",
    "Convert",
    "Detect",
    "Find",
    "Fit",
    "Hold",
    "Predict",
    "Return",
    "Validate",
}


def test_every_exported_name_exists_and_is_documented() -> None:
    assert qualify.stats.__all__ == sorted(qualify.stats.__all__)
    for name in qualify.stats.__all__:
        obj = getattr(qualify.stats, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj)
            assert doc, f"{name} has no docstring"
            assert doc.split()[0] in DOCSTRING_VERBS, f"{name} docstring should start with a verb"


def test_every_module_has_a_docstring_starting_with_a_verb() -> None:
    for path in sorted(STATS_DIR.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{path.name} has no module docstring"
        assert doc.split()[0] in DOCSTRING_VERBS, f"{path.name} docstring should start with a verb"


def test_package_imports_only_numpy_scipy_and_the_standard_library() -> None:
    for path in sorted(STATS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                allowed = (
                    root in ALLOWED_THIRD_PARTY
                    or root in sys.stdlib_module_names
                    or root == "__future__"
                    or module == "qualify.stats"
                    or module.startswith("qualify.stats.")
                )
                assert allowed, f"{path.name} imports {module}"
