"""The import graph runs one way: the engine uses generators, generators do not use the engine.

Read from the source (every import statement, those inside functions and under
TYPE_CHECKING too), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import promptmill

SRC = Path(promptmill.__file__).parent
# The one engine module generators may use: the retry policy one-off calls share with jobs.
# It must stay a leaf (it imports nothing of the engine or of generators).
ALLOWED_FROM_ENGINE = {"promptmill.engine.retry"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every promptmill module ``path`` imports, resolved to modules (not names in them)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                found.add(candidate if is_module else node.module)
    return {name for name in found if name.startswith("promptmill")}


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in SRC.rglob("*.py")}


def test_generators_do_not_import_the_engine() -> None:
    edges = graph()
    reached = {(module, target) for module, targets in edges.items()
               if module.startswith("promptmill.generators")
               for target in targets if target.startswith("promptmill.engine")}
    assert {target for _, target in reached} <= ALLOWED_FROM_ENGINE, sorted(reached)


def test_the_allowed_engine_module_is_a_leaf() -> None:
    edges = graph()
    for module in ALLOWED_FROM_ENGINE:
        assert not {t for t in edges[module]
                    if t.startswith(("promptmill.engine", "promptmill.generators"))}


def test_token_estimation_lives_with_the_generators() -> None:
    edges = graph()
    assert "promptmill.generators.tokens" in edges
    assert "promptmill.generators.tokens" in edges["promptmill.generators.base"]
