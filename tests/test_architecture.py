"""docs/architecture.md is the map of bot/: every module is on it, and the imports have no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"
MAP = (BOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")


def _modules() -> dict[str, Path]:
    """Every module of bot/ by dotted name (a package by its own name), Alembic's scripts aside."""
    found = {}
    for path in BOT.rglob("*.py"):
        parts = list(path.relative_to(BOT.parent).with_suffix("").parts)
        if "migrations" in parts[:-1] and parts[-1] != "__init__":
            continue  # env.py and the revisions are Alembic's scripts, run by it, not imported
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of bot/ that `name` imports, at the top or inside a function."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            # `from . import sub` imports the module `sub`; any other name comes from the package itself
            targets = [
                f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names
            ]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def test_every_module_is_on_the_map() -> None:
    missing = []
    for name in _modules():
        leaf = name.split(".")[-1]
        if (
            name != "bot"
            and f"`{leaf}" not in MAP
            and f"{leaf}.py" not in MAP
            and f"{leaf}/" not in MAP
        ):
            missing.append(name)
    assert not missing, f"not in docs/architecture.md: {missing}; add each to the module table"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle found by a depth-first walk, as the path that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycles.append([*path[path.index(n) :], n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_cycles_counting_function_local_imports() -> None:
    modules = _modules()
    cycles = _cycles({m: _imports(m, p, modules) for m, p in modules.items()})
    assert not cycles, f"import cycles: {cycles}"


def test_a_cycle_is_found_when_there_is_one(tmp_path: Path) -> None:
    """The cycle check can fail: two modules that import each other inside functions."""
    (tmp_path / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "b.py").write_text("def g():\n    from .a import f\n")
    modules = {
        "bot.a": tmp_path / "a.py",
        "bot.b": tmp_path / "b.py",
        "bot": tmp_path / "__init__.py",
    }
    assert _imports("bot.a", modules["bot.a"], modules) == {"bot.b"}
    assert _imports("bot.b", modules["bot.b"], modules) == {"bot.a"}
    graph = {m: _imports(m, p, modules) for m, p in modules.items() if m != "bot"}
    assert _cycles(graph) == [["bot.a", "bot.b", "bot.a"]]
