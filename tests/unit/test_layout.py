"""The code's layout keeps its promises: the map in docs/architecture.md names folders that exist,
SQL is written only in shared/db/repositories/, and no two modules import each other in a circle."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services")
# The schema (the models' partial-index conditions and Alembic's revision files) is not query code.
SQL_ALLOWED = ("shared/db/repositories/", "shared/db/migrations/", "shared/db/models.py")
SQL_NAMES = {"select", "insert", "update", "delete", "text", "literal_column"}
SQL_METHODS = {"execute", "fetch", "fetchval", "fetchrow", "scalar", "scalars"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def test_every_path_in_the_architecture_map_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Where things happen", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| ([^|]+) \|", section, flags=re.M)
    paths = [p for cell in named for p in re.findall(r"`([^`]+)`", cell)]
    assert len(paths) > 20
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []
    # ... and every feature folder of the code is on the map.
    folders = {
        str(d.relative_to(ROOT)) + "/"
        for package in PACKAGES
        for d in (ROOT / package).rglob("*")
        if d.is_dir() and (d / "__init__.py").exists() and d.name != "versions"
    }
    unmapped = sorted(f for f in folders if not any(p.startswith(f) or f.startswith(p) for p in paths))
    assert unmapped == []


def _sql_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy"):
            uses += [f"imports {a.name}" for a in node.names if a.name in SQL_NAMES]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            uses.append(f"runs {node.args[0].value[:40]!r}")
    return uses


def test_no_sql_outside_the_repositories() -> None:
    offenders = {}
    for path in _modules().values():
        relative = str(path.relative_to(ROOT))
        if relative.startswith(SQL_ALLOWED):
            continue
        uses = _sql_uses(path)
        if uses:
            offenders[relative] = uses
    assert offenders == {}


def _imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).rstrip(".")
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            # the longest known module that the import names
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports_of(name, path, set(modules)) for name, path in modules.items()}
    # Package __init__ modules that only re-export are edges, not cycles, when the package imports
    # its own child; those were excluded above. Find a cycle by depth-first search.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_error_codes_are_unique() -> None:
    """An IntEnum quietly makes a second name with a used value an alias of the first one."""
    from shared.kit.errors import ErrorCode

    assert len(ErrorCode.__members__) == len(list(ErrorCode))
