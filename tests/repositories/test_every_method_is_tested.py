"""Every public method of every repository (and every public function of the repository modules) is
called by the repository tests of its module: tests/repositories/test_<module>.py."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import shared.db.repositories as repositories

HERE = Path(__file__).parent


def public_sql() -> dict[str, set[str]]:
    """module name -> the names of its public repository methods and functions."""
    found: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(repositories.__path__):
        module = importlib.import_module(f"{repositories.__name__}.{info.name}")
        names: set[str] = set()
        for name, member in inspect.getmembers(module):
            if getattr(member, "__module__", None) != module.__name__ or name.startswith("_"):
                continue
            if inspect.isclass(member) and name.endswith("Repository"):
                names |= {
                    method
                    for method, function in vars(member).items()
                    if inspect.isfunction(function) and not method.startswith("_")
                }
            elif inspect.isfunction(member):
                names.add(name)
        if names:
            found[info.name] = names
    return found


def called_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
            elif isinstance(node.func, ast.Name):
                names.add(node.func.id)
    return names


def test_the_scan_sees_every_repository():
    modules = public_sql()
    assert {"jobs", "sessions", "outbox", "events", "identity", "deployments", "credentials"} <= set(modules)
    assert {"overview", "executors", "locks", "clock", "console", "experiments"} <= set(modules)
    assert {"claim", "mark_dispatched", "close_expired", "deactivate_idle", "close_drained"} <= (
        modules["jobs"] | modules["sessions"]
    )


# Repositories merged from other branches after this layer was written, and still without tests here.
# The list may only shrink: a name that gets a test, or disappears, must be taken off it.
NOT_YET_TESTED: set[str] = set()


def test_every_public_repository_method_has_a_test_that_calls_it():
    missing = []
    for module, names in sorted(public_sql().items()):
        if module in NOT_YET_TESTED:
            continue
        test_file = HERE / f"test_{module}.py"
        called = called_names(test_file) if test_file.exists() else set()
        missing += [f"{module}.{name} (in {test_file.name})" for name in sorted(names - called)]
    assert not missing, "repository methods no test calls: " + ", ".join(missing)


def test_the_untested_list_only_shrinks():
    modules = public_sql()
    for module in NOT_YET_TESTED:
        assert module in modules, f"{module} is gone: take it off NOT_YET_TESTED"
        assert not (HERE / f"test_{module}.py").exists(), (
            f"test_{module}.py exists: take it off NOT_YET_TESTED"
        )
